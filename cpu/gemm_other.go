//go:build !amd64

package cpu

// Without assembly kernels every exported function runs the pure-Go reference.

func detectISA() int { return isaGo }

func availableISAs() []int { return []int{isaGo} }

func kernelNR() int { return 16 }

func microKernel(kb int, a *[gemmMR]*float32, bp *float32, c *float32, ldc, mr, acc int) {
	panic("cpu: no micro-kernel on this architecture")
}

func dot4Arch(x, w []float32, ldw int, r *[4]float32) {
	for q := range r {
		r[q] = dotGo(x, w[q*ldw:q*ldw+len(x)])
	}
}

func dotArch(a, b []float32) float32 { return dotGo(a, b) }

func axpyArch(alpha float32, x, y []float32) { axpyGo(alpha, x, y) }
