package quantize

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/gpuquant/gpuquant/internal/par"
	"github.com/gpuquant/gpuquant/model"
)

// chunk is the number of values one goroutine quantizes at a time in a large tensor.
const chunk = 1 << 16

// Quantize turns x, a row-major tensor of shape dims, into codes and scales under opt (its Scope
// is ignored). Arithmetic is float32, one rounding per operation, with round-half-to-even:
//
//	absmax:     s = qmax / max|x|                      q = round(x·s)
//	zero-point: s = levels / (max − min)               z = round(−s·min − 2^(bits−1))
//	                                                   q = clamp(round(x·s + z), −2^(bits−1), 2^(bits−1)−1)
//
// where a / b is evaluated as PyTorch evaluates the tutorial's `127 / torch.max(...)`, that is
// (1/b)·a with a rounding after each step (Tensor.__rtruediv__ is reciprocal() * a), so that the
// codes equal PyTorch's bit for bit.
//
// with qmax 127 (int8) or 7 (int4), levels 255 or 15 (the article preset uses 100 and 200 at
// 8 bits), min, max and max|x| taken over each group. Degenerate groups: absmax with max|x| = 0
// takes s = 1 (all codes 0, dequantized exactly to 0); zero-point with max = min takes range 1
// (s = levels, and every code equals round(levels·c + z), which dequantizes exactly when levels·c
// is an integer, e.g. for c = 0 or 1, the biases and gains of a fresh checkpoint, and within
// 0.5/levels otherwise). A scale that overflows float32 (max|x| or the range below about 1e-36)
// is clamped to the largest float32. NaN or ±Inf anywhere is an error naming the flat index.
func Quantize(x []float32, dims []int, opt Options) (*Tensor, error) {
	t, err := quantize("", x, dims, opt)
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	return t, nil
}

func quantize(name string, x []float32, dims []int, opt Options) (*Tensor, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	n := model.NumElements(dims)
	if n != len(x) {
		return nil, fmt.Errorf("%d values for shape %v (%d)", len(x), dims, n)
	}
	gs, err := opt.Granularity.GroupSize(name, dims)
	if err != nil {
		return nil, err
	}
	groups := n / gs
	t := &Tensor{
		Dims:      append([]int(nil), dims...),
		Scheme:    opt.Scheme,
		Bits:      opt.Bits,
		GroupSize: gs,
		Codes:     make([]byte, (n*opt.Bits+7)/8),
		Scales:    make([]float32, groups),
	}
	if opt.Scheme == ZeroPoint {
		t.Zeros = make([]float32, groups)
	}
	q := newQuantizer(opt)
	if groups == 1 {
		return t, q.wholeTensor(t, x)
	}
	return t, q.groups(t, x)
}

// wholeTensor quantizes x as one group: its range found in parallel, then encoded in parallel.
func (q quantizer) wholeTensor(t *Tensor, x []float32) error {
	var bad badValue
	var mu sync.Mutex
	mn, mx := float32(math.Inf(1)), float32(math.Inf(-1))
	par.Pieces(len(x), chunk, func(lo, hi int) {
		a, b, i := scan(x[lo:hi])
		if i >= 0 {
			bad.report(lo+i, x[lo+i])
			return
		}
		mu.Lock()
		mn, mx = min(mn, a), max(mx, b)
		mu.Unlock()
	})
	if err := bad.err(); err != nil {
		return err
	}
	s, z, err := q.params(mn, mx)
	if err != nil {
		return err
	}
	t.Scales[0] = s
	if t.Zeros != nil {
		t.Zeros[0] = z
	}
	par.Pieces(len(x), chunk, func(lo, hi int) { q.encode(t.Codes, x[lo:hi], lo, s, z) })
	return nil
}

