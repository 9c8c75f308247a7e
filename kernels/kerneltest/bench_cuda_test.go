//go:build cuda

package kerneltest

// Microbenchmarks of the kernels on the GPU (tag cuda; scripts/device-check.sh runs them). Times
// are device times between CUDA events, per call, the median over every timed region (each b.Loop
// iteration times every input set once), reported with b.ReportMetric:
//
//	BenchmarkCopyDevice                   copy_GB/s: cuMemcpyDtoD of 1 GiB, bytes read + written
//	BenchmarkGemmW8A8/M…_N…_K…            TOPS, cublas_TOPS, pct_of_cublas: kernels.GemmW8A8 (int8
//	                                      per-channel absmax weights, from int8 activations, float
//	                                      epilogue) vs cuBLAS int8 GEMM (int32 out) on the same codes
//	BenchmarkGemvWeightOnly/N…_K…         GB/s, copy_GB/s, pct_of_copy: int8 weight-only GEMV at T 1
//	BenchmarkQuantizeXL/…                 ms, GB/s, pct_of_copy, product_ms: every matrix of a GPT-2
//	                                      XL-shaped model quantized on the device
//
// (M, N, K) = (tokens, OC, C): the GPT-2 projections (2304, 768) c_attn, (768, 768) attn c_proj,
// (3072, 768) c_fc, (768, 3072) mlp c_proj of 124M, and (6400, 1600), (1600, 6400) the MLP of XL.
// Each benchmark first checks its kernel's output (against cuBLAS, or a float64 reference, or
// package quantize), so that a fast wrong kernel cannot report a number.
//
// With -test.short (scripts/device-check.sh --emulated: the emulated driver on a CPU, where the
// numbers mean nothing and only the code paths are exercised) each benchmark takes one small
// shape (M 64, N 256, K 256), a 16 MiB copy, a 1 MiB lead that never grows and the tiny preset's
// matrices instead of GPT-2 XL's, so that it finishes in seconds; names and metrics stay the same.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpuquant/gpuquant/cuda"
	"github.com/gpuquant/gpuquant/gpu"
	"github.com/gpuquant/gpuquant/kernels"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

type shape struct{ N, K int }

// benchShapes are the (N, K) = (OC, C) of the benchmarks.
func benchShapes() []shape {
	if testing.Short() {
		return []shape{{256, 256}}
	}
	return []shape{{2304, 768}, {768, 768}, {3072, 768}, {768, 3072}, {6400, 1600}, {1600, 6400}}
}

// benchTokens are the M of the GEMM benchmarks.
func benchTokens() []int {
	if testing.Short() {
		return []int{64}
	}
	return []int{512, 2048, 8192}
}

const benchSets = 3 // distinct random input sets per benchmark

// devTimer times work queued on the device's stream with events. Before each timed region it
// queues a memset of a scratch buffer (the lead), so that the host has queued the region's
// launches before the GPU reaches them: the region then measures the kernels back to back, not
// the host's launch rate, and starts with the inputs evicted from L2. When the host took longer to
// queue the launches than the lead ran, the lead doubles and the region is timed again.
type devTimer struct {
	d         *cuda.Device
	lead      kernels.Ptr
	leadBytes int
	leadMax   int // bytes of the lead buffer
	ev        [3]*cuda.Event
	starved   int // regions still queued slower than the longest lead ran (reported in the log)
}

func newTimer(b *testing.B, d *cuda.Device) *devTimer {
	b.Helper()
	tm := &devTimer{d: d, leadBytes: 256 << 20, leadMax: 2 << 30}
	if testing.Short() {
		tm.leadBytes, tm.leadMax = 1<<20, 1<<20
	}
	tm.lead = balloc(b, d, tm.leadMax)
	for i := range tm.ev {
		e, err := d.NewEvent()
		if err != nil {
			b.Fatal(err)
		}
		tm.ev[i] = e
		b.Cleanup(func() { e.Close() })
	}
	b.Cleanup(func() {
		if tm.starved > 0 {
			b.Logf("%d timed regions were queued by the host slower than the GPU ran them (launch-bound)", tm.starved)
		}
	})
	return tm
}

