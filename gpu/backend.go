package gpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/gpuquant/gpuquant/kernels"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// Options configures the kernels the backend runs for quantized weights (the CPU backend's choices,
// with the same meaning, so that a scheme gives the same numbers on both backends).
type Options struct {
	// Kernel is quantize.KernelAuto (weight-only), KernelWeightOnly or KernelW8A8.
	Kernel string
	// OpTimes waits for every kernel to finish and adds its time to OpTimes, by kernel: where a
	// forward pass spends its time, at the price of the overlap of launches and of CUDA graphs
	// (steps run op by op). For profiling without a profiler; off for speed.
	OpTimes bool
}

// gemvMaxT is the most tokens a Linear runs through the GEMV kernel; more take the tiled GEMM.
const gemvMaxT = 8

// Graph is a recorded decoding step (a *cuda.Graph on a GPU).
type Graph interface {
	Launch() error
	Close() error
}

// Hooks are what a real device adds to a kernels.Device: CUDA graphs, profiler ranges and
// driver memory figures. Any field may be nil (the CPU emulator has none of them).
type Hooks struct {
	// Capture records the work fn queues into a graph instead of running it.
	Capture func(fn func() error) (Graph, error)
	// Range opens a profiler range (NVTX) and returns the func that closes it.
	Range func(name string) func()
	// MemInfo is the driver's free and total device memory.
	MemInfo func() (free, total int64, err error)
	// PoolStats is our allocator's memory in use now and at its peak, and the freed blocks it
	// keeps for reuse (not in the driver's free figure, but ours to use).
	PoolStats func() (inUse, peak, cached int64)
	// Info describes the card for reports.
	Info func() string
	// Close releases the device.
	Close func() error
}

// Backend runs GPT-2 on a device through kernels: it implements model.Ops (and model.StepGraph,
// model.Tracer), keeping weights and activations in device memory. Ops are queued without waiting;
// their errors are kept (Err) and later ops skip their work.
type Backend struct {
	d     kernels.Device
	timer *opTimer // Options.OpTimes
	name  string
	opt   Options
	hooks Hooks

	err error
	// params is (1 + tokCap) int32 on the device: the position of the first token (read by Embed
	// and Attention), then the tokens Embed reads; stage is its host side, reused.
	params  kernels.Ptr
	tokCap  int
	stage   []int32
	hostPos int // the position in params (−1: unknown)
	scratch map[string]*devScratch
	inStep  bool // issuing a step's ops: token and position come from Step
	// recording: a step is being captured into a graph; its ops' errors go to recordErr.
	recording bool
	recordErr error
	noGraphs  bool // capturing failed once: steps run op by op
	steps     map[any]Graph
	used      map[kernelUse]int64 // Linear calls per kernel and weight format (KernelsUsed)
}

// kernelUse is a KernelsUsed key: a linear kernel and the bits of the weights it ran on.
type kernelUse struct {
	kernel string
	bits   int
}

// devScratch is a device buffer grown on demand.
type devScratch struct {
	p kernels.Ptr
	n int
}

// NewBackend returns a backend over d (named in reports as name), with the hooks of a real device;
// on error it releases the device (hooks.Close).
func NewBackend(d kernels.Device, name string, opt Options, hooks Hooks) (*Backend, error) {
	k, err := quantize.ParseKernel(opt.Kernel)
	if err != nil {
		if hooks.Close != nil {
			hooks.Close()
		}
		return nil, fmt.Errorf("gpu: %w", err)
	}
	opt.Kernel = k
	var timer *opTimer
	if opt.OpTimes {
		timer = &opTimer{Device: d, times: map[string]*model.OpTime{}}
		d, hooks.Capture = timer, nil
	}
	b := &Backend{d: d, timer: timer, name: name, opt: opt, hooks: hooks, hostPos: -1, scratch: map[string]*devScratch{}, steps: map[any]Graph{}, used: map[kernelUse]int64{}}
	if err := b.ensureParams(gemvMaxT); err != nil {
		b.Close()
		return nil, fmt.Errorf("gpu: %s: %w", name, err)
	}
	return b, nil
}

// Device is the kernels.Device the backend runs on.
func (b *Backend) Device() kernels.Device {
	if b.timer != nil {
		return b.timer.Device
	}
	return b.d
}

