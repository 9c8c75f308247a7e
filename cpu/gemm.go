// fp32 matrix kernels for the Go forward pass.
//
// The hot entry points are [GemmNT] (single goroutine), [MatMul] (all cores),
// [Dot] and [Axpy]. On amd64 they dispatch at init to AVX-512 or AVX2+FMA
// assembly micro-kernels; elsewhere (or when forced) they run the pure-Go
// reference implementations in this file.

package cpu

import (
	"runtime"
	"sync"
)

// Instruction-set paths. isa selects the one used by the exported functions;
// it is set at init to the best one the CPU supports (see detectISA) and may
// be overwritten by tests (isaGo forces the pure-Go reference path).
const (
	isaGo = iota
	isaAVX2
	isaAVX512
)

var isa = detectISA()

// Blocking parameters of the packed GEMM driver.
//
//	gemmKC: depth of one packed B block (K direction); a kc×nr micro-panel of
//	        packed B is reused across all row blocks of one mc block. Larger
//	        kc means fewer read-modify-write passes over the output; 384
//	        measured best on Zen 4 (range 256..768 within ~10%).
//	gemmMC: rows of A swept per packed B block (the mc×kc block of A stays in L2).
//	gemmNC: columns of B packed at once (kc×nc packed floats, L2/L3 resident).
const (
	gemmMR = 6
	gemmKC = 384
	gemmMC = 96
	gemmNC = 256
)

var packPool = sync.Pool{New: func() any {
	s := make([]float32, gemmKC*(gemmNC+32))
	return &s
}}

// GemmNT computes out[i*ldo+j] = Σ_k a[i*lda+k]·b[j*ldb+k] (+ bias[j] when bias != nil) for i<M, j<N,
// on the calling goroutine. (a is (M,K) row-major, b is (N,K) row-major = "B transposed").
// Elements of out outside the M×N window (e.g. the gap between N and ldo) are not touched.
func GemmNT(M, N, K int, a []float32, lda int, b []float32, ldb int, bias []float32, out []float32, ldo int) {
	if M <= 0 || N <= 0 {
		return
	}
	if K < 0 {
		panic("cpu: GemmNT: negative K")
	}
	// Bounds checks once, up front, so the assembly never reads or writes
	// outside the slices.
	_ = out[(M-1)*ldo+N-1]
	if K > 0 {
		_ = a[(M-1)*lda+K-1]
		_ = b[(N-1)*ldb+K-1]
	}
	if bias != nil {
		_ = bias[N-1]
	}
	if isa == isaGo || K == 0 {
		gemmNTGo(M, N, K, a, lda, b, ldb, bias, out, ldo)
		return
	}
	if M <= 2 {
		for i := 0; i < M; i++ {
			gemvNT(N, K, a[i*lda:], b, ldb, bias, out[i*ldo:])
		}
		return
	}
	gemmNTPacked(M, N, K, a, lda, b, ldb, bias, out, ldo)
}

// gemmNTGo is the pure-Go reference for GemmNT:
//
//	out[i*ldo+j] = bias[j] + Σ_{k<K} a[i*lda+k]·b[j*ldb+k]   for i<M, j<N
//
// with bias[j] read as 0 when bias == nil; the sum is accumulated in float32
// in increasing k order.
func gemmNTGo(M, N, K int, a []float32, lda int, b []float32, ldb int, bias []float32, out []float32, ldo int) {
	for i := 0; i < M; i++ {
		ar := a[i*lda : i*lda+K]
		or := out[i*ldo : i*ldo+N]
		for j := range or {
			s := dotGo(ar, b[j*ldb:j*ldb+K])
			if bias != nil {
				s += bias[j]
			}
			or[j] = s
		}
	}
}

