//go:build cuda || cudaemu

package gpu

import (
	"math"
	"slices"
	"testing"

	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// TestQuantizeWeightsMatchesCPU quantizes a small model on the device (a real GPU with tag cuda,
// the CPU emulator of the kernels with tag cudaemu) through Backend.Upload and requires every
// code, scale and zero-point to equal package quantize's (norms and biases: their dequantized
// values), for every scheme, granularity, bit width and preset.
func TestQuantizeWeightsMatchesCPU(t *testing.T) {
	dir := t.TempDir()
	cfg := model.Config{NLayer: 1, NHead: 2, NEmbd: 64, NPositions: 33, VocabSize: 97, LayerNormE: 1e-5, TieEmbeddings: true}
	if err := model.Synth(dir, model.SynthOptions{Config: cfg, DType: "F32", Seed: 3}); err != nil {
		t.Fatal(err)
	}
	w, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// Synth's biases are 0 and gains 1 (constant groups); give them spread too.
	for i, p := range w.Params() {
		if f := (*p.T).(*model.F32); len(f.Dims) == 1 {
			g := make([]float32, len(f.Data))
			for j := range g {
				g[j] = float32((i*31+j*17)%23-11) / 7
			}
			*p.T = model.NewF32(g, f.Dims...)
		}
	}
	var opts []quantize.Options
	for _, scheme := range []quantize.Scheme{quantize.Absmax, quantize.ZeroPoint} {
		for _, gran := range []string{"tensor", "channel", "group:32"} {
			g, _ := quantize.ParseGranularity(gran)
			for _, bits := range []int{8, 4} {
				for _, preset := range []string{quantize.PresetStandard, quantize.PresetArticle} {
					opts = append(opts, quantize.Options{Scheme: scheme, Bits: bits, Granularity: g, Preset: preset, Scope: quantize.ScopeAll})
				}
			}
		}
	}
	b, _ := testBackend(t, Options{})
	for _, opt := range opts {
		t.Run(opt.String(), func(t *testing.T) {
			want, err := quantize.QuantizeWeights(w, opt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := b.Upload(w, quantize.Spec{Quant: &opt})
			if err != nil {
				t.Fatal(err)
			}
			wp := want.Params()
			for i, p := range got.Params() {
				dev, ref := (*p.T).(*Tensor), (*wp[i].T).(*quantize.Tensor)
				if quantize.RunsFloat(p.Kind) { // run as float32: the dequantized codes
					f, err := dev.DownloadF32(b.Device())
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(f.Data, ref.Dequantize().Data) {
						t.Fatalf("%s: device values differ from the dequantized quantize.Quantize codes", p.Name)
					}
					continue
				}
				q, err := dev.Download(b.Device())
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(q.Codes, ref.Codes) || !slices.Equal(q.Scales, ref.Scales) || !slices.Equal(q.Zeros, ref.Zeros) {
					t.Fatalf("%s: device codes/scales/zeros differ from quantize.Quantize", p.Name)
				}
			}
		})
	}
}

func TestQuantizeRejectsNaN(t *testing.T) {
	d := testDevice(t)
	x := model.NewF32([]float32{1, 2, float32(math.NaN()), 4}, 2, 2)
	f, err := Upload(d, x)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Free(d)
	g, _ := quantize.ParseGranularity("channel")
	if _, err := Quantize(d, "w", f, quantize.Options{Scheme: quantize.Absmax, Bits: 8, Granularity: g}); err == nil {
		t.Fatal("NaN weight quantized without error")
	}
}