// Close releases the recorded steps, the backend's own buffers and (on a GPU) the device.
func (b *Backend) Close() error {
	b.dropAllSteps()
	for _, s := range b.scratch {
		b.d.Free(s.p)
	}
	b.scratch = map[string]*devScratch{}
	if b.params != 0 {
		b.d.Free(b.params)
		b.params = 0
	}
	if b.hooks.Close != nil {
		return b.hooks.Close()
	}
	return nil
}

func (b *Backend) Name() string { return b.name }

// Err returns the first failure of an op since the backend was made.
func (b *Backend) Err() error { return b.err }

// ok reports whether ops should still run: no error so far, nor in the step being recorded.
func (b *Backend) ok() bool { return b.err == nil && b.recordErr == nil }

// fail keeps the first error of the backend's ops; while a step is being recorded, the first error
// of the recording instead: a refused recording is run again op by op, so its errors must not
// stick to the backend.
func (b *Backend) fail(err error) {
	dst := &b.err
	if b.recording {
		dst = &b.recordErr
	}
	if err != nil && *dst == nil {
		*dst = fmt.Errorf("gpu: %s: %w", b.name, err)
	}
}

// Range marks a profiler range (NVTX on a GPU run under Nsight; nothing otherwise).
func (b *Backend) Range(name string) func() {
	if b.hooks.Range == nil {
		return func() {}
	}
	return b.hooks.Range(name)
}

// DeviceFacts reports the device, its memory (zeros where the device cannot tell), whether steps
// run as graphs and, with Options.OpTimes, the kernel times so far.
func (b *Backend) DeviceFacts() model.DeviceFacts {
	f := model.DeviceFacts{Graphs: b.hooks.Capture != nil && !b.noGraphs}
	if b.hooks.Info != nil {
		f.Name = b.hooks.Info()
	}
	if b.hooks.PoolStats != nil {
		f.InUse, f.Peak, f.Cached = b.hooks.PoolStats()
	}
	if b.hooks.MemInfo != nil {
		if free, total, err := b.hooks.MemInfo(); err == nil {
			f.DriverUsed, f.Total = total-free, total
		}
	}
	if b.timer != nil {
		f.OpTimes = make(map[string]model.OpTime, len(b.timer.times))
		for k, v := range b.timer.times {
			f.OpTimes[k] = *v
		}
	}
	return f
}

// Buf is a (rows, cols) float32 matrix in device memory.
type Buf struct {
	p          kernels.Ptr
	rows, cols int
	owner      bool // allocated by NewBuf (a Slice is not)
}

func (x *Buf) Rows() int { return x.rows }
func (x *Buf) Cols() int { return x.cols }

func same(a, b *Buf) bool { return a.p == b.p && a.rows == b.rows && a.cols == b.cols }

func (b *Backend) NewBuf(rows, cols int) model.Buf {
	x := &Buf{rows: rows, cols: cols, owner: true}
	if !b.ok() {
		return x
	}
	p, err := alloc(b.d, 4*rows*cols)
	if err != nil {
		b.fail(fmt.Errorf("activation buffer (%d, %d): %w", rows, cols, err))
		return x
	}
	x.p = p
	return x
}

func (b *Backend) Slice(x model.Buf, r0, r1 int) model.Buf {
	s := x.(*Buf)
	return &Buf{p: s.p + kernels.Ptr(4*r0*s.cols), rows: r1 - r0, cols: s.cols}
}

func (b *Backend) Free(x model.Buf) {
	s := x.(*Buf)
	if s.owner && s.p != 0 {
		b.d.Free(s.p)
		s.p = 0
	}
}

// ensure returns the scratch buffer name with at least n bytes, growing it outside of recording.
func (b *Backend) ensure(name string, n int) kernels.Ptr {
	s := b.scratch[name]
	if s != nil && s.n >= n {
		return s.p
	}
	if b.inStep {
		b.fail(fmt.Errorf("scratch %s of %d bytes needed while recording a step", name, n))
		return 0
	}
	if s != nil {
		b.dropAllSteps() // recorded steps hold the old address
		b.d.Free(s.p)
		delete(b.scratch, name)
	}
	p, err := alloc(b.d, n)
	if err != nil {
		b.fail(fmt.Errorf("scratch %s: %w", name, err))
		return 0
	}
	b.scratch[name] = &devScratch{p: p, n: n}
	return p
}

