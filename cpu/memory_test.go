package cpu

import (
	"runtime"
	"testing"

	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// W8A8 decoding allocates nothing that lives past a step: over 1,000 KV-cached steps the live
// heap after a collection stays where it was after the first 100 (weights, packed panels, the
// session's buffers and the per-call scratch pools are all made by then).
func TestW8A8DecodeMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 decode steps")
	}
	dir := t.TempDir()
	cfg := model.Config{NLayer: 2, NHead: 2, NEmbd: 64, NPositions: 1100, VocabSize: 512, LayerNormE: 1e-5, TieEmbeddings: true}
	if err := model.Synth(dir, model.SynthOptions{Config: cfg, DType: "F32", Seed: 5}); err != nil {
		t.Fatal(err)
	}
	w, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	be, err := NewWith(Options{Kernel: quantize.KernelW8A8})
	if err != nil {
		t.Fatal(err)
	}
	q := &quantize.Options{Scheme: quantize.ZeroPoint, Bits: 8, Granularity: quantize.Granularity{Kind: quantize.PerGroup, Size: 32}}
	up, err := be.Upload(w, quantize.Spec{Quant: q})
	if err != nil {
		t.Fatal(err)
	}
	s, err := model.NewSession(be, up, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	smp, err := model.NewSampler(model.SampleOptions{Seed: 1, Temperature: 1, TopP: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The live heap after a collection, and the bytes allocated so far.
	mem := func() (live, total uint64) {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc, m.TotalAlloc
	}
	var live100, live1000, total100, total1000 uint64
	n := 0
	if _, err := model.Generate(s, []int32{1, 2, 3}, 1000, smp, func(int32) {
		switch n++; n {
		case 100:
			live100, total100 = mem()
		case 1000:
			live1000, total1000 = mem()
		}
	}); err != nil {
		t.Fatal(err)
	}
	perStep := float64(total1000-total100) / 900
	t.Logf("live heap %d bytes at step 100, %d at step 1000; %.0f bytes allocated per step", live100, live1000, perStep)
	if live1000 > live100+256<<10 {
		t.Errorf("live heap grew from %d to %d bytes between decode steps 100 and 1000", live100, live1000)
	}
	// Garbage is what made RSS climb (the collector lets the heap grow to twice the live size):
	// a step's scratch comes from pools, so a step allocates a few KiB (its logits, the
	// activation codes), not the weights' panels.
	if perStep > 16<<10 {
		t.Errorf("%.0f bytes allocated per decode step (want under 16 KiB)", perStep)
	}
}
