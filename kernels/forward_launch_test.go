package kernels

import (
	"fmt"
	"testing"
)

// The forward-pass launchers (forward.go) pack arguments of the kernels' kinds, size grids from
// the shapes only (never from pos0, which lives on the device), and refuse bad shapes before
// launching anything. The kernels themselves run in kernels/kerneltest (emulator and GPU).
func TestForwardLaunchers(t *testing.T) {
	r := &recorder{}
	const p = Ptr(4096)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	f32, q4 := W{Data: p, Bits: 32}, W{Data: p, Scales: p, Zeros: p, GroupSize: 32, Bits: 4}
	must(Embed(r, p, p, p, q4, f32, 7, 768))
	must(Embed(r, p, p, p, W{Data: p, Bits: 16}, W{Data: p, Scales: p, GroupSize: 768, Bits: 8}, 1024, 1600))
	must(LayerNorm(r, p, p, p, p, 7, 768, 1e-5))
	must(AddLayerNorm(r, p, p, p, p, p, 7, 768, 1e-5))
	must(Add(r, p, p, 7*768))
	must(GELU(r, p, 7*3072))
	must(Attention(r, p, p, p, p, p, 1, 768, 12))
	must(Attention(r, p, p, p, p, p, AttentionRowT, 768, 12))
	must(Attention(r, p, p, p, p, p, AttentionRowT+1, 768, 12))
	must(Attention(r, p, p, p, p, p, 1024, 1600, 25))
	must(NLL(r, p, p, p, 3, 50257))
	want := []string{
		"embed 21,1", "embed 4096,1", "layernorm 7,1", "add_layernorm 7,1", "add 21,1", "gelu 84,1",
		"attention 12,1", "attention 12,8", "attention 12,1",
		"attention 25,64", "nll 3,1",
	}
	if fmt.Sprint(r.launches) != fmt.Sprint(want) {
		t.Fatalf("launches\n got %v\nwant %v", r.launches, want)
	}
}

func TestForwardLaunchersRejectBadShapes(t *testing.T) {
	r := &recorder{}
	const p = Ptr(4096)
	f32 := W{Data: p, Bits: 32}
	for name, err := range map[string]error{
		"embed T 0":               Embed(r, p, p, p, f32, f32, 0, 768),
		"embed bits 3":            Embed(r, p, p, p, W{Data: p, Bits: 3}, f32, 1, 768),
		"embed q8 sans scales":    Embed(r, p, p, p, W{Data: p, GroupSize: 768, Bits: 8}, f32, 1, 768),
		"embed q4 group 0":        Embed(r, p, p, p, f32, W{Data: p, Scales: p, Bits: 4}, 1, 768),
		"embed f16 with scales":   Embed(r, p, p, p, W{Data: p, Scales: p, Bits: 16}, f32, 1, 768),
		"embed null table":        Embed(r, p, p, p, W{Bits: 32}, f32, 1, 768),
		"embed null pos":          Embed(r, p, p, 0, f32, f32, 1, 768),
		"layernorm C 0":           LayerNorm(r, p, p, p, p, 3, 0, 1e-5),
		"layernorm null gain":     LayerNorm(r, p, p, 0, p, 3, 768, 1e-5),
		"add+layernorm T -1":      AddLayerNorm(r, p, p, p, p, p, -1, 768, 1e-5),
		"add n 0":                 Add(r, p, p, 0),
		"gelu null":               GELU(r, 0, 10),
		"attention heads 0":       Attention(r, p, p, p, p, p, 1, 768, 0),
		"attention heads 7":       Attention(r, p, p, p, p, p, 1, 768, 7),
		"attention hd 130":        Attention(r, p, p, p, p, p, 1, 260, 2),
		"attention hd 6":          Attention(r, p, p, p, p, p, 1, 12, 2),
		"attention unaligned qkv": Attention(r, p, p+4, p, p, p, 1, 768, 12),
		"attention null pos":      Attention(r, p, p, p, p, 0, 1, 768, 12),
		"attention T 70000":       Attention(r, p, p, p, p, p, 70000, 768, 12),
		"nll V 0":                 NLL(r, p, p, p, 3, 0),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if len(r.launches) != 0 {
		t.Errorf("launched %v for bad shapes", r.launches)
	}
}