// perCall returns the device time of one call of fn, from reps calls fn(0) … fn(reps−1) queued
// back to back after the lead and timed together.
func (tm *devTimer) perCall(reps int, fn func(i int) error) (time.Duration, error) {
	for {
		if err := tm.ev[0].Record(); err != nil {
			return 0, err
		}
		if err := tm.d.Memset(tm.lead, byte(reps), tm.leadBytes); err != nil {
			return 0, err
		}
		if err := tm.ev[1].Record(); err != nil {
			return 0, err
		}
		h0 := time.Now()
		for i := range reps {
			if err := fn(i); err != nil {
				return 0, err
			}
		}
		queued := time.Since(h0)
		if err := tm.ev[2].Record(); err != nil {
			return 0, err
		}
		body, err := cuda.Elapsed(tm.ev[1], tm.ev[2])
		if err != nil {
			return 0, err
		}
		lead, err := cuda.Elapsed(tm.ev[0], tm.ev[1])
		if err != nil {
			return 0, err
		}
		if queued <= lead {
			return body / time.Duration(reps), nil
		}
		if tm.leadBytes*2 > tm.leadMax {
			tm.starved++
			return body / time.Duration(reps), nil
		}
		tm.leadBytes *= 2
	}
}

// region returns the device time of fn's work, queued after the lead (no retry: fn is one long
// sequence whose own launch rate is part of what is measured).
func (tm *devTimer) region(fn func() error) (time.Duration, error) {
	if err := tm.d.Memset(tm.lead, 1, tm.leadBytes); err != nil {
		return 0, err
	}
	return tm.d.Time(fn)
}

// repsFor is how many calls make a region of about 2 ms of device time, from one call's time:
// between 3 and 50 (more would outrun the lead while the host queues them).
func repsFor(one time.Duration) int {
	return min(50, max(3, int(2*time.Millisecond/max(one, time.Microsecond))))
}

func median(v []time.Duration) time.Duration {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// balloc allocates n device bytes for the rest of the benchmark.
func balloc(b *testing.B, d *cuda.Device, n int) kernels.Ptr {
	b.Helper()
	p, err := d.Alloc(n)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Free(p) })
	return p
}

// bupload allocates and fills device memory for the rest of the benchmark.
func bupload(b *testing.B, d *cuda.Device, data []byte) kernels.Ptr {
	b.Helper()
	p := balloc(b, d, len(data))
	if err := d.CopyToDevice(p, data); err != nil {
		b.Fatal(err)
	}
	return p
}

// randCodes are n int8 codes uniform in [−127, 127] (absmax never yields −128).
func randCodes(r *rand.Rand, n int) []byte {
	c := make([]byte, n)
	for i := 0; i < n; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		copy(c[i:], w[:])
	}
	for i, v := range c {
		if v == 0x80 {
			c[i] = 0x81
		}
	}
	return c
}

// randRange are n float32 uniform in [lo, hi).
func randRange(r *rand.Rand, n int, lo, hi float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = lo + (hi-lo)*r.Float32()
	}
	return v
}

// ---------------------------------------------------------------------------------------------
// Copy bandwidth: the yardstick of the memory-bound kernels, measured once per run.

var copyBW struct {
	once sync.Once
	gbps float64
	err  error
}

// copyGBps is the device-to-device copy bandwidth of this run: cuMemcpyDtoD of 1 GiB (16 MiB
// with -test.short), median of 5, counted as bytes read + written (twice the size per copy), the
// most a streaming kernel can move.
func copyGBps(b *testing.B, d *cuda.Device, tm *devTimer) float64 {
	b.Helper()
	copyBW.once.Do(func() {
		n := 1 << 30
		if testing.Short() {
			n = 16 << 20
		}
		src, err := d.Alloc(n)
		if err != nil {
			copyBW.err = err
			return
		}
		defer d.Free(src)
		dst, err := d.Alloc(n)
		if err != nil {
			copyBW.err = err
			return
		}
		defer d.Free(dst)
		if err := d.Memset(src, 0x3C, n); err != nil {
			copyBW.err = err
			return
		}
		var ts []time.Duration
		for range 6 {
			dt, err := tm.perCall(1, func(int) error { return d.CopyDevice(dst, src, n) })
			if err != nil {
				copyBW.err = err
				return
			}
			ts = append(ts, dt)
		}
		copyBW.gbps = 2 * float64(n) / median(ts[1:]).Seconds() / 1e9
	})
	if copyBW.err != nil {
		b.Fatal(copyBW.err)
	}
	return copyBW.gbps
}

