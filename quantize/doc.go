// Package quantize turns float weights into integer codes with scales (absmax and zero-point, per
// tensor, per output channel or per group), measures the error, and saves/loads quantized checkpoints.
//
// # Quantizers
//
// Quantize and QuantizeWeights implement the weight-quantization tutorial's formulas in float32,
// one rounding per operation, rounding half to even (math.RoundToEven, torch.round):
//
//	absmax:     s = qmax / max|x|          q = round(x·s)                qmax 127 (int8), 7 (int4)
//	zero-point: s = levels / (max − min)   z = round(−s·min − 2^(bits−1))
//	            q = clamp(round(x·s + z), −2^(bits−1), 2^(bits−1) − 1)   levels 255 (int8), 15 (int4)
//
// The "article" preset uses 100 and 200 in place of 127 and 255 at 8 bits (4 bits is unchanged).
// a / b is computed as PyTorch computes `127 / tensor`, i.e. (1/b)·a rounded twice, so that codes
// match the PyTorch reference (scripts/reference_gpt2.py quant) bit for bit. A value dequantizes
// to (q − z)/s.
//
// Degenerate groups: absmax with max|x| = 0 takes s = 1 (codes 0, exact); zero-point with
// max = min takes the range as 1, so s = levels and the codes are well defined (constants 0 and
// ±1, the biases and gains of a fresh checkpoint, dequantize exactly; others within half a step).
// Scales that would overflow float32 are clamped to its largest value. NaN and ±Inf are errors.
//
// Granularity "tensor" gives one group for the whole tensor, "channel" one per output row (the
// whole vector for 1-D tensors), "group:N" N consecutive values of a row (N must divide the row).
// Scope "weights" (default) quantizes every matrix (wte, wpe, the block projections, an untied
// head), "linear" only the four block projections, "all" every parameter.
//
// # Checkpoint format (format "gpuquant", format_version "1")
//
// A quantized checkpoint is a folder holding model.safetensors, config.json (copied from the
// source folder) and whichever of vocab.json, merges.txt and tokenizer.json the source had.
// model.safetensors carries, for every quantized parameter NAME (Hugging Face names without the
// "transformer." prefix, e.g. "h.0.attn.c_attn.weight"):
//
//	NAME.qcodes  I8, shape = the parameter's shape (int8 codes, two's complement), or
//	             U8, shape [ceil(n/2)] (int4: two codes per byte, element 2i in the low nibble,
//	             2i+1 in the high nibble, each stored as q+8)
//	NAME.qscale  F32, [groups]: the multiplier s of each group of n/groups consecutive values
//	NAME.qzero   F32, [groups]: integer-valued zero-points (zero-point scheme only)
//
// and every other parameter as F32 under its own name. All matrices, quantized or not, are in
// the in-memory (out, in) layout: Hugging Face's Conv1D weights are stored transposed relative to
// a Hugging Face checkpoint. A tied head is not stored. F32 tensors come first in the file so that
// each is 4-byte aligned. The header's __metadata__ holds (all strings):
//
//	format "gpuquant", format_version "1", scheme "absmax"|"zeropoint", bits "8"|"4",
//	granularity "tensor"|"channel"|"group:N", scope "weights"|"all"|"linear",
//	preset "standard"|"article", layout "out_in"
//
// Open refuses other format versions and layouts, and checks every tensor: dtypes and shapes,
// scale (and zero-point) counts against the codes and the granularity, finite positive scales,
// integer zero-points, finite float values, no missing or unexpected tensors.
//
// Save writes the folder under a temporary sibling name and renames it into place when complete;
// it never writes into the source folder, and replaces an existing folder only when forced, and
// only after the new one is complete.
package quantize
