package model

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// SynthOptions describe a random checkpoint.
type SynthOptions struct {
	Config Config
	DType  string // F32, F16 or BF16
	Seed   uint64
}

// Synth writes a random GPT-2 in Hugging Face layout into dir/model.safetensors and
// dir/config.json, initialised as transformers does: matrices and embeddings N(0, 0.02), the two
// residual projections (attn.c_proj, mlp.c_proj) N(0, 0.02/sqrt(2·n_layer)), biases 0, LayerNorm
// gains 1. Values depend only on the seed, not on the number of cores. Tokenizer files are the
// caller's business.
func Synth(dir string, o SynthOptions) error {
	c := o.Config
	if err := c.Validate(); err != nil {
		return fmt.Errorf("model: synth: %w", err)
	}
	enc, ok := encoders[o.DType]
	if !ok {
		return fmt.Errorf("model: synth: unknown dtype %q (want F32, F16 or BF16)", o.DType)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("model: synth: %w", err)
	}
	w := &Weights{Config: c, Blocks: make([]Block, c.NLayer)}
	var tensors []STensor
	for i, p := range w.Params() {
		shape := ExpectedShape(c, p.Name)
		if Conv1D(p.Name) {
			shape = []int{shape[1], shape[0]}
		}
		std := 0.02
		if s := Suffix(p.Name); s == "attn.c_proj.weight" || s == "mlp.c_proj.weight" {
			std /= math.Sqrt(2 * float64(c.NLayer))
		}
		kind, seed := p.Kind, o.Seed*1_000_003+uint64(i)
		tensors = append(tensors, STensor{Name: p.Name, DType: o.DType, Shape: shape, Fill: func(w io.Writer) error {
			n := NumElements(shape)
			switch kind {
			case KindNorm:
				return writeConst(w, enc, n, 1)
			case KindBias:
				return writeConst(w, enc, n, 0)
			}
			return writeNormal(w, enc, n, std, seed)
		}})
	}
	if err := WriteSafetensors(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "pt", "generator": "gpuquant synth"}); err != nil {
		return err
	}
	return WriteConfig(dir, c)
}

// encoder appends one float32 in a checkpoint dtype.
type encoder struct {
	size int
	put  func(b []byte, v float32)
}

var encoders = map[string]encoder{
	"F32":  {4, func(b []byte, v float32) { binary.LittleEndian.PutUint32(b, math.Float32bits(v)) }},
	"F16":  {2, func(b []byte, v float32) { binary.LittleEndian.PutUint16(b, Float32ToHalf(v)) }},
	"BF16": {2, func(b []byte, v float32) { binary.LittleEndian.PutUint16(b, Float32ToBF16(v)) }},
}

func writeConst(w io.Writer, enc encoder, n int, v float32) error {
	buf := make([]byte, n*enc.size)
	for i := range n {
		enc.put(buf[i*enc.size:], v)
	}
	_, err := w.Write(buf)
	return err
}

// synthChunk values share one generator, so results do not depend on how chunks are scheduled.
const synthChunk = 1 << 20

// writeNormal writes n draws of N(0, std), generated in parallel chunks seeded by (seed, chunk).
func writeNormal(w io.Writer, enc encoder, n int, std float64, seed uint64) error {
	chunks := (n + synthChunk - 1) / synthChunk
	par := runtime.GOMAXPROCS(0)
	for c0 := 0; c0 < chunks; c0 += par {
		c1 := min(c0+par, chunks)
		bufs := make([][]byte, c1-c0)
		var wg sync.WaitGroup
		for c := c0; c < c1; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lo, hi := c*synthChunk, min((c+1)*synthChunk, n)
				rng := rand.New(rand.NewPCG(seed, uint64(c)))
				b := make([]byte, (hi-lo)*enc.size)
				for i := range hi - lo {
					enc.put(b[i*enc.size:], float32(rng.NormFloat64()*std))
				}
				bufs[c-c0] = b
			}()
		}
		wg.Wait()
		for _, b := range bufs {
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
	}
	return nil
}