// groups quantizes x in groups of t.GroupSize, each goroutine taking whole groups. At 4 bits a
// run of groups must start on an even value so that no byte is shared between goroutines.
func (q quantizer) groups(t *Tensor, x []float32) error {
	gs := t.GroupSize
	per := max(1, chunk/gs)
	if q.bits == 4 && gs%2 == 1 && per%2 == 1 {
		per++
	}
	var bad badValue
	var ferr atomic.Pointer[error]
	par.Pieces(len(x)/gs, per, func(g0, g1 int) {
		for g := g0; g < g1; g++ {
			lo := g * gs
			v := x[lo : lo+gs]
			mn, mx, i := scan(v)
			if i >= 0 {
				bad.report(lo+i, v[i])
				return
			}
			s, z, err := q.params(mn, mx)
			if err != nil {
				ferr.CompareAndSwap(nil, &err)
				return
			}
			t.Scales[g] = s
			if t.Zeros != nil {
				t.Zeros[g] = z
			}
			q.encode(t.Codes, v, lo, s, z)
		}
	})
	if err := bad.err(); err != nil {
		return err
	}
	if e := ferr.Load(); e != nil {
		return *e
	}
	return nil
}

// badValue keeps the lowest flat index of a non-finite value seen by any goroutine.
type badValue struct {
	mu    sync.Mutex
	found bool
	index int
	value float32
}

func (b *badValue) report(i int, v float32) {
	b.mu.Lock()
	if !b.found || i < b.index {
		b.found, b.index, b.value = true, i, v
	}
	b.mu.Unlock()
}

func (b *badValue) err() error {
	if !b.found {
		return nil
	}
	return fmt.Errorf("non-finite value %v at flat index %d", b.value, b.index)
}

// scan returns the minimum and maximum of v, or the index of its first NaN or ±Inf (else −1).
func scan(v []float32) (mn, mx float32, bad int) {
	mn, mx = float32(math.Inf(1)), float32(math.Inf(-1))
	for i, x := range v {
		if !(x >= -math.MaxFloat32 && x <= math.MaxFloat32) { // NaN fails both
			return 0, 0, i
		}
		mn, mx = min(mn, x), max(mx, x)
	}
	return mn, mx, -1
}

// quantizer holds one Options' constants.
type quantizer struct {
	scheme Scheme
	bits   int
	num    float32 // qmax (absmax) or levels (zero-point)
	offset float32 // 2^(bits−1), zero-point only
	lo, hi float32 // code bounds
}

func newQuantizer(opt Options) quantizer {
	k := opt.Constants()
	return quantizer{scheme: opt.Scheme, bits: opt.Bits, num: k.Num, offset: k.Offset, lo: float32(k.Lo), hi: float32(k.Hi)}
}

// params computes a group's scale and zero-point from its minimum and maximum.
func (q quantizer) params(mn, mx float32) (s, z float32, err error) {
	if q.scheme == Absmax {
		m := max(-mn, mx) // max|x|
		if m == 0 {
			return 1, 0, nil
		}
		return divide(q.num, m), 0, nil
	}
	r := float32(mx - mn)
	if math.IsInf(float64(r), 0) {
		return 0, 0, fmt.Errorf("value range [%g, %g] overflows float32", mn, mx)
	}
	if r == 0 {
		r = 1
	}
	s = divide(q.num, r)
	z = float32(math.RoundToEven(float64(float32(float32(-s*mn) - q.offset))))
	return s, z, nil
}

// divide computes num / d as PyTorch evaluates `num / tensor` (Tensor.__rtruediv__ is
// reciprocal() * num): two float32 roundings, not one. The tutorial's scales are written that
// way, and codes must match it bit for bit. A result that overflows float32 is clamped.
func divide(num, d float32) float32 {
	r := float32(1 / d)
	s := float32(r * num)
	if s > math.MaxFloat32 {
		return math.MaxFloat32
	}
	return s
}

