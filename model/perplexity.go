package model

import (
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
	// Logits, if set, sees each window's logits rows for the scored positions (row i predicts
	// targets[i]); used to compare models on the same windows.
	Logits func(rows Buf, targets []int32)
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

// Perplexity scores ids with the session's model.
func Perplexity(s *Session, ids []int32, opt PerplexityOptions) (PerplexityResult, error) {
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
		return PerplexityResult{}, fmt.Errorf("model: unknown perplexity method %q (want %s or %s)", opt.Method, MethodHF, MethodLlamaCpp)
	case opt.MaxLength < 2 || opt.MaxLength > s.MaxT():
		return PerplexityResult{}, fmt.Errorf("model: max-length %d must be between 2 and the context (%d)", opt.MaxLength, s.MaxT())
	case opt.Stride < 1 || opt.Stride > opt.MaxLength:
		return PerplexityResult{}, fmt.Errorf("model: stride %d must be between 1 and max-length (%d)", opt.Stride, opt.MaxLength)
	}
	ws := windows(len(ids), opt)
	total := 0
	for _, w := range ws {
		total += w.End - w.From
	}
	if total == 0 {
		return PerplexityResult{}, fmt.Errorf("model: %d tokens are too few to score with max-length %d (%s method)", len(ids), opt.MaxLength, opt.Method)
	}
	var r PerplexityResult
	nll := make([]float64, opt.MaxLength)
	for _, w := range ws {
		s.Reset()
		logits, err := s.Forward(ids[w.Begin:w.End], true)
		if err != nil {
			return r, err
		}
		rows := s.ops.Slice(logits, w.From-1-w.Begin, w.End-1-w.Begin)
		targets := ids[w.From:w.End]
		s.ops.NLL(nll[:len(targets)], rows, targets)
		for _, x := range nll[:len(targets)] {
			r.NLLSum += x
		}
		if opt.Logits != nil {
			opt.Logits(rows, targets)
		}
		r.Tokens += len(targets)
		r.Windows++
		if opt.Progress != nil {
			opt.Progress(r.Tokens, total)
		}
	}
	r.NLLMean = r.NLLSum / float64(r.Tokens)
	r.Perplexity = math.Exp(r.NLLMean)
	return r, nil
}