func BenchmarkCopyDevice(b *testing.B) {
	d := gpuDevice(b)
	bw := copyGBps(b, d, newTimer(b, d))
	for b.Loop() {
	}
	b.ReportMetric(bw, "copy_GB/s")
}

// ---------------------------------------------------------------------------------------------
// W8A8 GEMM vs cuBLAS int8.

func BenchmarkGemmW8A8(b *testing.B) {
	for _, M := range benchTokens() {
		for _, s := range benchShapes() {
			b.Run(fmt.Sprintf("M%d_N%d_K%d", M, s.N, s.K), func(b *testing.B) { benchGemm(b, M, s.N, s.K) })
		}
	}
}

func benchGemm(b *testing.B, M, N, K int) {
	d := gpuDevice(b)
	tm := newTimer(b, d)
	type set struct{ qa, inv, codes, scales kernels.Ptr }
	sets := make([]set, benchSets)
	out, outI := balloc(b, d, 4*M*N), balloc(b, d, 4*M*N)
	got, gotI := make([]byte, 4*M*N), make([]byte, 4*M*N)
	for i := range sets {
		r := rand.New(rand.NewPCG(uint64(M)<<32|uint64(N), uint64(K)<<8|uint64(i)))
		qa, w := randCodes(r, M*K), randCodes(r, N*K)
		inv, sc := randRange(r, M, 0.5/127, 4.0/127), randRange(r, N, 500, 5000)
		sets[i] = set{bupload(b, d, qa), bupload(b, d, F32Bytes(inv)), bupload(b, d, w), bupload(b, d, F32Bytes(sc))}
		// Both on the same codes: ours[t, n] must be inv_t·(1/s_n)·cuBLAS[t, n] within the
		// epilogue's rounding (per channel, no zeros, no bias: ≤ 8·2⁻²⁴ relative, RunW8A8's bound).
		s := sets[i]
		if err := kernels.GemmW8A8(d, out, s.qa, s.inv, 0, kernels.W{Data: s.codes, Scales: s.scales, GroupSize: K, Bits: 8}, 0, M, K, N, kernels.ActNone); err != nil {
			b.Fatal(err)
		}
		if err := d.GemmI8(outI, s.qa, s.codes, M, K, N); err != nil {
			if errors.Is(err, cuda.ErrNoCUBLAS) {
				b.Skip(err)
			}
			b.Fatal(err)
		}
		if err := errors.Join(d.CopyFromDevice(got, out), d.CopyFromDevice(gotI, outI)); err != nil {
			b.Fatal(err)
		}
		for t := 0; t < M; t++ {
			for n := 0; n < N; n++ {
				j := 4 * (t*N + n)
				dot := int32(binary.LittleEndian.Uint32(gotI[j:]))
				g := float64(math.Float32frombits(binary.LittleEndian.Uint32(got[j:])))
				ex := float64(inv[t]) * float64(1/sc[n]) * float64(dot)
				if !(math.Abs(g-ex) <= 8*Eps32*math.Abs(ex)+1e-30) {
					b.Fatalf("set %d: out[%d,%d] = %v, cuBLAS dot %d → %v", i, t, n, g, dot, ex)
				}
			}
		}
	}
	ours := func(s set) func(int) error {
		return func(int) error {
			return kernels.GemmW8A8(d, out, s.qa, s.inv, 0, kernels.W{Data: s.codes, Scales: s.scales, GroupSize: K, Bits: 8}, 0, M, K, N, kernels.ActNone)
		}
	}
	theirs := func(s set) func(int) error {
		return func(int) error { return d.GemmI8(outI, s.qa, s.codes, M, K, N) }
	}
	// Warm-up (clocks, cuBLAS's heuristics), and the calls per region.
	one := func(fn func(int) error) int {
		dt, err := tm.perCall(3, fn)
		if err != nil {
			b.Fatal(err)
		}
		return repsFor(dt)
	}
	repsA, repsC := one(ours(sets[0])), one(theirs(sets[0]))
	var ta, tc []time.Duration
	for b.Loop() {
		for _, s := range sets {
			a, err := tm.perCall(repsA, ours(s))
			if err != nil {
				b.Fatal(err)
			}
			c, err := tm.perCall(repsC, theirs(s))
			if err != nil {
				b.Fatal(err)
			}
			ta, tc = append(ta, a), append(tc, c)
		}
	}
	ops := 2 * float64(M) * float64(N) * float64(K)
	ma, mc := median(ta), median(tc)
	b.ReportMetric(ops/ma.Seconds()/1e12, "TOPS")
	b.ReportMetric(ops/mc.Seconds()/1e12, "cublas_TOPS")
	b.ReportMetric(100*mc.Seconds()/ma.Seconds(), "pct_of_cublas")
}

