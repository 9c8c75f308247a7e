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
// the CPU emulator of the kernels with tag cudaemu) and requires every code, scale and zero-point
// to equal package quantize's, for every scheme, granularity, bit width and preset.
func TestQuantizeWeightsMatchesCPU(t *testing.T) {
	d := testDevice(t)
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
	for _, scheme := range []quantize.Scheme{quantize.Absmax, quantize.ZeroPoint} {
		for _, gran := range []string{"tensor", "channel", "group:32"} {
			for _, bits := range []int{8, 4} {
				for _, preset := range []string{quantize.PresetStandard, quantize.PresetArticle} {
					g, _ := quantize.ParseGranularity(gran)
					opt := quantize.Options{Scheme: scheme, Bits: bits, Granularity: g, Preset: preset, Scope: quantize.ScopeAll}
					t.Run(opt.String(), func(t *testing.T) {
						want, err := quantize.QuantizeWeights(w, opt)
						if err != nil {
							t.Fatal(err)
						}
						got, err := QuantizeWeights(d, w, opt)
						if err != nil {
							t.Fatal(err)
						}
						defer FreeWeights(d, got, -1)
						wp := want.Params()
						for i, p := range got.Params() {
							q, err := (*p.T).(*Tensor).Download(d)
							if err != nil {
								t.Fatal(err)
							}
							ref := (*wp[i].T).(*quantize.Tensor)
							if !slices.Equal(q.Codes, ref.Codes) || !slices.Equal(q.Scales, ref.Scales) || !slices.Equal(q.Zeros, ref.Zeros) {
								t.Fatalf("%s: device codes/scales/zeros differ from quantize.Quantize", p.Name)
							}
						}
					})
				}
			}
		}
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
