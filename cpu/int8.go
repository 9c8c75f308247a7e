package cpu

// Integer inner loops of the quantized Linear kernels (qlinear.go): pure-Go references and the
// dispatch to the amd64 assembly in int8_amd64.s. Like gemm.go, the path is chosen at init from
// the CPU features and tests overwrite the selectors to force each available path in turn.

// Weight-only GEMV paths (woISA) and W8A8 integer-dot paths (w8ISA).
const (
	woGo = iota
	woAVX2
	woAVX512
)

const (
	w8Go = iota
	w8AVX2
	w8VNNI
	w8Paths // how many
)

var (
	woISA = detectWOISA()
	w8ISA = detectW8ISA()
)

var woNames = map[int]string{woGo: "go", woAVX2: "avx2", woAVX512: "avx512"}
var w8Names = map[int]string{w8Go: "go", w8AVX2: "avx2", w8VNNI: "vnni"}

// w8Panel is the number of weight rows (output channels) one W8A8 panel holds; the packed panel
// layout for the assembly paths is [C/4][w8Panel][4] bytes: for each group of 4 input channels,
// the 4 codes of every row in turn (what VPDPBUSD multiplies against a broadcast of 4
// activation bytes).
const w8Panel = 32

// w8MR is the number of tokens one W8A8 tile covers (rows of the int32 dot tile).
const w8MR = 6

// ---------------------------------------------------------------------------
// Weight-only GEMV.

// qGemvGo is the pure-Go reference for the weight-only GEMV inner loop. For r < rows, with
// gpr = c/g groups per row and code(r, k) the raw code (int8 for bits 8, the unsigned nibble
// 0..15 for bits 4):
//
//	out[r] = Σ_{j<gpr} invs[r*gpr+j] · Σ_{k∈group j} code(r, k)·x[k]  −  Σ_{j<gpr} zi[r*gpr+j]·xs[j]
//
// where the last term is skipped when zi == nil and xs[j] = Σ_{k∈group j} x[k]. Each group's
// sum is accumulated in float32 in increasing k.
func qGemvGo(bits, rows, c, g int, codes []byte, x, invs, zi, xs, out []float32) {
	if bits == 4 {
		q4GemvGo(rows, c, g, 0, codes, x, invs, zi, xs, out)
		return
	}
	gpr := c / g
	x = x[:c]
	for r := 0; r < rows; r++ {
		var acc, zacc float32
		for j := 0; j < gpr; j++ {
			xg := x[j*g : (j+1)*g]
			cg := codes[r*c+j*g : r*c+(j+1)*g]
			var s float32
			for k, v := range xg {
				s += float32(int8(cg[k])) * v
			}
			acc += invs[r*gpr+j] * s
			if zi != nil {
				zacc += zi[r*gpr+j] * xs[j]
			}
		}
		out[r] = acc - zacc
	}
}

// q4GemvGo is the pure-Go reference for the 4-bit GEMV: qGemvGo's contract for bits 4 with
// code(r, k) = nibble − off (off is 0 or 8: with 8 the code is the signed value the nibble
// stores, so zi needs no +8 term).
func q4GemvGo(rows, c, g, off int, codes []byte, x, invs, zi, xs, out []float32) {
	gpr := c / g
	x = x[:c]
	fo := float32(off)
	for r := 0; r < rows; r++ {
		var acc, zacc float32
		for j := 0; j < gpr; j++ {
			xg := x[j*g : (j+1)*g]
			cg := codes[(r*c+j*g)/2 : (r*c+(j+1)*g)/2]
			var s float32
			for k := 0; k < g; k += 2 {
				b := cg[k/2]
				s += (float32(b&15)-fo)*xg[k] + (float32(b>>4)-fo)*xg[k+1]
			}
			acc += invs[r*gpr+j] * s
			if zi != nil {
				zacc += zi[r*gpr+j] * xs[j]
			}
		}
		out[r] = acc - zacc
	}
}

// qGemvCheck bounds-checks qGemv's arguments once (the assembly reads through raw pointers).
func qGemvCheck(bits, rows, c, g int, codes []byte, x, invs, zi, xs, out []float32) {
	gpr := c / g
	_ = out[rows-1]
	_ = invs[rows*gpr-1]
	_ = x[c-1]
	if zi != nil {
		_ = zi[rows*gpr-1]
		_ = xs[gpr-1]
	}
	_ = codes[(rows*c*bits+7)/8-1]
}