// ---------------------------------------------------------------------------------------------
// Weight-only GEMV at batch 1 vs copy bandwidth.

func BenchmarkGemvWeightOnly(b *testing.B) {
	for _, s := range benchShapes() {
		b.Run(fmt.Sprintf("N%d_K%d", s.N, s.K), func(b *testing.B) { benchGemv(b, s.N, s.K) })
	}
}

// gemvCopies is how many copies of the weights a region goes through, one per call, so that no
// call finds its weights in L2 (the lead evicts the previous region's).
const gemvCopies = 48

func benchGemv(b *testing.B, N, K int) {
	d := gpuDevice(b)
	tm := newTimer(b, d)
	bw := copyGBps(b, d, tm)
	type set struct {
		codes, scales, bias, x kernels.Ptr
	}
	// benchSets random weight sets (int8 codes, per-channel scales), each copied to several of
	// the gemvCopies slots; one x and bias per set.
	var sets [benchSets]set
	copies := make([]set, gemvCopies)
	out := balloc(b, d, 4*N)
	for i := range sets {
		r := rand.New(rand.NewPCG(uint64(N), uint64(K)<<8|uint64(i)))
		w, sc := randCodes(r, N*K), randRange(r, N, 500, 5000)
		x, bias := Randn(r, K, 1), Randn(r, N, 0.1)
		sets[i] = set{bupload(b, d, w), bupload(b, d, F32Bytes(sc)), bupload(b, d, F32Bytes(bias)), bupload(b, d, F32Bytes(x))}
		if err := kernels.Gemv(d, out, sets[i].x, kernels.W{Data: sets[i].codes, Scales: sets[i].scales, GroupSize: K, Bits: 8}, sets[i].bias, 1, K, N, kernels.ActNone); err != nil {
			b.Fatal(err)
		}
		got := BytesF32(Download(b, d, out, 4*N))
		// GEMV's bound (TestGemvWeightOnly): (C/32 + 8)·2⁻²⁴·Σ|w·x| + 2⁻²⁴|b|.
		for n := 0; n < N; n++ {
			iv := float64(1 / sc[n])
			var ex, mag float64
			for k := 0; k < K; k++ {
				p := float64(int8(w[n*K+k])) * iv * float64(x[k])
				ex, mag = ex+p, mag+math.Abs(p)
			}
			ex += float64(bias[n])
			if tol := (float64(K)/32+8)*Eps32*mag + Eps32*math.Abs(float64(bias[n])); !(math.Abs(float64(got[n])-ex) <= tol) {
				b.Fatalf("set %d: out[%d] = %v, float64 reference %v (bound %.3g)", i, n, got[n], ex, tol)
			}
		}
	}
	for i := range copies {
		s := sets[i%benchSets]
		copies[i] = set{codes: s.codes, scales: s.scales, bias: s.bias, x: s.x}
		if i >= benchSets {
			copies[i].codes, copies[i].scales = balloc(b, d, N*K), balloc(b, d, 4*N)
			if err := errors.Join(d.CopyDevice(copies[i].codes, s.codes, N*K), d.CopyDevice(copies[i].scales, s.scales, 4*N)); err != nil {
				b.Fatal(err)
			}
		}
	}
	call := func(i int) error {
		c := copies[i%gemvCopies]
		return kernels.Gemv(d, out, c.x, kernels.W{Data: c.codes, Scales: c.scales, GroupSize: K, Bits: 8}, c.bias, 1, K, N, kernels.ActNone)
	}
	if _, err := tm.perCall(gemvCopies, call); err != nil { // warm-up
		b.Fatal(err)
	}
	var ts []time.Duration
	for b.Loop() {
		for range benchSets {
			dt, err := tm.perCall(gemvCopies, call)
			if err != nil {
				b.Fatal(err)
			}
			ts = append(ts, dt)
		}
	}
	// Bytes one call must move: the codes, scales, bias and x read, the output written.
	bytes := float64(N*K + 4*N + 4*N + 4*K + 4*N)
	gbps := bytes / median(ts).Seconds() / 1e9
	b.ReportMetric(gbps, "GB/s")
	b.ReportMetric(bw, "copy_GB/s")
	b.ReportMetric(100*gbps/bw, "pct_of_copy")
}

