package kernels

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/gpuquant/gpuquant/quantize"
)

// recorder is a Device that records launches and checks their arguments against Signatures (the
// CPU emulator, tag cudaemu, runs them for real).
type recorder struct {
	launches []string
	next     Ptr
}

func (r *recorder) Alloc(n int) (Ptr, error)         { r.next += 256; return r.next, nil }
func (r *recorder) Free(Ptr)                         {}
func (r *recorder) CopyToDevice(Ptr, []byte) error   { return nil }
func (r *recorder) CopyFromDevice([]byte, Ptr) error { return nil }
func (r *recorder) Sync() error                      { return nil }
func (r *recorder) Launch(name string, grid, block Dim3, shared int, args ...any) error {
	sig, ok := Signatures[name]
	if !ok {
		return fmt.Errorf("unknown kernel %s", name)
	}
	var got strings.Builder
	for _, a := range args {
		switch a.(type) {
		case int32:
			got.WriteByte('i')
		case uint32:
			got.WriteByte('u')
		case int64:
			got.WriteByte('l')
		case float32:
			got.WriteByte('f')
		case Ptr:
			got.WriteByte('p')
		default:
			return fmt.Errorf("%s: argument of type %T", name, a)
		}
	}
	if got.String() != sig {
		return fmt.Errorf("%s: arguments %q, kernel %q", name, got.String(), sig)
	}
	if grid.X <= 0 || grid.Y <= 0 || grid.Z <= 0 || block.X <= 0 || block.X%32 != 0 || block.X > 1024 {
		return fmt.Errorf("%s: bad grid %v block %v", name, grid, block)
	}
	r.launches = append(r.launches, fmt.Sprintf("%s %d,%d", name, grid.X, grid.Y))
	return nil
}

func TestLaunchersPackArguments(t *testing.T) {
	r := &recorder{}
	const p = Ptr(4096)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(Quantize(r, p, p, 0, p, p, 50257*768, 50257*768, quantize.Options{Scheme: quantize.Absmax, Bits: 8}))
	must(Quantize(r, p, p, p, p, p, 2*33, 33, quantize.Options{Scheme: quantize.ZeroPoint, Bits: 4}))
	must(Dequantize(r, p, p, p, 0, 1600*64, 64, 4))
	must(QuantizeActs(r, p, p, p, p, 7, 768, 64))
	q8 := W{Data: p, Scales: p, GroupSize: 768, Bits: 8}
	must(Gemv(r, p, p, q8, p, 1, 768, 50257, ActNone))
	must(GemmW8A8(r, p, p, p, p, W{Data: p, Scales: p, Zeros: p, GroupSize: 32, Bits: 8}, p, 33, 768, 2304, ActGELU))
	must(GemmF32(r, p, p, W{Data: p, Bits: 16}, 0, 65, 768, 3072, ActGELU))
	must(GemmF16(r, p, p, W{Data: p, Bits: 16}, p, 65, 768, 3072, ActGELU))
	want := []string{
		"quant_minmax_init 1,1", "quant_minmax 2356,1", "quant_params 1,1", "quant_encode 4096,1",
		"quant_minmax_init 1,1", "quant_minmax 1,1", "quant_params 1,1", "quant_encode 1,1",
		"dequant 400,1", "quant_act_rows 7,1", "gemv 12565,1", "gemm_w8a8 36,1", "gemm_f32 48,2", "gemm_f16 48,2",
	}
	if fmt.Sprint(r.launches) != fmt.Sprint(want) {
		t.Fatalf("launches\n got %v\nwant %v", r.launches, want)
	}
}

func TestLaunchersRejectBadShapes(t *testing.T) {
	r := &recorder{}
	const p = Ptr(4096)
	for name, err := range map[string]error{
		"group does not divide":  Quantize(r, p, p, 0, p, p, 100, 33, quantize.Options{Scheme: quantize.Absmax, Bits: 8}),
		"bits":                   Quantize(r, p, p, 0, p, p, 64, 32, quantize.Options{Scheme: quantize.Absmax, Bits: 3}),
		"absmax with zeros":      Quantize(r, p, p, p, p, p, 64, 32, quantize.Options{Scheme: quantize.Absmax, Bits: 8}),
		"zero-point sans zeros":  Quantize(r, p, p, 0, p, p, 64, 32, quantize.Options{Scheme: quantize.ZeroPoint, Bits: 8}),
		"w8a8 group 48":          GemmW8A8(r, p, p, p, p, W{Data: p, Scales: p, GroupSize: 48, Bits: 8}, 0, 4, 96, 8, ActNone),
		"w8a8 zeros sans qsum":   GemmW8A8(r, p, p, p, 0, W{Data: p, Scales: p, Zeros: p, GroupSize: 32, Bits: 8}, 0, 4, 96, 8, ActNone),
		"w8a8 float weights":     GemmW8A8(r, p, p, p, p, W{Data: p, Bits: 32}, 0, 4, 96, 8, ActNone),
		"gemv group straddles":   Gemv(r, p, p, W{Data: p, Scales: p, GroupSize: 64, Bits: 8}, 0, 1, 48, 4, ActNone),
		"acts g does not divide": QuantizeActs(r, p, p, p, p, 2, 100, 32),
		"gemv huge C":            Gemv(r, p, p, W{Data: p, Scales: p, GroupSize: math.MaxInt32 + 1, Bits: 8}, 0, 1, math.MaxInt32+1, 1, ActNone),
		"gemv bits 3":            Gemv(r, p, p, W{Data: p, Bits: 3}, 0, 1, 64, 4, ActNone),
		"gemm unknown act":       GemmF32(r, p, p, W{Data: p, Bits: 32}, 0, 1, 64, 4, Act(7)),
		"gemm T 0":               GemmF32(r, p, p, W{Data: p, Bits: 32}, 0, 0, 64, 4, ActNone),
		"gemm f16 of int8":       GemmF16(r, p, p, W{Data: p, Scales: p, GroupSize: 64, Bits: 8}, 0, 1, 64, 4, ActNone),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if len(r.launches) != 0 {
		t.Errorf("launched %v for bad shapes", r.launches)
	}
}

func TestTablesAgree(t *testing.T) {
	if len(Names) != len(Signatures) || len(Names) != len(Modules) {
		t.Fatalf("%d names, %d signatures, %d modules", len(Names), len(Signatures), len(Modules))
	}
	for _, n := range Names {
		if Signatures[n] == "" || Modules[n] == "" {
			t.Errorf("%s missing from a table", n)
		}
	}
}
