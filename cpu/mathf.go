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