// ensureParams makes room in params for n tokens.
func (b *Backend) ensureParams(n int) error {
	if n <= b.tokCap {
		return nil
	}
	p, err := alloc(b.d, 4*(n+1))
	if err != nil {
		return err
	}
	if b.params != 0 {
		b.dropAllSteps() // recorded steps hold the old address
		b.d.Free(b.params)
	}
	b.params, b.tokCap, b.hostPos = p, n, -1
	return nil
}

func (b *Backend) posPtr() kernels.Ptr    { return b.params }
func (b *Backend) tokensPtr() kernels.Ptr { return b.params + 4 }

// writeParams copies the position and tokens (none: the position only) to params.
func (b *Backend) writeParams(pos int, tokens []int32) {
	if !b.ok() {
		return
	}
	if pos > math.MaxInt32 {
		b.fail(fmt.Errorf("position %d exceeds int32", pos))
		return
	}
	b.stage = append(append(b.stage[:0], int32(pos)), tokens...)
	b.fail(b.d.CopyToDevice(b.params, model.I32Bytes(b.stage)))
	b.hostPos = pos
}

// dropAllSteps releases every recorded step; the next step of each session records anew.
func (b *Backend) dropAllSteps() {
	for k, g := range b.steps {
		g.Close()
		delete(b.steps, k)
	}
}

// setPos writes the position the kernels read, unless it is there already.
func (b *Backend) setPos(pos int) {
	if pos != b.hostPos {
		b.writeParams(pos, nil)
	}
}

// weight is a device tensor as a kernel operand.
func (b *Backend) weight(t model.Tensor, what string) (*Tensor, kernels.W, bool) {
	w, ok := t.(*Tensor)
	if !ok {
		b.fail(fmt.Errorf("%s is a %T, not a device tensor (upload the weights first)", what, t))
		return nil, kernels.W{}, false
	}
	if w.Bits == 32 || w.Bits == 16 {
		return w, kernels.W{Data: w.Data, Bits: w.Bits}, true
	}
	return w, kernels.W{Data: w.Codes, Scales: w.Scales, Zeros: w.Zeros, GroupSize: w.GroupSize, Bits: w.Bits}, true
}

// vector is a float32 device vector of n values (LayerNorm gains, biases).
func (b *Backend) vector(t model.Tensor, n int, what string) kernels.Ptr {
	w, ok := t.(*Tensor)
	if !ok || w.Bits != 32 || model.NumElements(w.Dims) != n {
		b.fail(fmt.Errorf("%s: want a float32 device vector of %d values, have %T", what, n, t))
		return 0
	}
	return w.Data
}

func (b *Backend) Embed(out model.Buf, tokens []int32, pos0 int, wte, wpe model.Tensor) {
	o := out.(*Buf)
	_, te, ok1 := b.weight(wte, "wte")
	_, pe, ok2 := b.weight(wpe, "wpe")
	if !ok1 || !ok2 || !b.ok() {
		return
	}
	if !b.inStep {
		if err := b.ensureParams(len(tokens)); err != nil {
			b.fail(err)
			return
		}
		b.writeParams(pos0, tokens)
	}
	if b.ok() {
		b.fail(kernels.Embed(b.d, o.p, b.tokensPtr(), b.posPtr(), te, pe, o.rows, o.cols))
	}
}

func (b *Backend) LayerNorm(out, in model.Buf, w, bias model.Tensor, eps float32) {
	o, x := out.(*Buf), in.(*Buf)
	g, bb := b.vector(w, x.cols, "LayerNorm gain"), b.vector(bias, x.cols, "LayerNorm bias")
	if b.ok() {
		b.fail(kernels.LayerNorm(b.d, o.p, x.p, g, bb, x.rows, x.cols, eps))
	}
}