// encode writes the codes of v, whose first value is flat element first, into codes.
func (q quantizer) encode(codes []byte, v []float32, first int, s, z float32) {
	if q.bits == 8 {
		out := codes[first : first+len(v)]
		if q.scheme == Absmax {
			for i, x := range v {
				c := math.RoundToEven(float64(float32(x * s)))
				out[i] = byte(int8(min(max(c, -127), 127)))
			}
			return
		}
		for i, x := range v {
			c := math.RoundToEven(float64(float32(float32(x*s) + z)))
			out[i] = byte(int8(min(max(c, -128), 127)))
		}
		return
	}
	lo, hi := float64(q.lo), float64(q.hi)
	for i, x := range v {
		var c float64
		if q.scheme == Absmax {
			c = math.RoundToEven(float64(float32(x * s)))
		} else {
			c = math.RoundToEven(float64(float32(float32(x*s) + z)))
		}
		nib := byte(int(min(max(c, lo), hi))+8) & 0xf
		e := first + i
		codes[e/2] |= nib << (4 * (e & 1))
	}
}

// LoadQuantized reads the float checkpoint folder dir (model.LoadEach) quantizing each parameter
// in opt's scope as soon as it is read, so that the float32 model is never in memory whole:
// peak memory is the quantized model plus about one float tensor. The codes equal
// QuantizeWeights' on the loaded model.
func LoadQuantized(dir string, opt Options) (*model.Weights, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	opt = opt.withDefaults()
	return model.LoadEach(dir, func(p model.Param, t *model.F32) (model.Tensor, error) {
		if !InScope(opt.Scope, p.Kind, t.Dims) {
			return t, nil
		}
		q, err := quantize(p.Name, t.Data, t.Dims, opt)
		if err != nil {
			return nil, fmt.Errorf("quantize: %w", err)
		}
		return q, nil
	})
}

// ErrAlreadyQuantized is returned (wrapped, with the tensor's name) by QuantizeWeights for a
// checkpoint that already holds quantized tensors.
var ErrAlreadyQuantized = errors.New("already quantized")

// InScope reports whether a parameter of the given kind and shape is quantized under scope.
func InScope(scope string, kind model.Kind, dims []int) bool {
	switch scope {
	case ScopeAll:
		return true
	case ScopeLinear:
		return kind == model.KindLinear
	}
	return len(dims) == 2 // ScopeWeights: every matrix
}

// QuantizeWeights returns a new Weights in which the parameters in opt's scope are quantized;
// the others are shared with w, which is never modified. The result also shares w's checkpoint
// mapping (model.Weights keeps it in an unexported field, copied with the struct): keep w open
// while the result is in use, and close only one of them (closing either unmaps both).
// Tensors are quantized in parallel, and large ones in parallel chunks.
func QuantizeWeights(w *model.Weights, opt Options) (*model.Weights, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	opt = opt.withDefaults()
	nw := w.Copy()
	type job struct {
		name string
		slot *model.Tensor
		src  *model.F32
	}
	var jobs []job
	for _, p := range nw.Params() {
		switch t := (*p.T).(type) {
		case *Tensor:
			return nil, fmt.Errorf("quantize: %s is %w (%s int%d); quantize the float checkpoint instead", p.Name, ErrAlreadyQuantized, t.Scheme, t.Bits)
		case *model.F32:
			if InScope(opt.Scope, p.Kind, t.Dims) {
				jobs = append(jobs, job{p.Name, p.T, t})
			}
		case nil:
			return nil, fmt.Errorf("quantize: %s is missing", p.Name)
		default:
			if InScope(opt.Scope, p.Kind, t.Shape()) {
				return nil, fmt.Errorf("quantize: %s is a %T; only float32 host tensors can be quantized", p.Name, t)
			}
		}
	}
	// Small tensors run several at a time; each large one also splits itself across the cores.
	errs := make([]error, len(jobs))
	par.Pieces(len(jobs), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			j := jobs[i]
			q, err := quantize(j.name, j.src.Data, j.src.Dims, opt)
			if err != nil {
				errs[i] = fmt.Errorf("quantize: %s: %w", j.name, err)
				continue
			}
			*j.slot = q
		}
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return nw, nil
}
