//go:build amd64

package cpu

import "golang.org/x/sys/cpu"

func hasAVX512() bool {
	return cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX2 && cpu.X86.HasFMA
}

func hasAVX2() bool { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

func detectWOISA() int {
	switch {
	case hasAVX512():
		return woAVX512
	case hasAVX2():
		return woAVX2
	}
	return woGo
}

func detectW8ISA() int {
	switch {
	case hasAVX512() && cpu.X86.HasAVX512VNNI:
		return w8VNNI
	case hasAVX2():
		return w8AVX2
	}
	return w8Go
}

// availableWOISAs and availableW8ISAs list every path runnable on this CPU (for tests).
func availableWOISAs() []int {
	l := []int{woGo}
	if hasAVX2() {
		l = append(l, woAVX2)
	}
	if hasAVX512() {
		l = append(l, woAVX512)
	}
	return l
}

func availableW8ISAs() []int {
	l := []int{w8Go}
	if hasAVX2() {
		l = append(l, w8AVX2)
	}
	if hasAVX512() && cpu.X86.HasAVX512VNNI {
		l = append(l, w8VNNI)
	}
	return l
}

// qGemvArchOK reports whether the assembly GEMV handles groups of g values (it steps 32 at a time).
func qGemvArchOK(bits, g int) bool { return g%32 == 0 }

func qGemvArch(bits, rows, c, g int, codes []byte, x, invs, zi, xs, out []float32) {
	if bits == 4 {
		q4GemvArch(rows, c, g, 0, codes, x, invs, zi, xs, out)
		return
	}
	var zp, xsp *float32
	if zi != nil {
		zp, xsp = &zi[0], &xs[0]
	}
	if woISA == woAVX512 {
		q8gemvAVX512(rows, c, g, &codes[0], &x[0], &invs[0], zp, xsp, &out[0])
		return
	}
	q8gemvAVX2(rows, c, g, &codes[0], &x[0], &invs[0], zp, xsp, &out[0])
}

// q4Tables are the nibble → float tables of q4gemv4AVX512: value n − off for off 0 and 8.
var q4Tables = [2][16]float32{
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
	{-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7},
}

// q4GemvArch runs q4GemvGo's contract on x in nibble order (q4Perm) with the selected assembly.
// The AVX-512 kernel takes four rows per pass: a ragged end is covered by one more pass over the
// last four rows (recomputing some, identically), and fewer than four rows are padded.
func q4GemvArch(rows, c, g, off int, codes []byte, x, invs, zi, xs, out []float32) {
	var zp, xsp *float32
	if zi != nil {
		zp, xsp = &zi[0], &xs[0]
	}
	if woISA != woAVX512 {
		q4gemvAVX2(rows, c, g, &codes[0], &x[0], &invs[0], zp, xsp, &out[0], int32(off))
		return
	}
	gpr := c / g
	tbl := &q4Tables[off/8][0]
	zmask := uint16(1<<(gpr%16) - 1)
	cb := c / 2
	if rows >= 4 {
		n := rows &^ 3
		q4gemv4AVX512(n, c, g, gpr, &codes[0], &x[0], &invs[0], zp, xsp, tbl, &out[0], zmask)
		if n < rows {
			r0 := rows - 4
			if zi != nil {
				zp = &zi[r0*gpr]
			}
			q4gemv4AVX512(4, c, g, gpr, &codes[r0*cb], &x[0], &invs[r0*gpr], zp, xsp, tbl, &out[r0], zmask)
		}
		return
	}
	pc := make([]byte, 4*cb)
	copy(pc, codes[:rows*cb])
	pi := make([]float32, 4*gpr)
	copy(pi, invs[:rows*gpr])
	if zi != nil {
		pz := make([]float32, 4*gpr)
		copy(pz, zi[:rows*gpr])
		zp = &pz[0]
	}
	var o [4]float32
	q4gemv4AVX512(4, c, g, gpr, &pc[0], &x[0], &pi[0], zp, xsp, tbl, &o[0], zmask)
	copy(out[:rows], o[:rows])
}

// i8DotsArchOK reports whether the assembly W8A8 tiles handle c and g (4 channels per step).
func i8DotsArchOK(c, g int) bool { return c%4 == 0 && g%4 == 0 }

// Assembly kernels (int8_amd64.s).

// q8gemv{AVX512,AVX2} implement qGemvGo's contract for bits 8 and g a multiple of 32; zi (and
// xs) may be nil.
//
//go:noescape
func q8gemvAVX512(rows, c, gs int, codes *byte, x, invs, zi, xs, out *float32)

//go:noescape
func q8gemvAVX2(rows, c, gs int, codes *byte, x, invs, zi, xs, out *float32)

// q4gemvAVX2 implements q4GemvGo's contract (x in nibble order) for g a multiple of 32, one row
// at a time.
//
//go:noescape
func q4gemvAVX2(rows, c, gs int, codes *byte, x, invs, zi, xs, out *float32, off int32)

// q4gemv4AVX512 implements q4GemvGo's contract (x in nibble order) for g a multiple of 32 and
// rows a multiple of 4, four rows per pass; tbl is q4Tables[off/8], gpr = c/g and zmask =
// 1<<(gpr%16) − 1.
//
//go:noescape
func q4gemv4AVX512(rows, c, gs, gpr int, codes *byte, x, invs, zi, xs, tbl, out *float32, zmask uint16)

// i8dotsVNNI computes one W8A8 tile of w8MR tokens × w8Panel rows: for each of ngroups groups of
// 4·gsteps channels, out[grp][t][j] = Σ (a[t][k] ^ 0x80)·w[j][k] − wcorr[grp][j], where a[t] points
// at token t's activation codes stored as unsigned bytes (q+128), bp at the packed panel
// ([k/4][w8Panel][4] signed codes) and wcorr[grp][j] = 128·Σ_{k∈grp} w[j][k]; so out is the exact
// signed dot Σ qa·qw.
//
//go:noescape
func i8dotsVNNI(ngroups, gsteps int, a *[w8MR]*byte, bp *byte, wcorr *int32, out *int32)

// i8dotsAVX2 computes 4 tokens × 8 rows of a tile with VPMADDWD on sign-extended 16-bit values:
// bp points at the chunk's first row inside the packed panel (steps still 4·w8Panel bytes apart),
// a[t] at token t's codes as int16, out at the chunk's first column of the [grp][w8MR][w8Panel]
// int32 tile.
//
//go:noescape
func i8dotsAVX2(ngroups, gsteps int, a *[4]*int16, bp *byte, out *int32)

// w8EpiAVX512 is w8EpilogueGo for a whole w8MR×w8Panel tile (zinv may be nil; qs then unused).
//
//go:noescape
func w8EpiAVX512(gpr int, dots *int32, invs, zinv, qs *float32, ldq int, facc *float32)

// w8EpiAVX2 is w8EpilogueGo for tokens 0..3 and 8 columns: dots, invs, zinv and facc point at the
// chunk's first column (strides are those of the full tile).
//
//go:noescape
func w8EpiAVX2(gpr int, dots *int32, invs, zinv, qs *float32, ldq int, facc *float32)

// i8DotsArch runs the selected assembly tile (w8VNNI: w8MR tokens; w8AVX2: 4 tokens) for mr
// valid tokens whose codes start at a8 (unsigned, VNNI) or a16 (int16, AVX2), c apart; missing
// tokens repeat the last valid one (their rows of out are computed but meaningless).
func i8DotsArch(mr, c, gpr, g int, a8 []byte, a16 []int16, bp []byte, wcorr []int32, out []int32) {
	gsteps := g / 4
	_ = out[gpr*w8MR*w8Panel-1]
	_ = bp[c*w8Panel-1]
	if w8ISA == w8VNNI {
		_ = a8[mr*c-1]
		_ = wcorr[gpr*w8Panel-1]
		var ap [w8MR]*byte
		for t := range ap {
			ap[t] = &a8[min(t, mr-1)*c]
		}
		i8dotsVNNI(gpr, gsteps, &ap, &bp[0], &wcorr[0], &out[0])
		return
	}
	if mr > 4 {
		panic("cpu: AVX2 W8A8 tile is 4 tokens high")
	}
	_ = a16[mr*c-1]
	var ap [4]*int16
	for t := range ap {
		ap[t] = &a16[min(t, mr-1)*c]
	}
	for ch := 0; ch < w8Panel/8; ch++ {
		i8dotsAVX2(gpr, gsteps, &ap, &bp[ch*32], &out[ch*8])
	}
}

func w8EpilogueArch(gpr, mr int, dots []int32, invs, zinv, qs []float32, ldq int, facc []float32) {
	// qs has w8MR readable rows from here on (the driver pads it) unless zinv == nil.
	var zp, qp *float32
	if zinv != nil {
		zp, qp = &zinv[0], &qs[0]
	}
	if w8ISA == w8VNNI {
		w8EpiAVX512(gpr, &dots[0], &invs[0], zp, qp, ldq, &facc[0])
		return
	}
	for ch := 0; ch < w8Panel/8; ch++ {
		var z *float32
		if zp != nil {
			z = &zinv[ch*8]
		}
		w8EpiAVX2(gpr, &dots[ch*8], &invs[ch*8], z, qp, ldq, &facc[ch*8])
	}
}

// packPanelAVX packs w8Panel full rows of c signed codes (c%16 == 0) into the panel layout.
//
//go:noescape
func packPanelAVX(c int, src *byte, dst *byte)

// packPanelArch packs 32 contiguous rows of c codes into dst if the assembly can (reports false
// otherwise).
func packPanelArch(c int, src, dst []byte) bool {
	if c%16 != 0 || !hasAVX2() {
		return false
	}
	_ = src[w8Panel*c-1]
	_ = dst[w8Panel*c-1]
	packPanelAVX(c, &src[0], &dst[0])
	return true
}
