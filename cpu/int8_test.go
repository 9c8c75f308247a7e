package cpu

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gpuquant/gpuquant/quantize"
)

// allDots runs the production W8A8 tiling (pack + tileDots) on the current path and returns
// dots[(t*OC + row)*gpr + group], the exact int32 Σ qa·qw of every token, row and group.
func allDots(q *qweight, a *w8acts, T int) []int32 {
	q.w8prep()
	w := newW8Tiler(q, w8Path(q))
	res := make([]int32, T*q.oc*q.gpr)
	for p := 0; p < q.w8npanels; p++ {
		w.pack(p)
		for t0 := 0; t0 < T; t0 += w.mrMax {
			mr := min(w.mrMax, T-t0)
			w.tileDots(a, p, t0, mr)
			for t := 0; t < mr; t++ {
				for j := 0; j < w8Panel && p*w8Panel+j < q.oc; j++ {
					for g := 0; g < q.gpr; g++ {
						res[((t0+t)*q.oc+p*w8Panel+j)*q.gpr+g] = w.dots[(g*w8MR+t)*w8Panel+j]
					}
				}
			}
		}
	}
	return res
}

// TestW8A8DotsIdentical checks that every available path (VNNI with the +128 trick, AVX2 with
// VPMADDWD, pure Go) produces exactly the int32 dots of a direct integer reference.
func TestW8A8DotsIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	saved := w8ISA
	defer func() { w8ISA = saved }()
	for _, C := range []int{32, 64, 96, 768} {
		for _, OC := range []int{1, 31, 33, 70} {
			for _, bits := range []int{8, 4} {
				for _, G := range groupSizes(OC, C) {
					T := []int{1, 2, 3, 7, 17}[r.IntN(5)]
					w := randQTensor(r, OC, C, bits, G, quantize.ZeroPoint)
					q, err := prepareQ(w)
					if err != nil {
						t.Fatal(err)
					}
					in := randVec(r, T*C)
					// Extreme codes: a token at exactly ±max gives ±127 codes everywhere.
					for k := 0; k < C; k++ {
						in[k] = float32(1 - 2*(k%2))
					}
					// Direct reference.
					want := make([]int32, T*OC*q.gpr)
					var ref *w8acts
					for _, l := range availableW8ISAs() {
						w8ISA = l
						a := quantizeActs(in, T, C, q.g, nil, w8Path(q), true)
						if ref == nil {
							ref = a
							for tt := 0; tt < T; tt++ {
								for j := 0; j < OC; j++ {
									for k := 0; k < C; k++ {
										want[(tt*OC+j)*q.gpr+k/q.g] += int32(a.qa[tt*C+k]) * int32(w.Code(j*C+k))
									}
								}
							}
						}
						if !slices.Equal(a.qa, ref.qa) || !slices.Equal(a.inv, ref.inv) || !slices.Equal(a.qs, ref.qs) {
							t.Fatalf("%s: activation quantization differs between paths", w8Names[l])
						}
						got := allDots(q, a, T)
						if !slices.Equal(got, want) {
							for i := range got {
								if got[i] != want[i] {
									t.Fatalf("C%d OC%d q%d G%d T%d %s: dots[%d] = %d, want %d", C, OC, bits, G, T, w8Names[l], i, got[i], want[i])
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestQuantizeActs checks the per-token absmax quantization: round half to even, all-zero rows
// get scale 1, skipped columns are 0 and excluded from the max.
func TestQuantizeActs(t *testing.T) {
	in := []float32{
		1, -0.5, 0.25, 1.0 / 254, 3.0 / 254, // scale 127: 0.5 → 0 (even), 1.5 → 2
		0, 0, 0, 0, 0,
		100, 2, -1, 0.5, 4, // column 0 skipped: max 4, scale 31.75
	}
	skip := []bool{false, false, false, false, false}
	a := quantizeActs(in[:10], 2, 5, 5, nil, w8Go, true)
	if want := []int8{127, -64, 32, 0, 2, 0, 0, 0, 0, 0}; !slices.Equal(a.qa, want) {
		t.Fatalf("qa = %v, want %v", a.qa, want)
	}
	if a.inv[1] != 1 || a.inv[0] != 1/float32(127) {
		t.Fatalf("inv = %v", a.inv)
	}
	if a.qs[0] != 127-64+32+0+2 {
		t.Fatalf("qs = %v", a.qs)
	}
	skip[0] = true
	a = quantizeActs(in[10:], 1, 5, 5, skip, w8Go, false)
	if want := []int8{0, 64, -32, 16, 127}; !slices.Equal(a.qa, want) {
		t.Fatalf("qa with skip = %v, want %v", a.qa, want)
	}
}

// TestQGemvPaths compares the assembly GEMV inner loops with the Go reference directly, including
// per-row group sums far from the GEMV caller's layouts (several rows, both bit widths, zero terms
// on and off).
func TestQGemvPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	saved := woISA
	defer func() { woISA = saved }()
	for _, bits := range []int{8, 4} {
		for _, cg := range [][2]int{{32, 32}, {64, 32}, {96, 96}, {768, 64}, {768, 768}, {768, 32}, {512, 32}} {
			c, g := cg[0], cg[1]
			rows := 1 + r.IntN(13)
			codes := make([]byte, rows*c*bits/8)
			for i := range codes {
				codes[i] = byte(r.IntN(256))
			}
			x := randVec(r, c)
			invs := randVec(r, rows*c/g)
			zi := randVec(r, rows*c/g)
			xs := randVec(r, c/g)
			for _, withZero := range []bool{false, true} {
				z, s := zi, xs
				if !withZero {
					z, s = nil, nil
				}
				want := make([]float32, rows)
				qGemvGo(bits, rows, c, g, codes, x, invs, z, s, want)
				for _, l := range availableWOISAs() {
					woISA = l
					got := nanVec(rows)
					qGemv(bits, rows, c, g, codes, x, invs, z, s, got)
					for i := range got {
						// Error scale: Σ|code·x·invs| + Σ|zi·xs| ≤ 128·Σ|x|·max|invs| + ...;
						// use the reference recomputed with absolute values.
						var a float64
						for k := 0; k < c; k++ {
							var cd float64
							if bits == 8 {
								cd = float64(int8(codes[i*c+k]))
							} else {
								cd = float64(codes[(i*c+k)/2] >> (4 * ((i*c + k) % 2)) & 15)
							}
							a += math.Abs(cd * float64(x[k]) * float64(invs[i*c/g+k/g]))
						}
						if z != nil {
							for j := range xs {
								a += math.Abs(float64(zi[i*c/g+j] * xs[j]))
							}
						}
						if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-5*a) {
							t.Fatalf("q%d c%d g%d %s zero=%v: row %d = %v, want %v", bits, c, g, woNames[l], withZero, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// BenchmarkQGemvKernel times one thread of the weight-only GEMV inner kernels on a 768×768
// matrix that stays in L2 (compute, not memory), in values per ns.
// TestQ4GemvOffsets checks q4Gemv (the 4-bit kernels, with the code read as nibble − off for off
// 0 and 8, with and without the zero term) on every path against q4GemvGo, for ragged row counts
// (fewer than, and not a multiple of, the AVX-512 kernel's four rows), group sizes 32, 64 and the
// whole row, and more than 16 groups per row (the zero term's masked tail). Outputs start as NaN.
func TestQ4GemvOffsets(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	saved := woISA
	defer func() { woISA = saved }()
	for _, cg := range [][2]int{{32, 32}, {64, 32}, {128, 64}, {96, 96}, {768, 32}, {768, 64}, {768, 768}, {1024, 32}, {3072, 32}} {
		c, g := cg[0], cg[1]
		gpr := c / g
		for _, rows := range []int{1, 2, 3, 4, 5, 7, 8, 13, 33} {
			codes := make([]byte, rows*c/2)
			for i := range codes {
				codes[i] = byte(r.IntN(256))
			}
			x := randVec(r, c)
			invs, zi, xs := randVec(r, rows*gpr), randVec(r, rows*gpr), randVec(r, gpr)
			for _, off := range []int{0, 8} {
				for _, withZero := range []bool{false, true} {
					z, s := zi, xs
					if !withZero {
						z, s = nil, nil
					}
					want := make([]float32, rows)
					q4GemvGo(rows, c, g, off, codes, x, invs, z, s, want)
					for _, l := range availableWOISAs() {
						woISA = l
						got := nanVec(rows + 1)
						q4Gemv(rows, c, g, off, codes, x, invs, z, s, got[:rows])
						if !math.IsNaN(float64(got[rows])) {
							t.Fatalf("c%d g%d rows %d off %d %s: wrote past the output", c, g, rows, off, woNames[l])
						}
						for i := 0; i < rows; i++ {
							var a float64
							for k := 0; k < c; k++ {
								e := i*c + k
								n := float64(codes[e/2]>>(4*(e%2))&15) - float64(off)
								a += math.Abs(n * float64(x[k]) * float64(invs[i*gpr+k/g]))
							}
							if z != nil {
								for j := range s {
									a += math.Abs(float64(z[i*gpr+j] * s[j]))
								}
							}
							if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-5*a) {
								t.Fatalf("c%d g%d rows %d off %d zero=%v %s: row %d = %v, want %v", c, g, rows, off, withZero, woNames[l], i, got[i], want[i])
							}
						}
					}
				}
			}
		}
	}
}

func BenchmarkQGemvKernel(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	const rows, c = 768, 768
	for _, tc := range []struct {
		name      string
		bits, g   int
		off       int
		withZeros bool
	}{
		{"q8-channel", 8, c, 0, false},
		{"q4-g32-signed", 4, 32, 8, false},
		{"q4-g32-zero", 4, 32, 0, true},
		{"q4-channel-signed", 4, c, 8, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			codes := make([]byte, rows*c*tc.bits/8)
			for i := range codes {
				codes[i] = byte(r.IntN(256))
			}
			gpr := c / tc.g
			x, invs := randVec(r, c), randVec(r, rows*gpr)
			var zi, xs []float32
			if tc.withZeros {
				zi, xs = randVec(r, rows*gpr), randVec(r, gpr)
			}
			out := make([]float32, rows)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			c0 := threadCPU()
			for b.Loop() {
				if tc.bits == 4 {
					q4Gemv(rows, c, tc.g, tc.off, codes, x, invs, zi, xs, out)
				} else {
					qGemv(8, rows, c, tc.g, codes, x, invs, zi, xs, out)
				}
			}
			// Thread CPU time, not wall time: the figure holds on a machine shared with other jobs.
			b.ReportMetric(float64(rows*c)*float64(b.N)/float64(threadCPU()-c0), "values/cpu-ns")
		})
	}
}

// BenchmarkQGemvStream times one GEMV of GPT-2's 768→3072 shape on all cores with the weights
// cycled through ≥ 128 MB of copies (DRAM-bound), and reports the fastest call (robust to a busy
// machine) next to the mean.
func BenchmarkQGemvStream(b *testing.B) {
	const oc, c = 3072, 768
	for _, tc := range []struct {
		name   string
		bits   int
		g      int
		scheme quantize.Scheme
	}{
		{"q8-channel", 8, c, quantize.Absmax},
		{"q4-g32-absmax", 4, 32, quantize.Absmax},
		{"q4-g32-zero", 4, 32, quantize.ZeroPoint},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(7, 8))
			w := randQTensor(r, oc, c, tc.bits, tc.g, tc.scheme)
			ws := benchWeights(w, 128<<20)
			qs := make([]*qweight, len(ws))
			for i, t := range ws {
				q, err := prepareQ(t.(*quantize.Tensor))
				if err != nil {
					b.Fatal(err)
				}
				qs[i] = q
			}
			in, out := randVec(r, c), make([]float32, oc)
			best := time.Duration(1 << 62)
			i := 0
			for b.Loop() {
				t0 := time.Now()
				qGemvLinear(qs[i%len(qs)], out, in, nil, 1)
				best = min(best, time.Since(t0))
				i++
			}
			b.ReportMetric(float64(best.Nanoseconds())/1e3, "best-µs")
			b.ReportMetric(float64(w.Bytes())/float64(best.Nanoseconds()), "best-GB/s")
		})
	}
}

// threadCPU is the calling thread's CPU time in ns (Linux; 0 elsewhere).
func threadCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru) != nil {
		return 0
	}
	return syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)
}
