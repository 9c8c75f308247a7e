package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// SampleOptions choose the next token: Greedy takes the argmax; otherwise logits are divided by
// Temperature, cut to the TopK most likely (0: all), then to the smallest set whose probability
// reaches TopP (1: all), and one token is drawn with a PCG generator seeded by Seed.
type SampleOptions struct {
	Greedy      bool
	Temperature float64
	TopK        int
	TopP        float64
	Seed        uint64
}

// Validate rejects options that cannot sample.
func (o SampleOptions) Validate() error {
	if o.Greedy {
		return nil
	}
	switch {
	case !(o.Temperature > 0) || math.IsInf(o.Temperature, 1):
		return fmt.Errorf("temperature must be finite and > 0 (got %g); use greedy decoding for argmax", o.Temperature)
	case o.TopK < 0:
		return fmt.Errorf("top-k must be >= 0 (got %d)", o.TopK)
	case !(o.TopP > 0 && o.TopP <= 1):
		return fmt.Errorf("top-p must be in (0, 1] (got %g)", o.TopP)
	}
	return nil
}

// Sampler draws tokens reproducibly: the same options and logits give the same tokens.
type Sampler struct {
	opt  SampleOptions
	rng  *rand.Rand
	idx  []int
	prob []float64
}

// NewSampler returns a sampler for valid options.
func NewSampler(opt SampleOptions) (*Sampler, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	return &Sampler{opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, 0x9e3779b97f4a7c15))}, nil
}

// Next picks a token from one row of logits.
func (s *Sampler) Next(logits []float32) int32 {
	if s.opt.Greedy {
		return Argmax(logits)
	}
	n := len(logits)
	if s.opt.TopK > 0 && s.opt.TopK < n {
		n = s.opt.TopK
	}
	s.idx = topN(s.idx[:0], logits, n)
	s.prob = s.prob[:0]
	maxL := float64(logits[s.idx[0]])
	var sum float64
	for _, i := range s.idx[:n] {
		// Subtracting first keeps a tiny temperature from overflowing to Inf − Inf.
		p := math.Exp((float64(logits[i]) - maxL) / s.opt.Temperature)
		s.prob = append(s.prob, p)
		sum += p
	}
	if s.opt.TopP < 1 {
		var cum float64
		for j, p := range s.prob {
			cum += p / sum
			if cum >= s.opt.TopP {
				n = j + 1
				break
			}
		}
		sum = 0
		for _, p := range s.prob[:n] {
			sum += p
		}
	}
	u := s.rng.Float64() * sum
	for j, p := range s.prob[:n] {
		u -= p
		if u < 0 {
			return int32(s.idx[j])
		}
	}
	return int32(s.idx[n-1])
}

// topN returns the indices of the n largest logits in descending order, ties by lower id, so
// that the cut-offs are deterministic. A bounded min-heap keeps top-k at O(V log k).
func topN(idx []int, logits []float32, n int) []int {
	before := func(a, b int) bool { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b) }
	h := idx[:0]
	down := func(i int) { // restore the heap whose root is the worst kept index
		for {
			l, m := 2*i+1, i
			if l < len(h) && before(h[m], h[l]) {
				m = l
			}
			if r := l + 1; r < len(h) && before(h[m], h[r]) {
				m = r
			}
			if m == i {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for i := range logits {
		switch {
		case len(h) < n:
			h = append(h, i)
			for j := len(h) - 1; j > 0 && before((h[(j-1)/2]), h[j]); j = (j - 1) / 2 {
				h[j], h[(j-1)/2] = h[(j-1)/2], h[j]
			}
		case before(i, h[0]):
			h[0] = i
			down(0)
		}
	}
	sort.Slice(h, func(a, b int) bool { return before(h[a], h[b]) })
	return h
}

// Argmax is the index of the largest value, the lowest index on ties.
func Argmax(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}

// stepName names Generate's profiler ranges: the prompt's prefill, then each decoding step.
var stepName = [2]string{"prefill", "decode step"}

// Generate runs prompt through the session (which it resets), then produces up to maxNew tokens,
// each by one incremental forward over the KV cache. onToken, if not nil, sees each new token.
// A prompt plus maxNew longer than the session's context is refused rather than silently cut.
func Generate(s *Session, prompt []int32, maxNew int, smp *Sampler, onToken func(int32)) ([]int32, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("model: empty prompt")
	}
	if maxNew < 0 {
		return nil, fmt.Errorf("model: max-new-tokens %d is negative", maxNew)
	}
	if len(prompt)+maxNew > s.MaxT() {
		return nil, fmt.Errorf("model: prompt of %d tokens + %d new tokens exceeds the context of %d positions", len(prompt), maxNew, s.MaxT())
	}
	s.Reset()
	o := s.ops
	row := make([]float32, s.w.Config.VocabSize)
	in := prompt
	out := make([]int32, 0, maxNew)
	for i := range maxNew {
		end := Trace(o, stepName[min(i, 1)])
		logits, err := s.Forward(in, false)
		if err != nil {
			end()
			return out, err
		}
		o.Read(row, logits)
		end()
		if err := o.Err(); err != nil {
			return out, err
		}
		tok := smp.Next(row)
		out = append(out, tok)
		if onToken != nil {
			onToken(tok)
		}
		in = []int32{tok}
	}
	return out, nil
}
