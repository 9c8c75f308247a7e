package kernels

// Typed launchers: one function per kernel family, doing the grid/block maths and argument
// packing over Device. The GPU backend (package gpu, tag cuda) calls them on a real device; the
// tests of kernels/kerneltest call the same functions on the CPU emulator (tag cudaemu) and on a
// GPU (tag cuda).
//
// Shapes use the project's letters: T tokens, C input channels, OC output channels; a quantized
// tensor is n values in G = n/groupSize groups, laid out exactly as quantize.Tensor (int8 codes,
// or int4 packed two per byte, element 2i in the low nibble, each stored as q+8).

import (
	"errors"
	"fmt"
	"math"

	"github.com/gpuquant/gpuquant/quantize"
)

// Kernel names: the extern "C" symbols of quant.cu, gemv.cu and gemm_int8.cu.
const (
	KQuantMinmaxInit = "quant_minmax_init"
	KQuantMinmax     = "quant_minmax"
	KQuantParams     = "quant_params"
	KQuantEncode     = "quant_encode"
	KDequant         = "dequant"
	KQuantActRows    = "quant_act_rows"
	KGemv            = "gemv"
	KGemmF32         = "gemm_f32"
	KGemmF16         = "gemm_f16"
	KGemmW8A8        = "gemm_w8a8"
)

// Signatures maps every kernel name to its parameter kinds, one letter each in order: p pointer,
// i int32, u uint32, l int64, f float32 (what Device.Launch passes). The CPU emulator checks every
// launch against the compiled kernel, and a test checks this table against it.
var Signatures = map[string]string{
	KQuantMinmaxInit: "pi",
	KQuantMinmax:     "pplli",
	KQuantParams:     "pppiiff",
	KQuantEncode:     "pppplli",
	KDequant:         "pppplli",
	KQuantActRows:    "ppppiii",
	KGemv:            "ppppppiiilii",
	KGemmF32:         "ppppppiiilii",
	KGemmF16:         "ppppiiii",
	KGemmW8A8:        "ppppppppiiilii",
	KEmbed:           "pppppplipppliii",
	KLayerNorm:       "ppppiif",
	KAddLayerNorm:    "pppppiif",
	KAdd:             "ppl",
	KGELU:            "pl",
	KNLL:             "pppii",
	KAttention:       "pppppiii",
}

// Modules maps every kernel name to the PTX module (one per .cu file) that defines it.
var Modules = map[string]string{
	KQuantMinmaxInit: "quant.ptx",
	KQuantMinmax:     "quant.ptx",
	KQuantParams:     "quant.ptx",
	KQuantEncode:     "quant.ptx",
	KDequant:         "quant.ptx",
	KQuantActRows:    "quant.ptx",
	KGemv:            "gemv.ptx",
	KGemmF32:         "gemm_f32.ptx",
	KGemmF16:         "gemm_f16.ptx",
	KGemmW8A8:        "gemm_int8.ptx",
	KEmbed:           "norm.ptx",
	KLayerNorm:       "norm.ptx",
	KAddLayerNorm:    "norm.ptx",
	KAdd:             "norm.ptx",
	KGELU:            "norm.ptx",
	KNLL:             "norm.ptx",
	KAttention:       "attention.ptx",
}

// Names lists the kernels in a fixed order.
var Names = []string{KQuantMinmaxInit, KQuantMinmax, KQuantParams, KQuantEncode, KDequant, KQuantActRows, KGemv, KGemmF32, KGemmF16, KGemmW8A8,
	KEmbed, KLayerNorm, KAddLayerNorm, KAdd, KGELU, KNLL, KAttention}

// Scheme numbers as the kernels read them (common.cuh GQ_ABSMAX, GQ_ZEROPOINT).
type Scheme int32

// Schemes.
const (
	Absmax    Scheme = 0 // q = rint(x·s), s = qmax/max|x|
	ZeroPoint Scheme = 1 // q = clamp(rint(x·s + z)), s = levels/(max − min), z = rint(−s·min − 2^(bits−1))
)