// dotGo is the pure-Go reference for Dot: Σ_{i<len(a)} a[i]·b[i], accumulated
// in float32 in increasing i order.
func dotGo(a, b []float32) float32 {
	b = b[:len(a)]
	var s float32
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

// axpyGo is the pure-Go reference for Axpy: y[i] += alpha·x[i] for i<len(x).
func axpyGo(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

// Dot returns Σ a[i]·b[i] (len(a)==len(b)).
func Dot(a, b []float32) float32 {
	if len(a) != len(b) {
		panic("cpu: Dot: length mismatch")
	}
	if isa == isaGo {
		return dotGo(a, b)
	}
	return dotArch(a, b)
}

// Axpy computes y[i] += alpha·x[i].
func Axpy(alpha float32, x, y []float32) {
	if len(y) < len(x) {
		panic("cpu: Axpy: len(y) < len(x)")
	}
	if isa == isaGo {
		axpyGo(alpha, x, y)
		return
	}
	axpyArch(alpha, x, y)
}

// gemvNT computes out[j] = bias[j] + Σ_k x[k]·b[j*ldb+k] for j<N with the
// multi-row dot kernel (weights streamed once).
func gemvNT(N, K int, x, b []float32, ldb int, bias, out []float32) {
	x = x[:K]
	var r [4]float32
	j := 0
	for ; j+4 <= N; j += 4 {
		dot4Arch(x, b[j*ldb:], ldb, &r)
		if bias != nil {
			r[0] += bias[j]
			r[1] += bias[j+1]
			r[2] += bias[j+2]
			r[3] += bias[j+3]
		}
		copy(out[j:j+4], r[:])
	}
	for ; j < N; j++ {
		s := dotArch(x, b[j*ldb:j*ldb+K])
		if bias != nil {
			s += bias[j]
		}
		out[j] = s
	}
}

// gemmNTPacked is the blocked GEMM driver: B is packed into k-major
// micro-panels of nr columns, A is read in place (broadcast by the kernel).
func gemmNTPacked(M, N, K int, a []float32, lda int, b []float32, ldb int, bias []float32, out []float32, ldo int) {
	nr := kernelNR()
	bufp := packPool.Get().(*[]float32)
	defer packPool.Put(bufp)
	buf := *bufp
	var tile [gemmMR * 32]float32
	var ap [gemmMR]*float32

	if bias != nil {
		for i := 0; i < M; i++ {
			copy(out[i*ldo:i*ldo+N], bias[:N])
		}
	}
	for pc := 0; pc < K; pc += gemmKC {
		kb := min(gemmKC, K-pc)
		acc := 0
		if pc > 0 || bias != nil {
			acc = 1
		}
		for jc := 0; jc < N; jc += gemmNC {
			nb := min(gemmNC, N-jc)
			packB(buf, b, ldb, jc, nb, pc, kb, nr)
			for ic := 0; ic < M; ic += gemmMC {
				mb := min(gemmMC, M-ic)
				for jr := 0; jr < nb; jr += nr {
					ncols := min(nr, nb-jr)
					bp := &buf[(jr/nr)*kb*nr]
					j := jc + jr
					for ir := 0; ir < mb; ir += gemmMR {
						i := ic + ir
						mr := min(gemmMR, mb-ir)
						for r := 0; r < gemmMR; r++ {
							rr := r
							if rr >= mr {
								rr = 0
							}
							ap[r] = &a[(i+rr)*lda+pc]
						}
						if ncols == nr {
							microKernel(kb, &ap, bp, &out[i*ldo+j], ldo, mr, acc)
							continue
						}
						// Ragged right edge: go through a full-width tile.
						if acc != 0 {
							for r := 0; r < mr; r++ {
								copy(tile[r*nr:r*nr+ncols], out[(i+r)*ldo+j:(i+r)*ldo+j+ncols])
							}
						}
						microKernel(kb, &ap, bp, &tile[0], nr, mr, acc)
						for r := 0; r < mr; r++ {
							copy(out[(i+r)*ldo+j:(i+r)*ldo+j+ncols], tile[r*nr:r*nr+ncols])
						}
					}
				}
			}
		}
	}
}

// packB packs columns [jc,jc+nb) × depth [pc,pc+kb) of the (N,K) row-major b
// into buf as consecutive micro-panels of nr columns: panel p holds
// buf[p*kb*nr + k*nr + jj] = b[(jc+p*nr+jj)*ldb + pc+k], zero for columns past nb.
func packB(buf, b []float32, ldb, jc, nb, pc, kb, nr int) {
	for p := 0; p*nr < nb; p++ {
		dst := buf[p*kb*nr : (p+1)*kb*nr]
		ncols := min(nr, nb-p*nr)
		for jj := 0; jj < nr; jj++ {
			if jj >= ncols {
				for k := 0; k < kb; k++ {
					dst[k*nr+jj] = 0
				}
				continue
			}
			src := b[(jc+p*nr+jj)*ldb+pc : (jc+p*nr+jj)*ldb+pc+kb]
			for k, v := range src {
				dst[k*nr+jj] = v
			}
		}
	}
}

// MatMul computes out(T,OC) = in(T,C) · w(OC,C)ᵀ + bias(OC) (bias may be nil) using every core
// (runtime.GOMAXPROCS goroutines; T==1 is split over OC so decoding also uses all cores).
func MatMul(out, in, w, bias []float32, T, C, OC int) {
	if T <= 0 || OC <= 0 {
		return
	}
	P := runtime.GOMAXPROCS(0)
	work := T * C * OC
	if work < 1<<16 {
		P = 1
	}
	// Split over OC (columns) when there is enough of it, else over T.
	const align = 32
	var parts [][4]int // {i0, i1, j0, j1}
	if OC >= P*align*2 || T < P*gemmMR {
		chunk := (OC + P - 1) / P
		chunk = (chunk + align - 1) / align * align
		for j0 := 0; j0 < OC; j0 += chunk {
			parts = append(parts, [4]int{0, T, j0, min(OC, j0+chunk)})
		}
	} else {
		chunk := (T + P - 1) / P
		for i0 := 0; i0 < T; i0 += chunk {
			parts = append(parts, [4]int{i0, min(T, i0+chunk), 0, OC})
		}
	}
	run := func(p [4]int) {
		i0, i1, j0, j1 := p[0], p[1], p[2], p[3]
		var bs []float32
		if bias != nil {
			bs = bias[j0:j1]
		}
		GemmNT(i1-i0, j1-j0, C, in[i0*C:], C, w[j0*C:], C, bs, out[i0*OC+j0:], OC)
	}
	if len(parts) == 1 {
		run(parts[0])
		return
	}
	var wg sync.WaitGroup
	for _, p := range parts[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(p)
		}()
	}
	run(parts[0])
	wg.Wait()
}
