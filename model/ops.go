package model

// Buf is an activation matrix (rows, cols) of float32 owned by a backend; the forward pass never
// looks inside, so a GPU backend keeps activations on the device between ops.
type Buf interface {
	Rows() int
	Cols() int
}

// Ops is the seam between the forward pass and a backend. Shapes use the same letters everywhere:
// T tokens, C channels, V vocabulary, NH heads. Weights are whatever Upload returned.
type Ops interface {
	// Name identifies the backend in reports ("cpu", "cuda:0").
	Name() string
	// Upload makes w resident on the backend and returns weights whose tensors it can run.
	Upload(w *Weights) (*Weights, error)
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
	// GELU applies GPT-2's tanh approximation in place.
	GELU(x Buf)
	// Add: x += y.
	Add(x, y Buf)
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