const (
	quantBlock = 256  // threads per block of the element-wise and per-group kernels
	minmaxSeg  = 2048 // values one warp of quant_minmax scans
	maxBlocks  = 4096 // grid cap of the grid-stride kernels
	gemvTok    = 4    // GEMV_TOK in gemv.cu
	gemvWarps  = 4    // rows (warps) per GEMV block
	gfTile     = 64   // GF_BM = GF_BN in gemm_f32.cu
	hTile      = 64   // H_BM = H_BN in gemm_f16.cu
	w8Tile     = W8A8Tile
)

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// CodeBytes is the size of the codes of n values at bits 8 or 4.
func CodeBytes(n, bits int) int { return (n*bits + 7) / 8 }

// QuantizeWorkBytes is the size of Quantize's workspace: an int32 (min, max) pair per group.
func QuantizeWorkBytes(n, groupSize int) int { return 8 * (n / groupSize) }

func checkGroups(n, groupSize int) error {
	switch {
	case n <= 0:
		return fmt.Errorf("empty tensor (%d values)", n)
	case groupSize <= 0 || n%groupSize != 0:
		return fmt.Errorf("group size %d does not divide %d values", groupSize, n)
	case n/groupSize > math.MaxInt32:
		return fmt.Errorf("%d groups exceed int32", n/groupSize)
	}
	return nil
}

// Quantize writes the codes, scales and (ZeroPoint) zero-points of x(n) in groups of groupSize
// consecutive values — n per tensor, C per channel, N per group:N — bit-identical to
// quantize.Quantize, without a host round trip: four launches (quant_minmax_init, quant_minmax,
// quant_params, quant_encode). codes: CodeBytes(n, bits) bytes; scales, zeros: (n/groupSize)
// float32, zeros 0 for Absmax; work: QuantizeWorkBytes(n, groupSize) bytes. A group holding NaN or
// ±Inf (or whose range overflows float32) gets a NaN scale: callers that accept untrusted data
// check the scales.
func Quantize(d Device, codes, scales, zeros, work, x Ptr, n, groupSize int, q quantize.Options) error {
	if err := quantizeGroups(d, codes, scales, zeros, work, x, n, groupSize, q); err != nil {
		return fmt.Errorf("kernels: quantize: %w", err)
	}
	return nil
}

func quantizeGroups(d Device, codes, scales, zeros, work, x Ptr, n, groupSize int, q quantize.Options) error {
	// Granularity is the launch's groupSize: only the scheme, bits and preset matter here.
	if q.Bits != 8 && q.Bits != 4 {
		return fmt.Errorf("unsupported bits %d (want 8 or 4)", q.Bits)
	}
	if q.Scheme != quantize.Absmax && q.Scheme != quantize.ZeroPoint {
		return fmt.Errorf("unknown scheme %q", q.Scheme)
	}
	k := q.Constants()
	if err := checkGroups(n, groupSize); err != nil {
		return err
	}
	scheme := Absmax
	if q.Scheme == quantize.ZeroPoint {
		scheme = ZeroPoint
	}
	if (scheme == ZeroPoint) != (zeros != 0) {
		return errors.New("zero-points must be given for ZeroPoint and only for it")
	}
	G := n / groupSize
	seg := min(groupSize, minmaxSeg)
	warps := G * ceilDiv(groupSize, seg)
	blk := Dim3{quantBlock, 1, 1}
	if err := d.Launch(KQuantMinmaxInit, Dim3{ceilDiv(G, quantBlock), 1, 1}, blk, 0, work, int32(G)); err != nil {
		return err
	}
	if err := d.Launch(KQuantMinmax, Dim3{ceilDiv(warps, quantBlock/32), 1, 1}, blk, 0,
		work, x, int64(n), int64(groupSize), int32(seg)); err != nil {
		return err
	}
	if err := d.Launch(KQuantParams, Dim3{ceilDiv(G, quantBlock), 1, 1}, blk, 0,
		scales, zeros, work, int32(G), int32(scheme), k.Num, k.Offset); err != nil {
		return err
	}
	nb := CodeBytes(n, q.Bits)
	return d.Launch(KQuantEncode, Dim3{min(ceilDiv(nb, quantBlock), maxBlocks), 1, 1}, blk, 0,
		codes, x, scales, zeros, int64(n), int64(groupSize), int32(q.Bits))
}

