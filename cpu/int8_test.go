package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gpuquant/gpuquant/quantize"
)

// allDots runs the production W8A8 tiling (the panels w8prep packed, tileDots) on the current path and returns
// dots[(t*OC + row)*gpr + group], the exact int32 Σ qa·qw of every token, row and group.
func allDots(q *qweight, a *w8acts, T int) []int32 {
	q.w8prep()
	w := newW8Tiler(q, w8Path(q))
	res := make([]int32, T*q.oc*q.gpr)
	size, panels := q.c*w8Panel, q.w8Panels(w8Path(q))
	for p := 0; p < q.w8npanels; p++ {
		w.bp = panels[p*size : (p+1)*size]
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

// w8DotsCase is one weight of TestW8A8DotsIdentical: C inputs, OC rows, bits, group size G.
type w8DotsCase struct{ C, OC, bits, G int }

// directDots is Σ qa·qw per token, row and group, straight from the codes.
func directDots(qa []int8, w *quantize.Tensor, T, C, OC, gpr, g int) []int32 {
	want := make([]int32, T*OC*gpr)
	for tt := 0; tt < T; tt++ {
		for j := 0; j < OC; j++ {
			for k := 0; k < C; k++ {
				want[(tt*OC+j)*gpr+k/g] += int32(qa[tt*C+k]) * int32(w.Code(j*C+k))
			}
		}
	}
	return want
}

// firstDiff is the first index where a and b differ (-1 if none; a and b have equal lengths).
func firstDiff[E comparable](a, b []E) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// TestW8A8DotsIdentical checks that every available path (VNNI with the +128 trick, AVX2 with
// VPMADDWD, pure Go) produces exactly the int32 dots of a direct integer reference.
func TestW8A8DotsIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	saved := w8ISA
	defer func() { w8ISA = saved }()
	var cases []w8DotsCase
	for _, C := range []int{32, 64, 96, 768} {
		for _, OC := range []int{1, 31, 33, 70} {
			for _, bits := range []int{8, 4} {
				for _, G := range groupSizes(OC, C) {
					cases = append(cases, w8DotsCase{C, OC, bits, G})
				}
			}
		}
	}
	for _, c := range cases {
		T := []int{1, 2, 3, 7, 17}[r.IntN(5)]
		w := randQTensor(r, c.OC, c.C, c.bits, c.G, quantize.ZeroPoint)
		q, err := prepareQ(w)
		if err != nil {
			t.Fatal(err)
		}
		in := randVec(r, T*c.C)
		// Extreme codes: a token at exactly ±max gives ±127 codes everywhere.
		for k := 0; k < c.C; k++ {
			in[k] = float32(1 - 2*(k%2))
		}
		var want []int32 // the direct reference, from the first path's activation codes
		var ref *w8acts
		for _, l := range availableW8ISAs() {
			w8ISA = l
			a := quantizeActs(in, T, c.C, q.g, nil, w8Path(q), true)
			if ref == nil {
				ref, want = a, directDots(a.qa, w, T, c.C, c.OC, q.gpr, q.g)
			}
			if !slices.Equal(a.qa, ref.qa) || !slices.Equal(a.inv, ref.inv) || !slices.Equal(a.qs, ref.qs) {
				t.Fatalf("%s: activation quantization differs between paths", w8Names[l])
			}
			if got := allDots(q, a, T); !slices.Equal(got, want) {
				i := firstDiff(got, want)
				t.Fatalf("C%d OC%d q%d G%d T%d %s: dots[%d] = %d, want %d", c.C, c.OC, c.bits, c.G, T, w8Names[l], i, got[i], want[i])
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

// gemvCase is one GEMV of TestQGemvPaths or TestQ4GemvOffsets: rows × c codes in groups of g
// (4-bit codes read as nibble − off), the input x, 1/scale per group, and the zero terms z (per
// row and group) and s (per group), nil for none.
type gemvCase struct {
	bits, rows, c, g, off int
	codes                 []byte
	x, invs, z, s         []float32
}

func (tc gemvCase) String() string {
	return fmt.Sprintf("q%d c%d g%d rows %d off %d zero=%v", tc.bits, tc.c, tc.g, tc.rows, tc.off, tc.z != nil)
}

// code is the value element e of the codes contributes: the int8, or the nibble − off.
func (tc gemvCase) code(e int) float64 {
	if tc.bits == 8 {
		return float64(int8(tc.codes[e]))
	}
	return float64(tc.codes[e/2]>>(4*(e%2))&15) - float64(tc.off)
}

// scale is row i's error scale: the reference recomputed with absolute values,
// Σ|code·x·invs| + Σ|z·s|.
func (tc gemvCase) scale(i int) float64 {
	c, g, gpr := tc.c, tc.g, tc.c/tc.g
	var a float64
	for k := 0; k < c; k++ {
		a += math.Abs(tc.code(i*c+k) * float64(tc.x[k]) * float64(tc.invs[i*gpr+k/g]))
	}
	for j := range tc.s {
		a += math.Abs(float64(tc.z[i*gpr+j] * tc.s[j]))
	}
	return a
}

// withZeros is tc without and with its zero terms.
func (tc gemvCase) withZeros() []gemvCase {
	without := tc
	without.z, without.s = nil, nil
	return []gemvCase{without, tc}
}

// TestQGemvPaths compares the assembly GEMV inner loops with the Go reference directly, including
// per-row group sums far from the GEMV caller's layouts (several rows, both bit widths, zero terms
// on and off).
func TestQGemvPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	saved := woISA
	defer func() { woISA = saved }()
	var cases []gemvCase
	for _, bits := range []int{8, 4} {
		for _, cg := range [][2]int{{32, 32}, {64, 32}, {96, 96}, {768, 64}, {768, 768}, {768, 32}, {512, 32}} {
			tc := gemvCase{bits: bits, c: cg[0], g: cg[1], rows: 1 + r.IntN(13)}
			tc.codes = make([]byte, tc.rows*tc.c*bits/8)
			for i := range tc.codes {
				tc.codes[i] = byte(r.IntN(256))
			}
			tc.x = randVec(r, tc.c)
			tc.invs = randVec(r, tc.rows*tc.c/tc.g)
			tc.z = randVec(r, tc.rows*tc.c/tc.g)
			tc.s = randVec(r, tc.c/tc.g)
			cases = append(cases, tc.withZeros()...)
		}
	}
	for _, tc := range cases {
		want := make([]float32, tc.rows)
		qGemvGo(tc.bits, tc.rows, tc.c, tc.g, tc.codes, tc.x, tc.invs, tc.z, tc.s, want)
		for _, l := range availableWOISAs() {
			woISA = l
			got := nanVec(tc.rows)
			qGemv(tc.bits, tc.rows, tc.c, tc.g, tc.codes, tc.x, tc.invs, tc.z, tc.s, got)
			for i := range got {
				if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-5*tc.scale(i)) {
					t.Fatalf("%s %s: row %d = %v, want %v", tc, woNames[l], i, got[i], want[i])
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
	var cases []gemvCase
	for _, cg := range [][2]int{{32, 32}, {64, 32}, {128, 64}, {96, 96}, {768, 32}, {768, 64}, {768, 768}, {1024, 32}, {3072, 32}} {
		c, g := cg[0], cg[1]
		gpr := c / g
		for _, rows := range []int{1, 2, 3, 4, 5, 7, 8, 13, 33} {
			tc := gemvCase{bits: 4, rows: rows, c: c, g: g, codes: make([]byte, rows*c/2)}
			for i := range tc.codes {
				tc.codes[i] = byte(r.IntN(256))
			}
			tc.x = randVec(r, c)
			tc.invs, tc.z, tc.s = randVec(r, rows*gpr), randVec(r, rows*gpr), randVec(r, gpr)
			for _, off := range []int{0, 8} {
				tc.off = off
				cases = append(cases, tc.withZeros()...)
			}
		}
	}
	for _, tc := range cases {
		want := make([]float32, tc.rows)
		q4GemvGo(tc.rows, tc.c, tc.g, tc.off, tc.codes, tc.x, tc.invs, tc.z, tc.s, want)
		for _, l := range availableWOISAs() {
			woISA = l
			got := nanVec(tc.rows + 1)
			q4Gemv(tc.rows, tc.c, tc.g, tc.off, tc.codes, tc.x, tc.invs, tc.z, tc.s, got[:tc.rows])
			if !math.IsNaN(float64(got[tc.rows])) {
				t.Fatalf("%s %s: wrote past the output", tc, woNames[l])
			}
			for i := range tc.rows {
				if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-5*tc.scale(i)) {
					t.Fatalf("%s %s: row %d = %v, want %v", tc, woNames[l], i, got[i], want[i])
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