// ---------------------------------------------------------------------------------------------
// Quantizing a GPT-2 XL-shaped model on the device.

// BenchmarkQuantizeXL quantizes every matrix of a GPT-2 XL-shaped model (scope "weights": wte,
// wpe and the 4 × 48 block projections, 1.56 G values; the tiny preset's with -test.short) whose
// float32 weights are already on the device: random values, each tensor a window of one shared
// random buffer at its own offset.
//
//	ms          device time of kernels.Quantize over all tensors, queued back to back
//	GB/s        the least traffic that takes (float32 read once, codes, scales and zeros written)
//	pct_of_copy that against the copy bandwidth
//	product_ms  host wall time of gpu.Quantize per tensor (the product's call: allocation, the
//	            four launches, and the download of the scales that rejects NaN weights)
func BenchmarkQuantizeXL(b *testing.B) {
	g64, _ := quantize.ParseGranularity("group:64")
	for _, c := range []struct {
		name string
		opt  quantize.Options
	}{
		{"absmax-int8-channel", quantize.Options{Scheme: quantize.Absmax, Bits: 8, Granularity: quantize.Granularity{Kind: quantize.PerChannel}}},
		{"zeropoint-int4-group64", quantize.Options{Scheme: quantize.ZeroPoint, Bits: 4, Granularity: g64}},
	} {
		c.opt.Scope = quantize.ScopeWeights
		b.Run(c.name, func(b *testing.B) { benchQuantizeXL(b, c.opt) })
	}
}

// shapeWeights is a model.Weights of cfg's shapes whose tensors hold only their dims (gpu.Tensor
// with no memory), for the parameter list.
func shapeWeights(cfg model.Config) *model.Weights {
	C := cfg.NEmbd
	t := func(dims ...int) model.Tensor { return &gpu.Tensor{Dims: dims, Bits: 32} }
	norm := func() model.Norm { return model.Norm{W: t(C), B: t(C)} }
	w := &model.Weights{Config: cfg, WTE: t(cfg.VocabSize, C), WPE: t(cfg.NPositions, C), LnF: norm()}
	for range cfg.NLayer {
		w.Blocks = append(w.Blocks, model.Block{
			Ln1: norm(), QKV: model.Linear{W: t(3*C, C), B: t(3 * C)}, AttnProj: model.Linear{W: t(C, C), B: t(C)},
			Ln2: norm(), FC: model.Linear{W: t(4*C, C), B: t(4 * C)}, FCProj: model.Linear{W: t(C, 4*C), B: t(C)},
		})
	}
	return w
}

