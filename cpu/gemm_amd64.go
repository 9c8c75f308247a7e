//go:build amd64

package cpu

import "golang.org/x/sys/cpu"

// detectISA picks the widest kernel set the CPU (and OS) supports.
func detectISA() int {
	switch {
	case cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return isaAVX512
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return isaAVX2
	}
	return isaGo
}

// availableISAs lists every path runnable on this CPU (for tests).
func availableISAs() []int {
	l := []int{isaGo}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		l = append(l, isaAVX2)
	}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		l = append(l, isaAVX512)
	}
	return l
}

// kernelNR is the column width of the GEMM micro-kernel of the current ISA.
func kernelNR() int {
	if isa == isaAVX512 {
		return 32
	}
	return 16
}

// microKernel computes a gemmMR×nr tile: for r<mr, jj<nr,
//
//	c[r*ldc+jj] (+)= Σ_{k<kb} a[r][k]·bp[k*nr+jj]
//
// adding to the existing c when acc != 0 and overwriting it otherwise.
// Rows r>=mr are computed (from valid memory) but not stored.
func microKernel(kb int, a *[gemmMR]*float32, bp *float32, c *float32, ldc, mr, acc int) {
	if isa == isaAVX512 {
		sgemm6x32AVX512(kb, a, bp, c, ldc, mr, acc)
	} else {
		sgemm6x16AVX2(kb, a, bp, c, ldc, mr, acc)
	}
}

// dot4Arch sets r[q] = Σ_{k<len(x)} x[k]·w[q*ldw+k] for q<4.
func dot4Arch(x, w []float32, ldw int, r *[4]float32) {
	K := len(x)
	if K == 0 {
		*r = [4]float32{}
		return
	}
	_ = w[3*ldw+K-1]
	var n int
	if isa == isaAVX512 {
		n = K &^ 15
		if n > 0 {
			dot4AVX512(n, &x[0], &w[0], ldw, r)
		}
	} else {
		n = K &^ 7
		if n > 0 {
			dot4AVX2(n, &x[0], &w[0], ldw, r)
		}
	}
	if n == 0 {
		*r = [4]float32{}
	}
	for k := n; k < K; k++ {
		v := x[k]
		r[0] += v * w[k]
		r[1] += v * w[ldw+k]
		r[2] += v * w[2*ldw+k]
		r[3] += v * w[3*ldw+k]
	}
}

func dotArch(a, b []float32) float32 {
	K := len(a)
	b = b[:K]
	var s float32
	var n int
	if isa == isaAVX512 {
		n = K &^ 15
		if n > 0 {
			s = dotAVX512(n, &a[0], &b[0])
		}
	} else {
		n = K &^ 7
		if n > 0 {
			s = dotAVX2(n, &a[0], &b[0])
		}
	}
	for k := n; k < K; k++ {
		s += a[k] * b[k]
	}
	return s
}

func axpyArch(alpha float32, x, y []float32) {
	K := len(x)
	y = y[:K]
	var n int
	if isa == isaAVX512 {
		n = K &^ 15
		if n > 0 {
			axpyAVX512(n, alpha, &x[0], &y[0])
		}
	} else {
		n = K &^ 7
		if n > 0 {
			axpyAVX2(n, alpha, &x[0], &y[0])
		}
	}
	for k := n; k < K; k++ {
		y[k] += alpha * x[k]
	}
}

// Assembly kernels (gemm_amd64.s). Lengths n are multiples of 16 (AVX-512)
// or 8 (AVX2); ldw and ldc are in elements.

//go:noescape
func sgemm6x32AVX512(kb int, a *[gemmMR]*float32, bp *float32, c *float32, ldc, mr, acc int)

//go:noescape
func sgemm6x16AVX2(kb int, a *[gemmMR]*float32, bp *float32, c *float32, ldc, mr, acc int)

//go:noescape
func dot4AVX512(n int, x, w *float32, ldw int, r *[4]float32)

//go:noescape
func dot4AVX2(n int, x, w *float32, ldw int, r *[4]float32)

//go:noescape
func dotAVX512(n int, x, y *float32) float32

//go:noescape
func dotAVX2(n int, x, y *float32) float32

//go:noescape
func axpyAVX512(n int, alpha float32, x, y *float32)

//go:noescape
func axpyAVX2(n int, alpha float32, x, y *float32)