// AddLayerNorm is the residual add and the next LayerNorm in one kernel.
func (b *Backend) AddLayerNorm(out, x, y model.Buf, w, bias model.Tensor, eps float32) {
	o, xs, ys := out.(*Buf), x.(*Buf), y.(*Buf)
	g, bb := b.vector(w, xs.cols, "LayerNorm gain"), b.vector(bias, xs.cols, "LayerNorm bias")
	if b.ok() {
		b.fail(kernels.AddLayerNorm(b.d, xs.p, ys.p, o.p, g, bb, xs.rows, xs.cols, eps))
	}
}

func (b *Backend) Linear(out, in model.Buf, w, bias model.Tensor) {
	b.linear(out, in, w, bias, kernels.ActNone)
}

// LinearGELU is Linear with the GELU applied in the GEMM's epilogue.
func (b *Backend) LinearGELU(out, in model.Buf, w, bias model.Tensor) {
	b.linear(out, in, w, bias, kernels.ActGELU)
}

func (b *Backend) linear(out, in model.Buf, w, bias model.Tensor, act kernels.Act) {
	o, x := out.(*Buf), in.(*Buf)
	T, C, OC := x.rows, x.cols, o.cols
	wt, kw, ok := b.weight(w, "Linear weight")
	if !ok {
		return
	}
	if len(wt.Dims) != 2 || wt.Dims[0] != OC || wt.Dims[1] != C || o.rows != T {
		b.fail(fmt.Errorf("Linear of (%d, %d) by a weight %v into (%d, %d)", T, C, wt.Dims, o.rows, OC))
		return
	}
	var bp kernels.Ptr
	if bias != nil {
		if bp = b.vector(bias, OC, "Linear bias"); bp == 0 {
			return
		}
	}
	if !b.ok() {
		return
	}
	var k string
	switch {
	case b.opt.Kernel == quantize.KernelW8A8 && (kw.Bits == 8 || kw.Bits == 4):
		k = kernels.KGemmW8A8
		b.fail(b.linearW8A8(o, x, kw, bp, act))
	case T <= gemvMaxT:
		k = kernels.KGemv
		b.fail(kernels.Gemv(b.d, o.p, x.p, kw, bp, T, C, OC, act))
	case kw.Bits == 16: // fp16 prefill: tensor cores, activations rounded to half
		k = kernels.KGemmF16
		b.fail(kernels.GemmF16(b.d, o.p, x.p, kw, bp, T, C, OC, act))
	default:
		k = kernels.KGemmF32
		b.fail(kernels.GemmF32(b.d, o.p, x.p, kw, bp, T, C, OC, act))
	}
	b.used[kernelUse{k, kw.Bits}]++
}

func formatName(bits int) string {
	switch bits {
	case 32:
		return "f32"
	case 16:
		return "f16"
	}
	return fmt.Sprintf("q%d", bits)
}

// KernelsUsed returns how many Linear calls each kernel was issued for, by kernel and weight
// format ("gemv-q8", "gemm_f16-f16", "gemm_w8a8-q4", ...); a recorded step counts when recorded,
// not at each replay.
func (b *Backend) KernelsUsed() map[string]int64 {
	m := make(map[string]int64, len(b.used))
	for k, v := range b.used {
		m[k.kernel+"-"+formatName(k.bits)] += v
	}
	return m
}

// linearW8A8 quantizes the activations per token and runs the tensor-core GEMM.
func (b *Backend) linearW8A8(o, x *Buf, kw kernels.W, bias kernels.Ptr, act kernels.Act) error {
	T, C, OC := x.rows, x.cols, o.cols
	gw, err := kernels.W8A8GroupWidth(C, OC, kw.GroupSize)
	if err != nil {
		return err
	}
	qa, inv := b.ensure("qa", T*C), b.ensure("inv", 4*T)
	var qsum kernels.Ptr
	if kw.Zeros != 0 {
		qsum = b.ensure("qsum", 4*T*(C/gw))
	}
	if !b.ok() {
		return nil
	}
	if err := kernels.QuantizeActs(b.d, qa, inv, qsum, x.p, T, C, gw); err != nil {
		return err
	}
	return kernels.GemmW8A8(b.d, o.p, qa, inv, qsum, kw, bias, T, C, OC, act)
}

func (b *Backend) Add(x, y model.Buf) {
	xs, ys := x.(*Buf), y.(*Buf)
	if b.ok() {
		b.fail(kernels.Add(b.d, xs.p, ys.p, xs.rows*xs.cols))
	}
}

