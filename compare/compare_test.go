package compare_test

import (
	"fmt"
	"log"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/gpuquant/gpuquant/compare"
	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/model/tokenizer"
	"github.com/gpuquant/gpuquant/quantize"
)

// tinyModel synthesizes the "tiny" preset (GPT-2's vocabulary, 2 layers of 64) into a temporary
// folder and loads it.
func tinyModel(tb testing.TB) *model.Weights {
	tb.Helper()
	dir := tb.TempDir()
	if err := model.Synth(dir, model.SynthOptions{Config: model.Presets["tiny"], DType: "F32", Seed: 1}); err != nil {
		tb.Fatal(err)
	}
	w, err := model.Load(dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { w.Close() })
	return w
}

var channel8 = quantize.Options{Bits: 8, Granularity: quantize.Granularity{Kind: quantize.PerChannel}}

// Every figure of the report against an independent computation: the same quantization by
// package quantize, the same generation and perplexity run directly on a fresh backend.
func TestRunMatchesDirectComputation(t *testing.T) {
	src := tinyModel(t)
	tok := tokenizer.GPT2()
	text := "The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of times."
	opt := compare.Options{Name: "tiny", Quant: channel8, Tokenizer: tok, Prompt: "Hello", MaxNewTokens: 6,
		Sampling: model.SampleOptions{Greedy: true}, Text: text, TextName: "fox.txt", MaxTokens: 20}
	rep, err := compare.Run(cpu.New(), src, opt)
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode(text)[:20]
	if rep.Model != "tiny" || rep.Device != "cpu" || rep.PerplexityText != "fox.txt" || rep.PerplexityTokens != 20 || rep.DeviceStats != nil {
		t.Fatalf("report header %+v", rep)
	}
	if len(rep.Models) != 3 || rep.Models[0].Name != "fp32" || rep.Models[1].Name != "absmax" || rep.Models[2].Name != "zeropoint" {
		t.Fatalf("models %v", rep.Models)
	}
	var inScope int64
	for _, p := range src.Params() {
		if quantize.InScope(quantize.ScopeWeights, p.Kind, (*p.T).Shape()) {
			inScope += int64(model.NumElements((*p.T).Shape()))
		}
	}
	for i, r := range rep.Models {
		// The model the row describes, made independently.
		be, w := cpu.New(), src
		if i > 0 {
			q := channel8
			q.Scheme = quantize.Scheme(r.Name)
			if w, err = quantize.QuantizeWeights(src, q); err != nil {
				t.Fatal(err)
			}
			if r.Error == nil || r.Error.N != inScope || !(r.Error.SQNRdB > 30) {
				t.Errorf("%s: weight error %+v (want %d values, SQNR > 30 dB)", r.Name, r.Error, inScope)
			}
			if r.Scheme["scheme"] != r.Name || r.Scheme["bits"] != 8 || r.Scheme["granularity"] != "channel" {
				t.Errorf("%s: scheme %v", r.Name, r.Scheme)
			}
		} else if r.Error != nil || r.Scheme["scheme"] != "fp32" {
			t.Errorf("fp32: weight error %v, scheme %v", r.Error, r.Scheme)
		}
		if r.ModelBytes != w.Bytes() || r.SizeRatio != float64(w.Bytes())/float64(src.Bytes()) {
			t.Errorf("%s: %d bytes (ratio %v), direct %d of %d", r.Name, r.ModelBytes, r.SizeRatio, w.Bytes(), src.Bytes())
		}
		g, err := compare.Generate(be, w, tok, "Hello", 6, model.SampleOptions{Greedy: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Generation.TokenIDs, g.TokenIDs) || r.Generation.Text != g.Text || !slices.Equal(r.Generation.PromptIDs, tok.Encode("Hello")) {
			t.Errorf("%s: generated %v %q, directly %v %q", r.Name, r.Generation.TokenIDs, r.Generation.Text, g.TokenIDs, g.Text)
		}
		s, err := model.NewSession(be, w, 0)
		if err != nil {
			t.Fatal(err)
		}
		want, err := model.Perplexity(s, ids, model.PerplexityOptions{MaxLength: 20})
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if r.Perplexity != want.Perplexity || r.NLLMean != want.NLLMean || r.TokensScored != want.Tokens {
			t.Errorf("%s: perplexity %v (nll %v, %d tokens), directly %v (%v, %d)", r.Name, r.Perplexity, r.NLLMean, r.TokensScored, want.Perplexity, want.NLLMean, want.Tokens)
		}
		// Scoring one 20-token window is one forward pass: 4 projections per layer and the head.
		var calls int64
		for _, n := range r.Kernels {
			calls += n
		}
		if want := int64(4*src.Config.NLayer + 1); calls != want {
			t.Errorf("%s: %d Linear calls while scoring (%v), want %d", r.Name, calls, r.Kernels, want)
		}
		if !(r.ScoreTokensPS > 0) || !(r.Generation.TokensPS > 0) || r.RSSBytes <= 0 {
			t.Errorf("%s: speeds %v %v, RSS %d", r.Name, r.ScoreTokensPS, r.Generation.TokensPS, r.RSSBytes)
		}
	}
	// Every in-scope weight of the synthesized model lies in [-1, 1): each histogram holds them all.
	for name, h := range map[string][]int64{"original": rep.Histograms.Original.Counts, "absmax": rep.Histograms.Absmax.Counts, "zeropoint": rep.Histograms.ZeroPnt.Counts} {
		var n int64
		for _, c := range h {
			n += c
		}
		if n != inScope {
			t.Errorf("%s histogram holds %d values, want %d", name, n, inScope)
		}
	}
	if rep.PeakRSSBytes < rep.Models[0].RSSBytes {
		t.Errorf("peak RSS %d below a model's %d", rep.PeakRSSBytes, rep.Models[0].RSSBytes)
	}
}

// Without a text, the fp32 model's own continuation of the prompt is scored.
func TestRunScoresOwnText(t *testing.T) {
	src := tinyModel(t)
	tok := tokenizer.GPT2()
	rep, err := compare.Run(cpu.New(), src, compare.Options{Quant: channel8, Tokenizer: tok, Prompt: "Once upon a time", MaxNewTokens: 10,
		Sampling: model.SampleOptions{Greedy: true}})
	if err != nil {
		t.Fatal(err)
	}
	want := len(tok.Encode("Once upon a time" + rep.Models[0].Generation.Text))
	if rep.PerplexityText != compare.FP32TextName || rep.PerplexityTokens != want {
		t.Errorf("scored %q, %d tokens; want %q, %d", rep.PerplexityText, rep.PerplexityTokens, compare.FP32TextName, want)
	}
}

func TestRunBadInput(t *testing.T) {
	src := tinyModel(t)
	for name, opt := range map[string]compare.Options{
		"no tokenizer": {Quant: channel8},
		"bad bits":     {Quant: quantize.Options{Bits: 3, Granularity: channel8.Granularity}, Tokenizer: tokenizer.GPT2()},
		"no tensor":    {Quant: channel8, Tokenizer: tokenizer.GPT2(), HistogramPrefix: "nothing."},
	} {
		if _, err := compare.Run(cpu.New(), src, opt); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// Example compares the tiny preset with its int8 per-channel versions on the CPU.
func Example() {
	dir, err := os.MkdirTemp("", "compare-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := model.Synth(dir, model.SynthOptions{Config: model.Presets["tiny"], DType: "F32", Seed: 1}); err != nil {
		log.Fatal(err)
	}
	src, err := model.Load(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	rep, err := compare.Run(cpu.New(), src, compare.Options{
		Name:         dir,
		Quant:        quantize.Options{Bits: 8, Granularity: quantize.Granularity{Kind: quantize.PerChannel}},
		Tokenizer:    tokenizer.GPT2(),
		Prompt:       "The way forward for AI is",
		MaxNewTokens: 8,
		Sampling:     model.SampleOptions{Greedy: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range rep.Models {
		fmt.Printf("%-9s %.3fx of fp32, finite perplexity: %v\n", m.Name, m.SizeRatio, !math.IsInf(m.Perplexity, 0) && !math.IsNaN(m.Perplexity))
	}
	// Output:
	// fp32      1.000x of fp32, finite perplexity: true
	// absmax    0.266x of fp32, finite perplexity: true
	// zeropoint 0.281x of fp32, finite perplexity: true
}