func benchQuantizeXL(b *testing.B, opt quantize.Options) {
	d := gpuDevice(b)
	tm := newTimer(b, d)
	bw := copyGBps(b, d, tm)
	type job struct {
		name                       string
		src                        *gpu.Tensor // a window of the random buffer
		n, gs                      int
		codes, scales, zeros, work kernels.Ptr
	}
	var jobs []job
	largest, total := 0, 0
	preset := "gpt2-xl"
	if testing.Short() {
		preset = "tiny"
	}
	for _, p := range shapeWeights(model.Presets[preset]).Params() {
		dims := (*p.T).Shape()
		if !quantize.InScope(opt.Scope, p.Kind, dims) {
			continue
		}
		n := model.NumElements(dims)
		gs, err := opt.Granularity.GroupSize(p.Name, dims)
		if err != nil {
			b.Fatal(err)
		}
		jobs = append(jobs, job{name: p.Name, src: &gpu.Tensor{Dims: dims, Bits: 32}, n: n, gs: gs})
		largest, total = max(largest, n), total+n
	}
	// The random buffer: the largest tensor plus 4 Mi values of slack for the windows' offsets
	// (multiples of 64 values, 256 bytes).
	const slack = 4 << 20
	r := rand.New(rand.NewPCG(1600, 48))
	host := Randn(r, largest+slack, 0.02)
	pool := bupload(b, d, F32Bytes(host))
	var outBytes int
	for i := range jobs {
		j := &jobs[i]
		off := (i * 7919 * 64) % slack
		j.src.Data = pool + kernels.Ptr(4*off)
		G := j.n / j.gs
		j.codes, j.scales, j.work = balloc(b, d, kernels.CodeBytes(j.n, opt.Bits)), balloc(b, d, 4*G), balloc(b, d, kernels.QuantizeWorkBytes(j.n, j.gs))
		outBytes += kernels.CodeBytes(j.n, opt.Bits) + 4*G
		if opt.Scheme == quantize.ZeroPoint {
			j.zeros = balloc(b, d, 4*G)
			outBytes += 4 * G
		}
	}
	q := opt
	all := func() error {
		for _, j := range jobs {
			if err := kernels.Quantize(d, j.codes, j.scales, j.zeros, j.work, j.src.Data, j.n, j.gs, q); err != nil {
				return fmt.Errorf("%s: %w", j.name, err)
			}
		}
		return nil
	}
	if _, err := tm.region(all); err != nil { // warm-up
		b.Fatal(err)
	}
	// The codes of block 0's four projections, bit-identical to package quantize on the same values.
	for _, j := range jobs {
		if !strings.HasPrefix(j.name, "h.0.") {
			continue
		}
		f, err := j.src.DownloadF32(d)
		if err != nil {
			b.Fatal(err)
		}
		want, err := quantize.Quantize(f.Data, j.src.Dims, opt)
		if err != nil {
			b.Fatal(err)
		}
		got := &gpu.Tensor{Dims: j.src.Dims, Bits: opt.Bits, Scheme: opt.Scheme, GroupSize: j.gs, Codes: j.codes, Scales: j.scales, Zeros: j.zeros}
		gq, err := got.Download(d)
		if err != nil {
			b.Fatal(err)
		}
		if !slices.Equal(gq.Codes, want.Codes) || !slices.Equal(gq.Scales, want.Scales) || !slices.Equal(gq.Zeros, want.Zeros) {
			b.Fatalf("%s: device codes/scales/zeros differ from quantize.Quantize", j.name)
		}
	}
	var dev, product []time.Duration
	for b.Loop() {
		for range benchSets { // the windows are the input sets; repeat for the median
			dt, err := tm.region(all)
			if err != nil {
				b.Fatal(err)
			}
			dev = append(dev, dt)
		}
		if err := d.Sync(); err != nil {
			b.Fatal(err)
		}
		h0 := time.Now()
		var made []*gpu.Tensor
		for _, j := range jobs {
			t, err := gpu.Quantize(d, j.name, j.src, opt)
			if err != nil {
				b.Fatal(err)
			}
			made = append(made, t)
		}
		if err := d.Sync(); err != nil {
			b.Fatal(err)
		}
		product = append(product, time.Since(h0))
		for _, t := range made {
			t.Free(d)
		}
	}
	md := median(dev)
	gbps := float64(4*total+outBytes) / md.Seconds() / 1e9
	b.ReportMetric(float64(md.Microseconds())/1e3, "ms")
	b.ReportMetric(gbps, "GB/s")
	b.ReportMetric(100*gbps/bw, "pct_of_copy")
	b.ReportMetric(float64(median(product).Microseconds())/1e3, "product_ms")
	b.ReportMetric(float64(total)/1e9, "Gparams")
}
