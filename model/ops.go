package model

// Buf is an activation matrix (rows, cols) of float32 owned by a backend; the forward pass never
// looks inside, so a GPU backend keeps activations on the device between ops.
type Buf interface {
	Rows() int
	Cols() int
}

// Ops is the seam between the forward pass and a backend. Shapes use the same letters everywhere:
// T tokens, C channels, V vocabulary, NH heads. Weights are whatever the backend's Upload
// returned (quantize.Backend: Upload takes a quantize.Spec, which this package cannot name).
type Ops interface {
	// Name identifies the backend in reports ("cpu", "cuda:0").
	Name() string
	// NewBuf allocates a (rows, cols) activation buffer.
	NewBuf(rows, cols int) Buf
	// Slice is the view of rows [r0, r1) of b.
	Slice(b Buf, r0, r1 int) Buf

	// Embed: out(T, C) = wte[tokens[t]] + wpe[pos0+t].
	Embed(out Buf, tokens []int32, pos0 int, wte, wpe Tensor)
	// LayerNorm: out(T, C) = (in - mean) / sqrt(var + eps) * w + b, per row.
	LayerNorm(out, in Buf, w, b Tensor, eps float32)
	// Linear: out(T, OC) = in(T, C) · wᵀ + b; b may be nil.
	Linear(out, in Buf, w, b Tensor)
	// LinearGELU: out = GELU(in · wᵀ + b), GPT-2's tanh approximation (one kernel on a GPU: the
	// GELU in the GEMM's epilogue).
	LinearGELU(out, in Buf, w, b Tensor)
	// Add: x += y.
	Add(x, y Buf)
	// AddLayerNorm: x += y, then out = LayerNorm(x) (one pass on a GPU). out must not overlap x
	// or y.
	AddLayerNorm(out, x, y Buf, w, b Tensor, eps float32)
	// Attention runs causal multi-head attention for T new tokens at positions pos0.. : it stores
	// their keys and values from qkv(T, 3C) into the layer's cache k, v (maxT, C) and writes
	// out(T, C), attending over positions [0, pos0+t].
	Attention(out, qkv, k, v Buf, pos0, nHead int)
	// NLL writes dst[t] = -log softmax(logits[t])[targets[t]] for each row t.
	NLL(dst []float64, logits Buf, targets []int32)
	// Read copies b to the host, row-major.
	Read(dst []float32, b Buf)
	// Free releases b's memory; b and its slices must not be used afterwards.
	Free(b Buf)
	// Err returns the first failure of any op so far (nil if none). A device backend queues ops
	// asynchronously and cannot return their errors one by one (as CUDA's own errors, they show up
	// at the next synchronisation: Read, NLL); after a failure it skips further work. Callers check
	// Err after Read and NLL.
	Err() error
}

// StepGraph is implemented by backends that can record the ops of a one-token decoding step once
// and replay them for later steps (CUDA graphs: one launch per token instead of hundreds).
type StepGraph interface {
	// Step runs body, which issues the ops of one step for token at position pos, recording it
	// under key the first time and replaying the recording afterwards. The backend passes token
	// and pos to the device itself, so body must issue the same ops on the same buffers every
	// time, depending on the token and position only through Embed's and Attention's arguments.
	Step(key any, token int32, pos int, body func())
	// DropSteps releases what was recorded under key.
	DropSteps(key any)
}

// Device is implemented by backends that run on a device with memory of its own (a GPU).
type Device interface {
	// DeviceFacts describes the device and its memory now.
	DeviceFacts() DeviceFacts
	// ResetOpTimes forgets the kernel times so far (those of uploading and quantizing, say).
	ResetOpTimes()
}

// DeviceFacts are a device's figures for reports.
type DeviceFacts struct {
	Name                string // the card: model, compute capability, SMs, memory
	InUse, Peak, Cached int64  // our allocator: in use (weights, activations, scratch), peak, freed blocks kept
	DriverUsed, Total   int64  // the driver's figures (every process on the device); 0 when unknown
	Graphs              bool   // decoding steps run as recorded graphs
	// OpTimes is the time each kernel took when the backend times them one by one (nil otherwise).
	OpTimes map[string]OpTime
}

// OpTime is the time kernels of one name took: launch to completion, summed.
type OpTime struct {
	Calls   int64   `json:"calls"`
	Seconds float64 `json:"seconds"`
}

// KernelCounter is implemented by backends that count which matmul kernels they ran.
type KernelCounter interface {
	// KernelsUsed returns how many Linear calls each kernel ran, by kernel name.
	KernelsUsed() map[string]int64
}

// KernelsUsed returns o's kernel counts, nil when o does not keep them.
func KernelsUsed(o Ops) map[string]int64 {
	if k, ok := o.(KernelCounter); ok {
		return k.KernelsUsed()
	}
	return nil
}

// Tracer is implemented by backends that mark named ranges on a profiler's timeline (NVTX).
type Tracer interface {
	// Range opens a range and returns the func that closes it.
	Range(name string) (end func())
}

// Trace opens a named range on o's profiler timeline when o has one: defer model.Trace(o, "x")().
func Trace(o Ops, name string) (end func()) {
	if t, ok := o.(Tracer); ok {
		return t.Range(name)
	}
	return func() {}
}
