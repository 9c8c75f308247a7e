// Package bench measures a backend on a model: prefill and decode throughput with medians over
// repeated runs after a warm-up. The same workload serves `gpuquant bench`, `go test -bench`
// and the cloud scripts.
package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/gpuquant/gpuquant/model"
)

// Options size one measurement.
type Options struct {
	PromptTokens int // prefill window, also the context decoding starts from
	NewTokens    int // decoded tokens, one incremental step each
	Repeat       int // timed runs after one warm-up; the median is reported
	Seed         uint64
}

// Result is the median of the timed runs.
type Result struct {
	PrefillTokensPerS float64   `json:"prefill_tokens_per_s"`
	DecodeTokensPerS  float64   `json:"decode_tokens_per_s"`
	PrefillSeconds    []float64 `json:"prefill_seconds"`
	DecodeSeconds     []float64 `json:"decode_seconds"`
	PromptTokens      int       `json:"prompt_tokens"`
	NewTokens         int       `json:"new_tokens"`
	Repeat            int       `json:"repeat"`
}

// Run times prefill of PromptTokens random tokens and then NewTokens greedy decode steps.
func Run(s *model.Session, o Options) (Result, error) {
	if o.Repeat < 1 {
		o.Repeat = 1
	}
	if o.PromptTokens < 1 || o.PromptTokens+o.NewTokens > s.MaxT() {
		return Result{}, fmt.Errorf("bench: %d prompt + %d new tokens must fit the context of %d", o.PromptTokens, o.NewTokens, s.MaxT())
	}
	rng := rand.New(rand.NewPCG(o.Seed, 1))
	V := s.Config().VocabSize
	prompt := make([]int32, o.PromptTokens)
	for i := range prompt {
		prompt[i] = int32(rng.IntN(V))
	}
	r := Result{PromptTokens: o.PromptTokens, NewTokens: o.NewTokens, Repeat: o.Repeat}
	for i := range o.Repeat + 1 {
		p, d, err := timeOnce(s, prompt, o.NewTokens)
		if err != nil {
			return r, err
		}
		if i > 0 { // the first run warms caches and allocators
			r.PrefillSeconds = append(r.PrefillSeconds, p)
			r.DecodeSeconds = append(r.DecodeSeconds, d)
		}
	}
	r.PrefillTokensPerS = float64(o.PromptTokens) / median(r.PrefillSeconds)
	if o.NewTokens > 0 {
		r.DecodeTokensPerS = float64(o.NewTokens) / median(r.DecodeSeconds)
	}
	return r, nil
}

// timeOnce is the measurement of one run, prefill and decode seconds: once, or the tests' script
// of times.
var timeOnce = once

func once(s *model.Session, prompt []int32, newTokens int) (prefill, decode float64, err error) {
	o := s.Ops()
	s.Reset()
	start := time.Now()
	end := model.Trace(o, "prefill")
	logits, err := s.Forward(prompt, false)
	if err != nil {
		return 0, 0, err
	}
	row := make([]float32, logits.Cols())
	o.Read(row, logits) // the result must reach the host for the time to count
	prefill = time.Since(start).Seconds()
	end()
	if err := o.Err(); err != nil {
		return 0, 0, err
	}
	start = time.Now()
	for range newTokens {
		end := model.Trace(o, "decode step")
		logits, err = s.Forward([]int32{model.Argmax(row)}, false)
		if err != nil {
			return 0, 0, err
		}
		o.Read(row, logits)
		end()
	}
	if err := o.Err(); err != nil {
		return 0, 0, err
	}
	return prefill, time.Since(start).Seconds(), nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
