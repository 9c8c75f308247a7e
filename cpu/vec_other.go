//go:build !amd64

package cpu

// Without assembly the vector kernels are their pure-Go references (mathf.go).

// vecISA mirrors the amd64 selector so tests build; only isaGo exists here.
var vecISA = isaGo

func expScaleSum(dst, src []float32, sub, scale float32) float32 {
	return expScaleSumGo(dst, src, sub, scale)
}

func geluVec(x []float32) { geluGo(x) }

func maxVec(x []float32) float32 { return maxGo(x) }

func absmaxVec(x []float32) float32 { return absmaxGo(x) }

func quantRowVec(qa []int8, u8 []byte, x []float32, scale float32) { quantRowGo(qa, u8, x, scale) }

func addVec(a, b []float32) { addGo(a, b) }

func scaleVec(x []float32, s float32) { scaleGo(x, s) }

func layerNormVec(dst, src, g, b []float32, eps float32) { layerNormGo(dst, src, g, b, eps) }

func accumRows(out, v []float32, stride int, p []float32) { accumRowsGo(out, v, stride, p) }

func scoreRows(out, q, k []float32, stride int) { scoreRowsGo(out, q, k, stride) }
