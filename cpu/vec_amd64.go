//go:build amd64

package cpu

// vecISA selects the vector kernels of vec_amd64.s (isaGo, isaAVX2 or isaAVX512; tests switch
// it). AVX2 has only the e^x kernel; the others fall back to Go there.
var vecISA = detectISA()

// expScaleSum sets dst[i] = e^((src[i]−sub)·scale) and returns Σ dst[i] (summed in float32,
// in an order that depends on the path). dst may be src.
func expScaleSum(dst, src []float32, sub, scale float32) float32 {
	n := len(src)
	dst = dst[:n]
	if n == 0 {
		return 0
	}
	switch vecISA {
	case isaAVX512:
		return expScaleSumAVX512(&dst[0], &src[0], n, sub, scale)
	case isaAVX2:
		for i, v := range src {
			dst[i] = (v - sub) * scale
		}
		expVecAVX2(dst, dst)
		var s0, s1, s2, s3 float32
		i := 0
		for ; i+4 <= n; i += 4 {
			s0 += dst[i]
			s1 += dst[i+1]
			s2 += dst[i+2]
			s3 += dst[i+3]
		}
		for ; i < n; i++ {
			s0 += dst[i]
		}
		return (s0 + s1) + (s2 + s3)
	}
	return expScaleSumGo(dst, src, sub, scale)
}

// expVecAVX2 sets dst[i] = e^src[i] with the AVX2 kernel (the last n%8 in Go).
func expVecAVX2(dst, src []float32) {
	n := len(src)
	dst = dst[:n]
	m := n &^ 7
	if m > 0 {
		expAVX2(&dst[0], &src[0], m)
	}
	for i := m; i < n; i++ {
		dst[i] = expf(src[i])
	}
}

// geluVec applies GPT-2's gelu_new in place, as x/(1 + e^(−2·√(2/π)·(x + 0.044715·x³))) on the
// vector paths (the same function as 0.5·x·(1 + tanh(·))).
func geluVec(x []float32) {
	switch {
	case len(x) == 0:
	case vecISA == isaAVX512:
		geluAVX512(&x[0], len(x))
	case vecISA == isaAVX2:
		const m2s = -2 * 0.7978845608028654
		var buf [256]float32
		for lo := 0; lo < len(x); lo += len(buf) {
			c := x[lo:min(lo+len(buf), len(x))]
			t := buf[:len(c)]
			for i, v := range c {
				t[i] = m2s * (v * (1 + 0.044715*v*v))
			}
			expVecAVX2(t, t)
			for i, v := range c {
				c[i] = v / (1 + t[i])
			}
		}
	default:
		geluGo(x)
	}
}

// maxVec is the largest element of a non-empty x (NaNs are not propagated by the vector path).
func maxVec(x []float32) float32 {
	if vecISA == isaAVX512 {
		return maxAVX512(&x[0], len(x))
	}
	return maxGo(x)
}

// absmaxVec is max |x[i]|, 0 for an empty x (NaNs are not propagated by the vector path).
func absmaxVec(x []float32) float32 {
	if vecISA == isaAVX512 && len(x) > 0 {
		return absmaxAVX512(&x[0], len(x))
	}
	return absmaxGo(x)
}

// quantRowVec: see quantRowGo; the codes are identical for finite inputs.
func quantRowVec(qa []int8, u8 []byte, x []float32, scale float32) {
	n := len(x)
	if vecISA != isaAVX512 || n == 0 {
		quantRowGo(qa, u8, x, scale)
		return
	}
	qa = qa[:n]
	var up *byte
	if u8 != nil {
		up = &u8[:n][0]
	}
	quantRowAVX512(&qa[0], up, &x[0], n, scale)
}

// addVec sets a[i] += b[i].
func addVec(a, b []float32) {
	n := len(a)
	if vecISA == isaAVX512 && n > 0 {
		b = b[:n]
		addAVX512(&a[0], &b[0], n)
		return
	}
	addGo(a, b)
}

// scaleVec sets x[i] *= s.
func scaleVec(x []float32, s float32) {
	if vecISA == isaAVX512 && len(x) > 0 {
		scaleAVX512(&x[0], len(x), s)
		return
	}
	scaleGo(x, s)
}

// layerNormVec sets dst = (src−mean)/√(var+eps)·g + b over one row (mean and variance summed in
// float32; the vector path sums in 16 lanes).
func layerNormVec(dst, src, g, b []float32, eps float32) {
	n := len(src)
	if vecISA != isaAVX512 || n == 0 {
		layerNormGo(dst, src, g, b, eps)
		return
	}
	dst, g, b = dst[:n], g[:n], b[:n]
	layerNormAVX512(&dst[0], &src[0], &g[0], &b[0], n, eps)
}

// Assembly kernels (vec_amd64.s); n is any length ≥ 0 (≥ 1 for maxAVX512) except for expAVX2,
// which takes a multiple of 8.

//go:noescape
func expScaleSumAVX512(dst, src *float32, n int, sub, scale float32) float32

//go:noescape
func geluAVX512(x *float32, n int)

//go:noescape
func maxAVX512(x *float32, n int) float32

//go:noescape
func absmaxAVX512(x *float32, n int) float32

//go:noescape
func quantRowAVX512(qa *int8, u8 *byte, x *float32, n int, scale float32)

//go:noescape
func addAVX512(a, b *float32, n int)

//go:noescape
func scaleAVX512(x *float32, n int, s float32)

//go:noescape
func expAVX2(dst, src *float32, n int)

//go:noescape
func layerNormAVX512(dst, src, w, b *float32, n int, eps float32)

// accumRows sets out = Σ_j p[j]·v[j·stride : j·stride+len(out)]: one query row's weighted sum of
// values over the strided KV cache. GPT-2's heads are all 64 wide, which the AVX-512 kernel keeps
// in four registers across the whole sum instead of one Axpy call per cached position.
func accumRows(out, v []float32, stride int, p []float32) {
	if vecISA == isaAVX512 && len(out) == 64 && len(p) > 0 {
		_ = v[(len(p)-1)*stride+63]
		accum64AVX512(&out[0], &v[0], stride, &p[0], len(p))
		return
	}
	accumRowsGo(out, v, stride, p)
}

//go:noescape
func accum64AVX512(out, v *float32, stride int, p *float32, n int)

// scoreRows sets out[j] = q·k[j·stride : j·stride+len(q)] for j < len(out): one query row's
// attention scores over the strided KV cache. For 64-wide heads the AVX-512 kernel keeps q in
// registers and reduces 16 positions at a time; the last len(out)%16 go through gemvNT.
func scoreRows(out, q, k []float32, stride int) {
	n := len(out)
	if n == 0 {
		return
	}
	m := 0
	if vecISA == isaAVX512 && len(q) == 64 {
		m = n &^ 15
		if m > 0 {
			_ = k[(m-1)*stride+63]
			scores64AVX512(&out[0], &q[0], &k[0], stride, m)
		}
	}
	if m < n {
		if isa == isaGo {
			scoreRowsGo(out[m:], q, k[m*stride:], stride)
		} else {
			gemvNT(n-m, len(q), q, k[m*stride:], stride, nil, out[m:])
		}
	}
}

//go:noescape
func scores64AVX512(out, q, k *float32, stride int, n int)