// Dequantize writes out(n) = (q − z)/s, exactly quantize.Tensor.Dequantize; zeros is 0 for Absmax.
func Dequantize(d Device, out, codes, scales, zeros Ptr, n, groupSize, bits int) error {
	if err := checkGroups(n, groupSize); err != nil {
		return fmt.Errorf("kernels: dequantize: %w", err)
	}
	if bits != 8 && bits != 4 {
		return fmt.Errorf("kernels: dequantize: unsupported bits %d", bits)
	}
	return wrap("dequantize", d.Launch(KDequant, Dim3{min(ceilDiv(n, quantBlock), maxBlocks), 1, 1}, Dim3{quantBlock, 1, 1}, 0,
		out, codes, scales, zeros, int64(n), int64(groupSize), int32(bits)))
}

func wrap(op string, err error) error {
	if err != nil {
		return fmt.Errorf("kernels: %s: %w", op, err)
	}
	return nil
}

// W8A8GroupWidth is the g that QuantizeActs must use for the qsum that GemmW8A8 reads: the group
// width inside a weight row.
func W8A8GroupWidth(C, OC, groupSize int) (int, error) { return quantize.RowGroup(C, OC, groupSize) }

// QuantizeActs quantizes activations x(T, C) per token for W8A8, as the CPU backend does: codes
// qa(T, C) int8 with scale 127/max|x_t| (round half to even), inv(T) float32 = 1/scale, and, when
// qsum is not 0, qsum(T, C/g) int32 the sums of each token's codes over groups of g (needed by
// GemmW8A8 for zero-point weights; g from W8A8GroupWidth).
func QuantizeActs(d Device, qa, inv, qsum, x Ptr, T, C, g int) error {
	if T <= 0 || C <= 0 || T > math.MaxInt32 || C > math.MaxInt32 || g <= 0 || C%g != 0 {
		return fmt.Errorf("kernels: quantize activations: bad shape T=%d C=%d g=%d", T, C, g)
	}
	return wrap("quantize activations", d.Launch(KQuantActRows, Dim3{T, 1, 1}, Dim3{quantBlock, 1, 1}, 0,
		qa, inv, qsum, x, int32(T), int32(C), int32(g)))
}

// W8A8Tile is W8_BM = W8_BN of gemm_int8.cu: the tokens and output channels of one block of
// GemmW8A8 (blockDim 128).
const W8A8Tile = 64

// Act is the activation the linear kernels apply in their epilogue (GQ_ACT_* in common.cuh).
type Act int32

// Activations.
const (
	ActNone Act = 0
	ActGELU Act = 1 // GPT-2's gelu_new: the MLP's bias + GELU fused into its first projection
)

// checkLinear validates a Linear's shape and weight operand and returns the group width inside a
// weight row (C for float weights).
func checkLinear(w W, T, C, OC int, act Act) (int, error) {
	if act != ActNone && act != ActGELU {
		return 0, fmt.Errorf("unknown activation %d", act)
	}
	if T <= 0 || T > math.MaxInt32 {
		return 0, fmt.Errorf("bad T=%d", T)
	}
	if err := w.check(); err != nil {
		return 0, err
	}
	if w.Bits >= 16 {
		if C <= 0 || OC <= 0 || C > math.MaxInt32 || OC > math.MaxInt32 {
			return 0, fmt.Errorf("bad matrix shape (%d, %d)", OC, C)
		}
		return C, nil
	}
	return quantize.RowGroup(C, OC, w.GroupSize)
}

// groupArg is the group size the kernels read (unused for float weights).
func (w W) groupArg() int64 {
	if w.Bits >= 16 {
		return 1
	}
	return int64(w.GroupSize)
}

// Gemv computes out(T, OC) = act(x(T, C) · deq(W)ᵀ + bias) for W (OC, C) in any format, reading
// each weight once per 4 tokens and converting it in registers: the decoding kernel (small T).
// bias may be 0.
func Gemv(d Device, out, x Ptr, w W, bias Ptr, T, C, OC int, act Act) error {
	if _, err := checkLinear(w, T, C, OC, act); err != nil {
		return fmt.Errorf("kernels: gemv: %w", err)
	}
	if ceilDiv(T, gemvTok) > 65535 {
		return fmt.Errorf("kernels: gemv: T=%d exceeds the grid", T)
	}
	return wrap("gemv", d.Launch(KGemv, Dim3{ceilDiv(OC, gemvWarps), ceilDiv(T, gemvTok), 1}, Dim3{32 * gemvWarps, 1, 1}, 0,
		out, x, w.Data, w.Scales, w.Zeros, bias, int32(T), int32(C), int32(OC), w.groupArg(), int32(w.Bits), int32(act)))
}