// qGemv dispatches qGemvGo's contract to the selected path. Callers guarantee c%g == 0 and, for
// bits 4, that g is even.
func qGemv(bits, rows, c, g int, codes []byte, x, invs, zi, xs, out []float32) {
	if bits == 4 {
		q4Gemv(rows, c, g, 0, codes, x, invs, zi, xs, out)
		return
	}
	if rows <= 0 {
		return
	}
	qGemvCheck(bits, rows, c, g, codes, x, invs, zi, xs, out)
	if woISA == woGo || !qGemvArchOK(bits, g) {
		qGemvGo(bits, rows, c, g, codes, x, invs, zi, xs, out)
		return
	}
	qGemvArch(bits, rows, c, g, codes, x, invs, zi, xs, out)
}

// q4Gemv dispatches q4GemvGo's contract (off 0 or 8) to the selected path. Callers guarantee
// c%g == 0 and g even.
func q4Gemv(rows, c, g, off int, codes []byte, x, invs, zi, xs, out []float32) {
	if rows <= 0 {
		return
	}
	if off != 0 && off != 8 {
		panic("cpu: 4-bit code offset must be 0 or 8")
	}
	qGemvCheck(4, rows, c, g, codes, x, invs, zi, xs, out)
	if woISA == woGo || !qGemvArchOK(4, g) {
		q4GemvGo(rows, c, g, off, codes, x, invs, zi, xs, out)
		return
	}
	p := getF32(c)
	q4Perm(*p, x)
	q4GemvArch(rows, c, g, off, codes, *p, invs, zi, xs, out)
	f32Pool.Put(p)
}

// q4Perm writes x in the nibble order the 4-bit assembly GEMVs read (len(x) a multiple of 32):
// dst[32b+i] = x[32b+2i] and dst[32b+16+i] = x[32b+2i+1] for i < 16.
func q4Perm(dst, x []float32) {
	for b := 0; b+32 <= len(x); b += 32 {
		d, s := dst[b:b+32], x[b:b+32]
		for i := 0; i < 16; i++ {
			d[i] = s[2*i]
			d[16+i] = s[2*i+1]
		}
	}
}

// ---------------------------------------------------------------------------
// W8A8 integer dot tiles.

// i8DotsGo is the pure-Go reference for one W8A8 tile: for j < nrows, t < mr, and each of the
// gpr = c/g groups,
//
//	out[(grp*w8MR + t)*w8Panel + j] = Σ_{k∈group grp} qa[t*c+k] · w[j*c+k]
//
// exactly, in int32 (|qa| ≤ 127, |w| ≤ 128, so no sum of at most 2^16 terms overflows).
func i8DotsGo(mr, nrows, c, g int, qa, w []int8, out []int32) {
	gpr := c / g
	for grp := 0; grp < gpr; grp++ {
		for t := 0; t < mr; t++ {
			a := qa[t*c+grp*g : t*c+(grp+1)*g]
			o := out[(grp*w8MR+t)*w8Panel:]
			for j := 0; j < nrows; j++ {
				wr := w[j*c+grp*g : j*c+(grp+1)*g]
				var s int32
				for k, v := range a {
					s += int32(v) * int32(wr[k])
				}
				o[j] = s
			}
		}
	}
}

// w8Epilogue is the pure-Go float epilogue of one W8A8 tile (the assembly paths have their own):
// for t < w8MR, j < w8Panel,
//
//	facc[t*w8Panel+j] = Σ_grp invs[grp*w8Panel+j]·float(dots[(grp*w8MR+t)*w8Panel+j]) − zinv[grp*w8Panel+j]·qs[t*ldq+grp]
//
// with the zero-point term skipped when zinv == nil.
func w8EpilogueGo(gpr, mr int, dots []int32, invs, zinv, qs []float32, ldq int, facc []float32) {
	for t := 0; t < mr; t++ {
		f := facc[t*w8Panel : (t+1)*w8Panel]
		clear(f)
		for grp := 0; grp < gpr; grp++ {
			d := dots[(grp*w8MR+t)*w8Panel:]
			iv := invs[grp*w8Panel:]
			for j := range f {
				f[j] += iv[j] * float32(d[j])
			}
			if zinv != nil {
				q := qs[t*ldq+grp]
				zv := zinv[grp*w8Panel:]
				for j := range f {
					f[j] -= zv[j] * q
				}
			}
		}
	}
}
