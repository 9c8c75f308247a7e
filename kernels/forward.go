package kernels

// Launchers of the GPT-2 forward-pass kernels of norm.cu and attention.cu (everything but the
// Linear layers): embedding, LayerNorm (plain and fused with the residual add), residual add,
// GELU, causal attention over a key/value cache, and the per-token negative log-likelihood. All
// activations are float32, row-major.
//
// Positions live in device memory (pos: one int32, pos0), read by the kernels at run time, so
// the launches (grids included) do not depend on them and a captured CUDA graph replays at a new
// position after one int32 copy. Nothing here can check pos0 or the token ids: the caller keeps
// 0 ≤ tokens[t] < vocabulary rows and pos0 + T ≤ the position/cache rows.

import (
	"errors"
	"fmt"
	"math"
)

// Kernel names of norm.cu and attention.cu.
const (
	KEmbed        = "embed"
	KLayerNorm    = "layernorm"
	KAddLayerNorm = "add_layernorm"
	KAdd          = "add"
	KGELU         = "gelu"
	KNLL          = "nll"
	KAttention    = "attention"
)

const (
	rowBlock      = 256 // threads per row of layernorm, add_layernorm
	nllBlock      = 512 // threads per row of nll (V up to 50257)
	attRowThreads = 256 // attention row blocks: 8 warps split the keys (ATT_ROW_WARPS·32)
	attTileThr    = 128 // attention tile blocks (ATT_TILE_THREADS)
	attBR         = 16  // query rows per tile block (ATT_BR)
	attHDMax      = 128 // largest head size (ATT_HDMAX)
	// AttentionRowT is the largest T that attention runs as one block per (head, query row)
	// (decoding); larger T runs tiles of attBR query rows per block (prefill).
	AttentionRowT = 8
)

// W is a weight operand as the kernels read it (common.cuh gq_weight): Bits 32 (float32) or 16
// (IEEE half) with Scales and Zeros 0 and GroupSize ignored, or 8 / 4 (codes laid out as
// quantize.Tensor) with Scales per group of GroupSize flat values and Zeros (zero-point scheme)
// or 0 (absmax).
type W struct {
	Data, Scales, Zeros Ptr
	GroupSize, Bits     int
}

func (w W) check() error {
	switch {
	case w.Data == 0:
		return errors.New("weight without data")
	case w.Bits == 32 || w.Bits == 16:
		if w.Scales != 0 || w.Zeros != 0 {
			return fmt.Errorf("a %d-bit float weight takes no scales or zero-points", w.Bits)
		}
	case w.Bits == 8 || w.Bits == 4:
		if w.Scales == 0 || w.GroupSize <= 0 {
			return fmt.Errorf("a %d-bit weight needs scales and a group size (got %d)", w.Bits, w.GroupSize)
		}
	default:
		return fmt.Errorf("unsupported weight bits %d (want 32, 16, 8 or 4)", w.Bits)
	}
	return nil
}

// args are the five kernel arguments of w.
func (w W) args() []any { return []any{w.Data, w.Scales, w.Zeros, w.groupArg(), int32(w.Bits)} }

// checkRows validates a (T, C) activation shape for a kernel with T or T·C in int32 arguments.
func checkRows(T, C int) error {
	if T <= 0 || C <= 0 || T > math.MaxInt32 || C > math.MaxInt32 {
		return fmt.Errorf("bad shape T=%d C=%d", T, C)
	}
	return nil
}

func checkPtrs(names string, ps ...Ptr) error {
	for _, p := range ps {
		if p == 0 {
			return fmt.Errorf("null pointer among %s", names)
		}
	}
	return nil
}

func gridStride(n int) Dim3 { return Dim3{min(ceilDiv(n, quantBlock), maxBlocks), 1, 1} }

// Embed writes out(T, C) = wte[tokens[t]] + wpe[pos0+t] (cpu.Backend.Embed, bit-exact): tokens
// (T) int32 and pos (1) int32 on the device; wte (V, C) and wpe (maxT, C) in any W format.
func Embed(d Device, out, tokens, pos Ptr, wte, wpe W, T, C int) error {
	if err := checkRows(T, C); err != nil {
		return fmt.Errorf("kernels: embed: %w", err)
	}
	if err := checkPtrs("out, tokens, pos", out, tokens, pos); err != nil {
		return fmt.Errorf("kernels: embed: %w", err)
	}
	if err := wte.check(); err != nil {
		return fmt.Errorf("kernels: embed: wte: %w", err)
	}
	if err := wpe.check(); err != nil {
		return fmt.Errorf("kernels: embed: wpe: %w", err)
	}
	args := append([]any{out, tokens, pos}, wte.args()...)
	args = append(args, wpe.args()...)
	args = append(args, int32(T), int32(C))
	return wrap("embed", d.Launch(KEmbed, gridStride(T*C), Dim3{quantBlock, 1, 1}, 0, args...))
}

