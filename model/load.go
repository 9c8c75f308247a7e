package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nlpodyssey/safetensors"
)

// IsBuffer reports the non-parameter tensors some GPT-2 checkpoints carry (the causal mask and
// its fill value), which the loader ignores.
func IsBuffer(name string) bool {
	s := Suffix(strings.TrimPrefix(name, "transformer."))
	return s == "attn.bias" || s == "attn.masked_bias"
}

// Load reads a Hugging Face GPT-2 folder (config.json + model.safetensors) into host memory.
// The file is memory-mapped: F32 tensors kept in on-disk layout (embeddings, an untied head) are
// zero-copy views into the map, Conv1D weights are transposed to (OC, C) and their source pages
// released as they go, so loading needs little more memory than the model itself. Call Close on
// the result to unmap.
func Load(dir string) (*Weights, error) { return LoadEach(dir, nil) }

// LoadEach is Load with each parameter passed through each (when not nil) as soon as it is
// read, the result taking its place: a quantizer there keeps one float32 tensor in memory at a
// time, not the whole float model, since each tensor's pages are released once each has run.
func LoadEach(dir string, each func(p Param, t *F32) (Tensor, error)) (*Weights, error) {
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "model.safetensors")
	st, m, err := OpenSafetensors(path)
	if err != nil {
		return nil, err
	}
	w, err := fromSafetensors(cfg, st, m, each)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	w.closer = m
	return w, nil
}

// Views maps the prefix-free names of a checkpoint's parameters to their views, rejecting
// duplicates (a name present with and without "transformer.") and dropping buffers.
func Views(st safetensors.SafeTensors) (map[string]safetensors.TensorView, error) {
	views := map[string]safetensors.TensorView{}
	for _, nv := range st.Tensors() {
		if IsBuffer(nv.Name) {
			continue
		}
		name := strings.TrimPrefix(nv.Name, "transformer.")
		if _, dup := views[name]; dup {
			return nil, fmt.Errorf("tensor %q appears twice (with and without the transformer. prefix)", name)
		}
		views[name] = nv.TensorView
	}
	return views, nil
}

func fromSafetensors(cfg Config, st safetensors.SafeTensors, m *mapping, each func(Param, *F32) (Tensor, error)) (*Weights, error) {
	views, err := Views(st)
	if err != nil {
		return nil, err
	}
	w := &Weights{Config: cfg, Blocks: make([]Block, cfg.NLayer)}
	if _, ok := views["lm_head.weight"]; ok {
		if cfg.TieEmbeddings {
			delete(views, "lm_head.weight")
		} else {
			w.Head = &F32{}
		}
	} else if !cfg.TieEmbeddings {
		return nil, fmt.Errorf("missing tensor \"lm_head.weight\" (config.json sets tie_word_embeddings to false)")
	}
	for _, p := range w.Params() {
		v, ok := views[p.Name]
		if !ok {
			return nil, fmt.Errorf("missing tensor %q (config.json says n_layer=%d)", p.Name, cfg.NLayer)
		}
		delete(views, p.Name)
		t, err := convert(cfg, p.Name, v, m)
		if err != nil {
			return nil, err
		}
		*p.T = t
		if each != nil {
			if *p.T, err = each(p, t); err != nil {
				return nil, fmt.Errorf("tensor %q: %w", p.Name, err)
			}
			m.release(v.Data()) // a zero-copy view's pages, now that each has read them
		}
	}
	for name := range views {
		return nil, fmt.Errorf("unexpected tensor %q: not a GPT-2 parameter for n_layer=%d", name, cfg.NLayer)
	}
	return w, nil
}

// convert turns one on-disk tensor into its in-memory (OC, C) float32 form, checking shape and
// that every value is finite.
func convert(cfg Config, name string, v safetensors.TensorView, m *mapping) (*F32, error) {
	want := ExpectedShape(cfg, name)
	disk := want
	if Conv1D(name) {
		disk = []int{want[1], want[0]}
	}
	got := ShapeOf(v)
	if !slices.Equal(got, disk) {
		return nil, fmt.Errorf("tensor %q has shape %v, config.json implies %v", name, got, disk)
	}
	raw := v.Data()
	var out []float32
	switch v.DType() {
	case safetensors.F32:
		if view, ok := F32View(raw); ok && !Conv1D(name) && len(want) == 2 {
			out = view // zero-copy: the map stays alive as long as the weights
			break
		}
		out = decode(raw, 4, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) })
	case safetensors.F16:
		out = decode(raw, 2, func(b []byte) float32 { return HalfToFloat32(binary.LittleEndian.Uint16(b)) })
	case safetensors.BF16:
		out = decode(raw, 2, func(b []byte) float32 { return BF16ToFloat32(binary.LittleEndian.Uint16(b)) })
	default:
		return nil, fmt.Errorf("tensor %q has dtype %s; GPT-2 weights must be F32, F16 or BF16", name, v.DType())
	}
	if i := firstNonFinite(out); i >= 0 {
		return nil, fmt.Errorf("tensor %q holds a non-finite value (%v at flat index %d)", name, out[i], i)
	}
	if Conv1D(name) {
		out = Transpose(out, want[1], want[0])
		m.release(raw)
	}
	return NewF32(out, want...), nil
}

func decode(raw []byte, size int, f func([]byte) float32) []float32 {
	out := make([]float32, len(raw)/size)
	for i := range out {
		out[i] = f(raw[i*size:])
	}
	return out
}

func firstNonFinite(v []float32) int {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return i
		}
	}
	return -1
}

// Transpose returns the (cols, rows) transpose of a (rows, cols) matrix, in cache-sized tiles.
func Transpose(src []float32, rows, cols int) []float32 {
	const tile = 32
	dst := make([]float32, len(src))
	for r0 := 0; r0 < rows; r0 += tile {
		for c0 := 0; c0 < cols; c0 += tile {
			for r := r0; r < min(r0+tile, rows); r++ {
				for c := c0; c < min(c0+tile, cols); c++ {
					dst[c*rows+r] = src[r*cols+c]
				}
			}
		}
	}
	return dst
}

// ShapeOf is a tensor view's shape as ints.
func ShapeOf(v safetensors.TensorView) []int {
	s := make([]int, len(v.Shape()))
	for i, d := range v.Shape() {
		s[i] = int(d)
	}
	return s
}

// checkDir gives the common "not a model folder" mistakes a clear message.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("model: %s is not a folder (want a Hugging Face GPT-2 folder with config.json and model.safetensors)", dir)
	}
	return nil
}
