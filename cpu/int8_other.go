//go:build !amd64

package cpu

// Without assembly kernels the quantized Linear kernels run the pure-Go references.

func detectWOISA() int { return woGo }
func detectW8ISA() int { return w8Go }

func availableWOISAs() []int { return []int{woGo} }
func availableW8ISAs() []int { return []int{w8Go} }

func qGemvArchOK(bits, g int) bool { return false }

func qGemvArch(bits, rows, c, g int, codes []byte, x, invs, zi, xs, out []float32) {
	qGemvGo(bits, rows, c, g, codes, x, invs, zi, xs, out)
}

func q4GemvArch(rows, c, g, off int, codes []byte, x, invs, zi, xs, out []float32) {
	q4GemvGo(rows, c, g, off, codes, x, invs, zi, xs, out)
}

func i8DotsArchOK(c, g int) bool { return false }

func i8DotsArch(mr, c, gpr, g int, a8 []byte, a16 []int16, bp []byte, wcorr []int32, out []int32) {
	panic("cpu: no int8 assembly on this architecture")
}

func w8EpilogueArch(gpr, mr int, dots []int32, invs, zinv, qs []float32, ldq int, facc []float32) {
	w8EpilogueGo(gpr, mr, dots, invs, zinv, qs, ldq, facc)
}

func packPanelArch(c int, src, dst []byte) bool { return false }
