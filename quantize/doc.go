// Package quantize turns float weights into integer codes with scales (absmax and zero-point, per
// tensor, per output channel or per group), measures the error, and saves/loads quantized checkpoints.
package quantize