// LayerNorm writes out(T, C) = (in − mean)/√(var + eps)·w + b per row (cpu.Backend.LayerNorm);
// w and b are (C) float32. out may be in.
func LayerNorm(d Device, out, in, w, b Ptr, T, C int, eps float32) error {
	if err := checkRows(T, C); err != nil {
		return fmt.Errorf("kernels: layernorm: %w", err)
	}
	if err := checkPtrs("out, in, w, b", out, in, w, b); err != nil {
		return fmt.Errorf("kernels: layernorm: %w", err)
	}
	return wrap("layernorm", d.Launch(KLayerNorm, Dim3{T, 1, 1}, Dim3{rowBlock, 1, 1}, 0,
		out, in, w, b, int32(T), int32(C), eps))
}

// AddLayerNorm is the residual add fused with the next LayerNorm: x(T, C) += y, then
// out = LayerNorm(x) with w, b (C) float32. out must not overlap x or y.
func AddLayerNorm(d Device, x, y, out, w, b Ptr, T, C int, eps float32) error {
	if err := checkRows(T, C); err != nil {
		return fmt.Errorf("kernels: add+layernorm: %w", err)
	}
	if err := checkPtrs("x, y, out, w, b", x, y, out, w, b); err != nil {
		return fmt.Errorf("kernels: add+layernorm: %w", err)
	}
	return wrap("add+layernorm", d.Launch(KAddLayerNorm, Dim3{T, 1, 1}, Dim3{rowBlock, 1, 1}, 0,
		x, y, out, w, b, int32(T), int32(C), eps))
}

// Add sets x[i] += y[i] for n values (exact).
func Add(d Device, x, y Ptr, n int) error {
	if n <= 0 {
		return fmt.Errorf("kernels: add: %d values", n)
	}
	if err := checkPtrs("x, y", x, y); err != nil {
		return fmt.Errorf("kernels: add: %w", err)
	}
	return wrap("add", d.Launch(KAdd, gridStride(n), Dim3{quantBlock, 1, 1}, 0, x, y, int64(n)))
}

// GELU applies GPT-2's gelu_new to n values in place (cpu.Backend.GELU).
func GELU(d Device, x Ptr, n int) error {
	if n <= 0 {
		return fmt.Errorf("kernels: gelu: %d values", n)
	}
	if err := checkPtrs("x", x); err != nil {
		return fmt.Errorf("kernels: gelu: %w", err)
	}
	return wrap("gelu", d.Launch(KGELU, gridStride(n), Dim3{quantBlock, 1, 1}, 0, x, int64(n)))
}

// Attention is cpu.Backend.Attention for T new tokens at positions pos0.. (pos: one int32 on the
// device): it stores their keys and values, columns C:2C and 2C:3C of qkv(T, 3C), into the
// caches k, v (maxT, C) at rows pos0.., and writes out(T, C), causal multi-head attention of each
// query over positions [0, pos0+t]. One launch, not sized by pos0. The head size C/nHead must be a multiple of 4 and at most 128; out, qkv, k and v must be
// 16-byte aligned; pos0 + T must not exceed maxT (not checkable here).
func Attention(d Device, out, qkv, k, v, pos Ptr, T, C, nHead int) error {
	if err := attention(d, out, qkv, k, v, pos, T, C, nHead); err != nil {
		return fmt.Errorf("kernels: attention: %w", err)
	}
	return nil
}

func attention(d Device, out, qkv, k, v, pos Ptr, T, C, nHead int) error {
	if err := checkRows(T, 3*C); err != nil {
		return err
	}
	switch {
	case T > 65535:
		return fmt.Errorf("T=%d exceeds 65535 (a grid dimension)", T)
	case nHead <= 0 || nHead > 65535 || C%nHead != 0:
		return fmt.Errorf("%d heads do not divide C=%d", nHead, C)
	case (C/nHead)%4 != 0 || C/nHead > attHDMax:
		return fmt.Errorf("head size %d unsupported (a multiple of 4, at most %d)", C/nHead, attHDMax)
	}
	if err := checkPtrs("out, qkv, k, v, pos", out, qkv, k, v, pos); err != nil {
		return err
	}
	for _, p := range []Ptr{out, qkv, k, v} {
		if p%16 != 0 {
			return fmt.Errorf("buffer %#x is not 16-byte aligned (float4 loads)", uintptr(p))
		}
	}
	grid, block := Dim3{nHead, T, 1}, Dim3{attRowThreads, 1, 1}
	if T > AttentionRowT {
		grid, block = Dim3{nHead, ceilDiv(T, attBR), 1}, Dim3{attTileThr, 1, 1}
	}
	return d.Launch(KAttention, grid, block, 0, out, qkv, k, v, pos, int32(T), int32(C), int32(nHead))
}

// NLL writes dst(T) float64 = −log softmax(logits[t])[targets[t]] (cpu.Backend.NLL) for logits
// (T, V) float32 and targets (T) int32; a target outside [0, V) gives NaN.
func NLL(d Device, dst, logits, targets Ptr, T, V int) error {
	if err := checkRows(T, V); err != nil {
		return fmt.Errorf("kernels: nll: %w", err)
	}
	if err := checkPtrs("dst, logits, targets", dst, logits, targets); err != nil {
		return fmt.Errorf("kernels: nll: %w", err)
	}
	return wrap("nll", d.Launch(KNLL, Dim3{T, 1, 1}, Dim3{nllBlock, 1, 1}, 0, dst, logits, targets, int32(T), int32(V)))
}