func (b *Backend) Attention(out, qkv, k, v model.Buf, pos0, nHead int) {
	o, q := out.(*Buf), qkv.(*Buf)
	if !b.inStep {
		b.setPos(pos0)
	}
	if b.ok() {
		b.fail(kernels.Attention(b.d, o.p, q.p, k.(*Buf).p, v.(*Buf).p, b.posPtr(), o.rows, o.cols, nHead))
	}
}

func (b *Backend) NLL(dst []float64, logits model.Buf, targets []int32) {
	l := logits.(*Buf)
	T := len(targets)
	tp, dp := b.ensure("targets", 4*T), b.ensure("nll", 8*T)
	if !b.ok() {
		return
	}
	b.fail(b.d.CopyToDevice(tp, model.I32Bytes(targets)))
	if b.ok() {
		b.fail(kernels.NLL(b.d, dp, l.p, tp, T, l.cols))
	}
	raw := make([]byte, 8*T)
	if b.ok() {
		b.fail(b.d.CopyFromDevice(raw, dp))
	}
	if !b.ok() {
		return
	}
	for i := range T {
		dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
}

func (b *Backend) Read(dst []float32, x model.Buf) {
	if b.ok() {
		b.fail(b.d.CopyFromDevice(model.F32Bytes(dst[:x.Rows()*x.Cols()]), x.(*Buf).p))
	}
}

// Step runs a one-token step as one graph launch: recorded the first time for key (a session,
// whose buffers the graph uses), replayed afterwards. The token and position travel to device
// memory before each launch, where Embed and Attention read them, so nothing position-dependent
// is baked into the graph. Without graphs (the CPU emulator, or a capture the driver refused),
// body's ops run one by one.
func (b *Backend) Step(key any, token int32, pos int, body func()) {
	if !b.ok() {
		return
	}
	b.writeParams(pos, []int32{token})
	if !b.ok() {
		return
	}
	if b.hooks.Capture == nil || b.noGraphs {
		b.stepOps(body)
		return
	}
	g := b.steps[key]
	if g == nil {
		var err error
		if g, err = b.hooks.Capture(b.record(body)); err != nil {
			// The driver refused or invalidated the capture (launches inside it fail then too): run
			// this and later steps op by op, slower with the same result; an op that really fails
			// fails again there, for good.
			b.noGraphs = true
			b.stepOps(body)
			return
		}
		b.steps[key] = g
	}
	b.fail(g.Launch())
}

// record returns the capture body that records a step: body's ops, their first error returned.
func (b *Backend) record(body func()) func() error {
	return func() error {
		b.recording = true
		b.stepOps(body)
		err := b.recordErr
		b.recording, b.recordErr = false, nil
		return err
	}
}

// stepOps issues body's ops with the token and position Step wrote.
func (b *Backend) stepOps(body func()) {
	b.inStep = true
	defer func() { b.inStep = false }()
	body()
}

// DropSteps releases the graph recorded for key.
func (b *Backend) DropSteps(key any) {
	if g := b.steps[key]; g != nil {
		g.Close()
		delete(b.steps, key)
	}
}

// ResetOpTimes forgets the kernel times so far (those of uploading and quantizing, say).
func (b *Backend) ResetOpTimes() {
	if b.timer != nil {
		b.timer.times = map[string]*model.OpTime{}
	}
}

// opTimer is a kernels.Device that waits for each launch and times it.
type opTimer struct {
	kernels.Device
	times map[string]*model.OpTime
}

func (t *opTimer) Launch(name string, grid, block kernels.Dim3, shared int, args ...any) error {
	start := time.Now()
	err := t.Device.Launch(name, grid, block, shared, args...)
	if err == nil {
		err = t.Device.Sync()
	}
	o := t.times[name]
	if o == nil {
		o = &model.OpTime{}
		t.times[name] = o
	}
	o.Calls++
	o.Seconds += time.Since(start).Seconds()
	return err
}

var (
	_ quantize.Backend = (*Backend)(nil)
	_ model.StepGraph  = (*Backend)(nil)
	_ model.Tracer     = (*Backend)(nil)
	_ model.Device     = (*Backend)(nil)
)
