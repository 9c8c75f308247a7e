package cpu

import "math"

// expf is e^x in float32 to within about 2 ulp: x = k·ln2 + r with |r| ≤ ln2/2, e^r from a
// degree-6 Taylor polynomial, then scaled by 2^k through the exponent bits. It is 3–4x faster
// than math.Exp, which matters because softmax, GELU and NLL call it once per value.
func expf(x float32) float32 {
	switch {
	case x > 88.72283:
		return float32(math.Inf(1))
	case x < -87.33654:
		return 0
	case x != x:
		return x
	}
	const ln2Hi, ln2Lo, log2e = 0.693145751953125, 1.428606765330187e-06, 1.4426950408889634
	k := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - k*ln2Hi - k*ln2Lo
	p := 1 + r*(1+r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	if k > 127 { // x in (88.37, 88.72]: 2^128 is not a float32, the result is
		p, k = 2*p, 127
	}
	return p * math.Float32frombits(uint32(int32(k)+127)<<23)
}

// tanhf is tanh(x) = 1 − 2/(e^{2x}+1) in float32; absolute error about 1e-7, which is what
// GELU's 0.5·x·(1 + tanh(·)) needs.
func tanhf(x float32) float32 {
	if x > 9 {
		return 1
	}
	if x < -9 {
		return -1
	}
	return 1 - 2/(expf(2*x)+1)
}

// Pure-Go references of the vector kernels (vec_amd64.s); on other architectures they are the
// kernels.

// expScaleSumGo sets dst[i] = e^((src[i]−sub)·scale) and returns Σ dst[i].
func expScaleSumGo(dst, src []float32, sub, scale float32) float32 {
	dst = dst[:len(src)]
	var sum float32
	for i, v := range src {
		e := expf((v - sub) * scale)
		dst[i] = e
		sum += e
	}
	return sum
}

// geluGo applies GPT-2's gelu_new, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), in place.
func geluGo(x []float32) {
	const s = 0.7978845608028654 // √(2/π)
	for i, v := range x {
		x[i] = 0.5 * v * (1 + tanhf(s*(v+0.044715*v*v*v)))
	}
}

// maxGo is the largest element of a non-empty x.
func maxGo(x []float32) float32 {
	m := x[0]
	for _, v := range x {
		m = max(m, v)
	}
	return m
}

// absmaxGo is max |x[i]| (0 for an empty x).
func absmaxGo(x []float32) float32 {
	var m float32
	for _, v := range x {
		m = max(m, float32(math.Abs(float64(v))))
	}
	return m
}

// quantRowGo sets qa[i] = clamp(round half to even(x[i]·scale), −127, 127) and, when u8 is not
// nil, u8[i] = qa[i] + 128 (the unsigned codes of the VNNI path).
func quantRowGo(qa []int8, u8 []byte, x []float32, scale float32) {
	qa = qa[:len(x)]
	for k, v := range x {
		r := math.RoundToEven(float64(v * scale))
		qa[k] = int8(min(127, max(-127, r)))
	}
	if u8 != nil {
		u8 = u8[:len(x)]
		for k, v := range qa {
			u8[k] = byte(v) ^ 0x80
		}
	}
}

// addGo sets a[i] += b[i].
func addGo(a, b []float32) {
	b = b[:len(a)]
	for i, v := range b {
		a[i] += v
	}
}

// scaleGo sets x[i] *= s.
func scaleGo(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}

// layerNormGo sets dst = (src−mean)/√(var+eps)·g + b over one row, summing in float32.
func layerNormGo(dst, src, g, b []float32, eps float32) {
	var mean float32
	for _, v := range src {
		mean += v
	}
	mean /= float32(len(src))
	var variance float32
	for _, v := range src {
		d := v - mean
		variance += d * d
	}
	variance /= float32(len(src))
	inv := 1 / float32(math.Sqrt(float64(variance+eps)))
	for i, v := range src {
		dst[i] = (v-mean)*inv*g[i] + b[i]
	}
}

// accumRowsGo is out = Σ_j p[j]·v[j·stride : j·stride+len(out)].
func accumRowsGo(out, v []float32, stride int, p []float32) {
	clear(out)
	for j, pj := range p {
		Axpy(pj, v[j*stride:j*stride+len(out)], out)
	}
}

// scoreRowsGo is out[j] = q·k[j·stride : j·stride+len(q)] for j < len(out).
func scoreRowsGo(out, q, k []float32, stride int) {
	for j := range out {
		var s float32
		for d, v := range k[j*stride : j*stride+len(q)] {
			s += q[d] * v
		}
		out[j] = s
	}
}
