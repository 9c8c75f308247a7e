package bench

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// The benchmarks run the real GPT-2 124M shape with synthetic weights, written once per run
// (or read from $GPUQUANT_BENCH_MODEL, e.g. a real checkpoint from scripts/fetch-gpt2.sh).
var (
	benchOnce    sync.Once
	benchWeights *model.Weights
	benchErr     error
)

func gpt2(b *testing.B) *model.Weights {
	benchOnce.Do(func() {
		dir := os.Getenv("GPUQUANT_BENCH_MODEL")
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "gpuquant-bench-gpt2")
			if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
				if benchErr = model.Synth(dir, model.SynthOptions{Config: model.Presets["gpt2"], DType: "F32", Seed: 1}); benchErr != nil {
					return
				}
			}
		}
		benchWeights, benchErr = model.Load(dir)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchWeights
}

type variant struct {
	name   string
	quant  *quantize.Options
	kernel string
}

func variants() []variant {
	q8 := &quantize.Options{Scheme: quantize.Absmax, Bits: 8, Granularity: quantize.Granularity{Kind: "channel"}, Scope: "weights", Preset: "standard"}
	q4 := &quantize.Options{Scheme: quantize.Absmax, Bits: 4, Granularity: quantize.Granularity{Kind: "group", Size: 32}, Scope: "weights", Preset: "standard"}
	return []variant{{"fp32", nil, "auto"}, {"int8-weight-only", q8, "weight-only"}, {"int8-w8a8", q8, "w8a8"}, {"int4-weight-only", q4, "weight-only"}}
}

func session(b *testing.B, v variant) *model.Session {
	w := gpt2(b)
	if v.quant != nil {
		var err error
		if w, err = quantize.QuantizeWeights(w, *v.quant); err != nil {
			b.Fatal(err)
		}
	}
	be, err := cpu.NewWith(cpu.Options{Kernel: v.kernel})
	if err != nil {
		b.Fatal(err)
	}
	up, err := be.Upload(w, quantize.Spec{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := model.NewSession(be, up, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(up.Bytes()), "model-bytes")
	return s
}

// BenchmarkPrefill is one 1024-token window (the perplexity workload) per iteration.
func BenchmarkPrefill(b *testing.B) {
	for _, v := range variants() {
		b.Run(v.name, func(b *testing.B) {
			s := session(b, v)
			r, err := Run(s, Options{PromptTokens: 1024, Repeat: b.N})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.PrefillTokensPerS, "tok/s")
		})
	}
}

// BenchmarkDecode is 128 KV-cached decode steps after a 128-token prompt per iteration.
func BenchmarkDecode(b *testing.B) {
	for _, v := range variants() {
		b.Run(v.name, func(b *testing.B) {
			s := session(b, v)
			r, err := Run(s, Options{PromptTokens: 128, NewTokens: 128, Repeat: b.N})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.DecodeTokensPerS, "tok/s")
		})
	}
}
