package quantize

import (
	"fmt"
	"math"

	"github.com/gpuquant/gpuquant/model"
)

// Spec says how a model's weights are to be stored on a backend: as they are (a float32 or an
// already quantized checkpoint), with every float32 matrix as IEEE half (Half, GPU only), or
// quantized with Quant. It travels with the weights to Backend.Upload, and each backend decides
// whether to quantize on the host or on its device.
type Spec struct {
	Quant *Options // nil: no quantization
	Half  bool
}

// Float reports whether the spec leaves the weights as they are.
func (s Spec) Float() bool { return s.Quant == nil && !s.Half }

// Validate refuses a spec that is both half and quantized, and bad Options.
func (s Spec) Validate() error {
	if s.Quant == nil {
		return nil
	}
	if s.Half {
		return fmt.Errorf("quantize: a spec is either half or quantized (%s), not both", s.Quant)
	}
	return s.Quant.Validate()
}

// SchemeFP16 is the name of the half-precision spec in flags and reports.
const SchemeFP16 = "fp16"

// Fields describe the spec for JSON reports: scheme, bits, granularity, scope and preset.
func (s Spec) Fields() map[string]any {
	switch {
	case s.Half:
		return map[string]any{"scheme": SchemeFP16, "bits": 16, "granularity": "", "scope": ScopeWeights, "preset": ""}
	case s.Quant == nil:
		return map[string]any{"scheme": "fp32", "bits": 32, "granularity": "", "scope": "", "preset": ""}
	}
	q := s.Quant
	return map[string]any{"scheme": string(q.Scheme), "bits": q.Bits, "granularity": q.Granularity.String(), "scope": q.Scope, "preset": q.Preset}
}

// RunsFloat reports whether parameters of kind run as float32 whatever the scope: LayerNorm gains
// and biases are 0.1% of GPT-2 and every kernel reads them as float32, so scope "all" (the
// tutorial's, which only measures their error) quantizes them and backends expand them back.
func RunsFloat(kind model.Kind) bool { return kind == model.KindNorm || kind == model.KindBias }

// Linear kernels for quantized weights, on every backend.
const (
	KernelAuto       = "auto"        // weight-only (W8A8 changes the numerics, so it is opt-in)
	KernelWeightOnly = "weight-only" // float activations, codes dequantized in the inner loop
	KernelW8A8       = "w8a8"        // int8 activations per token × int8 weights, int32 dots
)

// ParseKernel reads a kernel name ("" is KernelAuto).
func ParseKernel(k string) (string, error) {
	switch k {
	case "":
		return KernelAuto, nil
	case KernelAuto, KernelWeightOnly, KernelW8A8:
		return k, nil
	}
	return "", fmt.Errorf("unknown kernel %q (want %q, %q or %q)", k, KernelAuto, KernelWeightOnly, KernelW8A8)
}

// Constants are a quantizer's numbers, shared by the host quantizer and the device kernels.
type Constants struct {
	// Num is the scale's numerator: qmax (127 or 7) for absmax, levels (255 or 15) for zero-point;
	// 100 and 200 for the int8 article preset.
	Num float32
	// Offset is the zero-point code offset 2^(bits−1) (0 for absmax).
	Offset float32
	// Lo and Hi bound the codes.
	Lo, Hi int
}

// Constants returns the quantizer's constants for o's scheme, bits and preset.
func (o Options) Constants() Constants {
	o = o.withDefaults()
	half := 1 << (o.Bits - 1) // 128 or 8
	article := o.Preset == PresetArticle && o.Bits == 8
	if o.Scheme == Absmax {
		c := Constants{Num: float32(half - 1), Lo: -(half - 1), Hi: half - 1}
		if article {
			c.Num = 100
		}
		return c
	}
	c := Constants{Num: float32(2*half - 1), Offset: float32(half), Lo: -half, Hi: half - 1}
	if article {
		c.Num = 200
	}
	return c
}

// RowGroup is the group width inside a row of an (OC, C) matrix quantized in groups of
// groupSize flat values: groupSize itself when it divides C, else C (per tensor: groupSize a
// multiple of C). The kernels of every backend index scales by it.
func RowGroup(C, OC, groupSize int) (int, error) {
	switch {
	case C <= 0 || OC <= 0 || C > math.MaxInt32 || OC > math.MaxInt32:
		return 0, fmt.Errorf("bad matrix shape (%d, %d)", OC, C)
	case groupSize <= 0 || (OC*C)%groupSize != 0:
		return 0, fmt.Errorf("group size %d does not divide %d×%d values", groupSize, OC, C)
	case groupSize <= C && C%groupSize == 0:
		return groupSize, nil
	case groupSize > C && groupSize%C == 0:
		return C, nil
	}
	return 0, fmt.Errorf("group size %d neither divides nor is a multiple of the row length %d", groupSize, C)
}

// Backend is a model.Ops that places weights itself: the seam between the tool and a backend
// (package cpu, package gpu).
type Backend interface {
	model.Ops
	// Upload makes w runnable on the backend, stored as spec says; each backend quantizes where it
	// chooses (the CPU in memory, a GPU on the device). w holds host tensors, or float32 weights
	// that an earlier Upload of the same backend returned (a GPU quantizes those where they are).
	// The result may share w's tensors and checkpoint mapping: keep w open while it is in use.
	Upload(w *model.Weights, spec Spec) (*model.Weights, error)
	// HostWeights returns host weights equal to what w (from Upload of src) runs: the stored
	// codes of quantized tensors, float32 norms and biases, src's tensors for the float ones; for
	// error statistics, histograms and checkpoints.
	HostWeights(w, src *model.Weights) (*model.Weights, error)
	// Close releases the backend's device, if it holds one.
	Close() error
}
