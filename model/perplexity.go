package model

import (
	"errors"
	"fmt"
	"math"
)

// Perplexity methods.
const (
	// MethodHF is Hugging Face's "perplexity of fixed-length models": windows of MaxLength tokens
	// advancing by Stride, each scoring only tokens no earlier window scored.
	MethodHF = "hf"
	// MethodLlamaCpp is llama.cpp's: non-overlapping windows of MaxLength tokens, scoring only the
	// second half of each: logits at positions MaxLength/2 .. MaxLength-2 predict the tokens after
	// them, so every scored token sees at least MaxLength/2 tokens of context.
	MethodLlamaCpp = "llamacpp"
)

// PerplexityOptions choose the windows; zero values take n_positions and MaxLength/2.
type PerplexityOptions struct {
	MaxLength int
	Stride    int
	Method    string
	// Progress, if set, is called after each window with tokens scored so far and in all.
	Progress func(done, total int)
}

// PerplexityResult holds NLL summed in float64 over every scored token.
type PerplexityResult struct {
	NLLSum     float64 `json:"nll_sum"`
	Tokens     int     `json:"tokens_scored"`
	Windows    int     `json:"windows"`
	NLLMean    float64 `json:"nll_mean"`
	Perplexity float64 `json:"perplexity"`
}

// window is a forward over ids[Begin:End] scoring targets ids[From:End] (From > Begin).
type window struct{ Begin, From, End int }

func windows(n int, opt PerplexityOptions) []window {
	var ws []window
	switch opt.Method {
	case MethodLlamaCpp:
		for b := 0; b+opt.MaxLength <= n; b += opt.MaxLength {
			ws = append(ws, window{b, b + opt.MaxLength/2 + 1, b + opt.MaxLength})
		}
	default:
		prevEnd := 0
		for b := 0; b < n; b += opt.Stride {
			e := min(b+opt.MaxLength, n)
			if from := max(prevEnd, b+1); from < e {
				ws = append(ws, window{b, from, e})
			}
			prevEnd = e
			if e == n {
				break
			}
		}
	}
	return ws
}

// CompareResult measures how far a model's next-token distributions are from a reference's on
// the same scored positions, as llama.cpp's perplexity tool does.
type CompareResult struct {
	KLDMean       float64 `json:"kld_mean"`       // mean KL(reference ‖ model), nats
	Top1Agreement float64 `json:"top1_agreement"` // share of positions with the same argmax
}

// Perplexity scores ids with the session's model.
func Perplexity(s *Session, ids []int32, opt PerplexityOptions) (PerplexityResult, error) {
	r, _, err := Compare(s, nil, ids, opt)
	return r, err
}

// Compare scores ids with s and, when ref is not nil, runs ref on the same windows and compares
// the two distributions at every scored position.
func Compare(s, ref *Session, ids []int32, opt PerplexityOptions) (PerplexityResult, CompareResult, error) {
	if opt.MaxLength == 0 {
		opt.MaxLength = s.MaxT()
	}
	if opt.Stride == 0 {
		opt.Stride = max(opt.MaxLength/2, 1)
	}
	if opt.Method == "" {
		opt.Method = MethodHF
	}
	switch {
	case opt.Method != MethodHF && opt.Method != MethodLlamaCpp:
		return PerplexityResult{}, CompareResult{}, fmt.Errorf("model: unknown perplexity method %q (want %s or %s)", opt.Method, MethodHF, MethodLlamaCpp)
	case opt.MaxLength < 2 || opt.MaxLength > s.MaxT():
		return PerplexityResult{}, CompareResult{}, fmt.Errorf("model: max-length %d must be between 2 and the context (%d)", opt.MaxLength, s.MaxT())
	case opt.Stride < 1 || opt.Stride > opt.MaxLength:
		return PerplexityResult{}, CompareResult{}, fmt.Errorf("model: stride %d must be between 1 and max-length (%d)", opt.Stride, opt.MaxLength)
	}
	ws := windows(len(ids), opt)
	total := 0
	for _, w := range ws {
		total += w.End - w.From
	}
	if total == 0 {
		return PerplexityResult{}, CompareResult{}, fmt.Errorf("model: %d tokens are too few to score with max-length %d (%s method)", len(ids), opt.MaxLength, opt.Method)
	}
	var r PerplexityResult
	var cmp CompareResult
	nll := make([]float64, opt.MaxLength)
	for _, w := range ws {
		rows, err := windowLogits(s, ids, w)
		if err != nil {
			return r, cmp, err
		}
		targets := ids[w.From:w.End]
		s.ops.NLL(nll[:len(targets)], rows, targets)
		if err := s.ops.Err(); err != nil {
			return r, cmp, err
		}
		for _, x := range nll[:len(targets)] {
			r.NLLSum += x
		}
		if ref != nil {
			refRows, err := windowLogits(ref, ids, w)
			if err != nil {
				return r, cmp, err
			}
			kl, agree, err := compareRows(s.ops, rows, ref.ops, refRows)
			if err != nil {
				return r, cmp, err
			}
			cmp.KLDMean += kl
			cmp.Top1Agreement += agree
		}
		r.Tokens += len(targets)
		r.Windows++
		if opt.Progress != nil {
			opt.Progress(r.Tokens, total)
		}
	}
	r.NLLMean = r.NLLSum / float64(r.Tokens)
	r.Perplexity = math.Exp(r.NLLMean)
	cmp.KLDMean /= float64(r.Tokens)
	cmp.Top1Agreement /= float64(r.Tokens)
	return r, cmp, nil
}

// windowLogits runs one window from an empty cache and returns the rows that predict its targets.
func windowLogits(s *Session, ids []int32, w window) (Buf, error) {
	s.Reset()
	logits, err := s.Forward(ids[w.Begin:w.End], true)
	if err != nil {
		return nil, err
	}
	return s.ops.Slice(logits, w.From-1-w.Begin, w.End-1-w.Begin), nil
}

// compareRows sums KL(ref ‖ got) and argmax agreements over matching logits rows, in float64.
func compareRows(o Ops, got Buf, ro Ops, ref Buf) (kl, agree float64, err error) {
	g := make([]float32, got.Rows()*got.Cols())
	f := make([]float32, len(g))
	o.Read(g, got)
	ro.Read(f, ref)
	if err := errors.Join(o.Err(), ro.Err()); err != nil {
		return 0, 0, err
	}
	V := got.Cols()
	for t := range got.Rows() {
		gr, fr := g[t*V:(t+1)*V], f[t*V:(t+1)*V]
		lg, lf := logSumExp(gr), logSumExp(fr)
		for i := range fr {
			lpf := float64(fr[i]) - lf
			kl += math.Exp(lpf) * (lpf - (float64(gr[i]) - lg))
		}
		if Argmax(gr) == Argmax(fr) {
			agree++
		}
	}
	return kl, agree, nil
}

func logSumExp(v []float32) float64 {
	m := float64(v[Argmax(v)])
	var s float64
	for _, x := range v {
		s += math.Exp(float64(x) - m)
	}
	return m + math.Log(s)
}