// GemmF32 computes what Gemv does with 64×64 tiles through shared memory, so that each weight is
// read once per 64 tokens: the prefill kernel for float activations (fp32 and fp16 weights, and
// weight-only int8/int4). fp32 weights are multiplied with plain FMAs (no TF32).
func GemmF32(d Device, out, x Ptr, w W, bias Ptr, T, C, OC int, act Act) error {
	if _, err := checkLinear(w, T, C, OC, act); err != nil {
		return fmt.Errorf("kernels: gemm f32: %w", err)
	}
	if ceilDiv(T, gfTile) > 65535 {
		return fmt.Errorf("kernels: gemm f32: T=%d exceeds the grid", T)
	}
	return wrap("gemm f32", d.Launch(KGemmF32, Dim3{ceilDiv(OC, gfTile), ceilDiv(T, gfTile), 1}, Dim3{256, 1, 1}, 0,
		out, x, w.Data, w.Scales, w.Zeros, bias, int32(T), int32(C), int32(OC), w.groupArg(), int32(w.Bits), int32(act)))
}

// GemmF16 computes out(T, OC) = act(half(x) · Wᵀ + bias) for IEEE half weights (Bits 16) on the
// tensor cores: activations rounded to half, float32 accumulation — how an fp16 model runs
// prefill (the fp16 baseline; GemmF32 keeps the activations float32).
func GemmF16(d Device, out, x Ptr, w W, bias Ptr, T, C, OC int, act Act) error {
	if w.Bits != 16 {
		return fmt.Errorf("kernels: gemm f16: weights of %d bits (want 16)", w.Bits)
	}
	if _, err := checkLinear(w, T, C, OC, act); err != nil {
		return fmt.Errorf("kernels: gemm f16: %w", err)
	}
	if ceilDiv(T, hTile) > 65535 {
		return fmt.Errorf("kernels: gemm f16: T=%d exceeds the grid", T)
	}
	return wrap("gemm f16", d.Launch(KGemmF16, Dim3{ceilDiv(OC, hTile), ceilDiv(T, hTile), 1}, Dim3{128, 1, 1}, 0,
		out, x, w.Data, bias, int32(T), int32(C), int32(OC), int32(act)))
}

// GemmW8A8 computes out(T, OC) = act(inv_t · Σ_groups((1/s)·dot − (z/s)·qsum) + bias) on the
// tensor cores, from QuantizeActs' qa, inv and (for zero-point weights) qsum, and quantized
// weight codes (bits 8 or 4). The group width inside a row must be C or a multiple of 32.
func GemmW8A8(d Device, out, qa, inv, qsum Ptr, w W, bias Ptr, T, C, OC int, act Act) error {
	if w.Bits != 8 && w.Bits != 4 {
		return fmt.Errorf("kernels: gemm w8a8: weights of %d bits (want 8 or 4)", w.Bits)
	}
	gw, err := checkLinear(w, T, C, OC, act)
	if err != nil {
		return fmt.Errorf("kernels: gemm w8a8: %w", err)
	}
	switch {
	case gw != C && gw%32 != 0:
		return fmt.Errorf("kernels: gemm w8a8: group width %d must be C or a multiple of 32", gw)
	case ceilDiv(T, w8Tile) > 65535:
		return fmt.Errorf("kernels: gemm w8a8: T=%d exceeds the grid", T)
	case w.Zeros != 0 && qsum == 0:
		return errors.New("kernels: gemm w8a8: zero-point weights need qsum")
	}
	return wrap("gemm w8a8", d.Launch(KGemmW8A8, Dim3{ceilDiv(OC, w8Tile), ceilDiv(T, w8Tile), 1}, Dim3{128, 1, 1}, 0,
		out, qa, inv, qsum, w.Data, w.Scales, w.Zeros, bias, int32(T), int32(C), int32(OC), w.groupArg(), int32(w.Bits), int32(act)))
}
