package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/model/tokenizer"
	"github.com/gpuquant/gpuquant/quantize"
)

// IsGGUF reports whether a --model argument names a GGUF file.
func IsGGUF(path string) bool { return strings.HasSuffix(strings.ToLower(path), ".gguf") }

// Load reads a llama.cpp GPT-2 GGUF (F32, F16, Q8_0 and Q4_0 tensors) into host weights and its
// tokenizer. Q8_0 matrices become our absmax int8 group:32 codes (scale 1/d), Q4_0 ones our
// zero-point int4 group:32 codes (scale 1/|d|, zero-point 0, or −1 with the codes mirrored where
// d < 0), so that they run on our kernels; quant describes the blocks' projections (nil when
// every tensor is float).
// Values are copied out of the file, which is closed on return.
func Load(path string) (w *model.Weights, quant *quantize.Options, tok *tokenizer.Tokenizer, err error) {
	data, closer, err := model.MapFile(path, "GGUF")
	if err != nil {
		return nil, nil, nil, err
	}
	defer closer.Close()
	f, err := Parse(data)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if w, quant, tok, err = f.weights(); err != nil {
		return nil, nil, nil, fmt.Errorf("gguf: %s: %w", path, err)
	}
	return w, quant, tok, nil
}

// LoadTokenizer reads only the tokenizer of a GGUF file.
func LoadTokenizer(path string) (*tokenizer.Tokenizer, error) {
	data, closer, err := model.MapFile(path, "GGUF")
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	f, err := Parse(data)
	if err == nil {
		var tok *tokenizer.Tokenizer
		if tok, err = f.tokenizer(); err == nil {
			return tok, nil
		}
	}
	return nil, fmt.Errorf("gguf: %s: %w", path, err)
}

func (f *File) weights() (*model.Weights, *quantize.Options, *tokenizer.Tokenizer, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, nil, nil, err
	}
	tok, err := f.tokenizer()
	if err != nil {
		return nil, nil, nil, err
	}
	if tok.VocabSize() != cfg.VocabSize {
		return nil, nil, nil, fmt.Errorf("tokenizer.ggml.tokens has %d tokens, token_embd.weight %d rows", tok.VocabSize(), cfg.VocabSize)
	}
	byName := map[string]*TensorInfo{}
	for i := range f.Tensors {
		byName[f.Tensors[i].Name] = &f.Tensors[i]
	}
	w := &model.Weights{Config: cfg, Blocks: make([]model.Block, cfg.NLayer)}
	if !cfg.TieEmbeddings {
		w.Head = &model.F32{}
	}
	var quant *quantize.Options
	linear := false // quant describes a block projection
	for _, p := range w.Params() {
		name := ggufName(p.Name)
		t := byName[name]
		if t == nil {
			return nil, nil, nil, fmt.Errorf("missing tensor %q (gpt2.block_count is %d)", name, cfg.NLayer)
		}
		delete(byName, name)
		if *p.T, err = tensorFrom(t, model.ExpectedShape(cfg, p.Name)); err != nil {
			return nil, nil, nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		// Described by the blocks' projections (llama-quantize may store token_embd otherwise).
		if q, ok := (*p.T).(*quantize.Tensor); ok && (quant == nil || p.Kind == model.KindLinear && !linear) {
			quant = &quantize.Options{Scheme: q.Scheme, Bits: q.Bits, Granularity: quantize.Granularity{Kind: quantize.PerGroup, Size: BlockSize}}
			linear = p.Kind == model.KindLinear
		}
	}
	for name := range byName {
		return nil, nil, nil, fmt.Errorf("unexpected tensor %q: not a GPT-2 parameter for %d blocks", name, cfg.NLayer)
	}
	return w, quant, tok, nil
}

// config reads the gpt2 hyperparameters; the vocabulary size is token_embd's row count.
func (f *File) config() (model.Config, error) {
	if a, _ := f.Get("general.architecture").(string); a != "gpt2" {
		return model.Config{}, fmt.Errorf("general.architecture is %v: only llama.cpp's \"gpt2\" is supported", f.Get("general.architecture"))
	}
	var c model.Config
	for _, f2 := range []struct {
		key string
		dst *int
	}{{"gpt2.context_length", &c.NPositions}, {"gpt2.embedding_length", &c.NEmbd},
		{"gpt2.block_count", &c.NLayer}, {"gpt2.attention.head_count", &c.NHead}} { // in order: errors name the first missing key
		key, dst := f2.key, f2.dst
		v, ok := f.Get(key).(uint32)
		if !ok || v == 0 || v > 1<<20 {
			return c, fmt.Errorf("%s is %v: want a uint32 between 1 and 2^20", key, f.Get(key))
		}
		*dst = int(v)
	}
	eps, ok := f.Get("gpt2.attention.layer_norm_epsilon").(float32)
	if !ok || !(eps > 0 && eps < 1) {
		return c, fmt.Errorf("gpt2.attention.layer_norm_epsilon is %v: want a float32 in (0, 1)", f.Get("gpt2.attention.layer_norm_epsilon"))
	}
	// The shortest decimal of the float32 (1e-05, not 9.99999974e-06), as config.json has it.
	c.LayerNormE, _ = strconv.ParseFloat(strconv.FormatFloat(float64(eps), 'g', -1, 32), 64)
	if ff, ok := f.Get("gpt2.feed_forward_length").(uint32); ok && int(ff) != 4*c.NEmbd {
		return c, fmt.Errorf("gpt2.feed_forward_length is %d: GPT-2's MLP is 4·n_embd = %d", ff, 4*c.NEmbd)
	}
	if c.NEmbd%c.NHead != 0 {
		return c, fmt.Errorf("gpt2.embedding_length %d is not a multiple of gpt2.attention.head_count %d", c.NEmbd, c.NHead)
	}
	c.TieEmbeddings = true
	for _, t := range f.Tensors {
		switch t.Name {
		case "token_embd.weight":
			if len(t.Dims) == 2 {
				c.VocabSize = int(t.Dims[1])
			}
		case "output.weight":
			c.TieEmbeddings = false
		}
	}
	if c.VocabSize == 0 {
		return c, fmt.Errorf("no (n_embd, vocab) tensor token_embd.weight")
	}
	return c, nil
}

// tokenizer rebuilds GPT-2's byte-level BPE from tokenizer.ggml.tokens and .merges; tokens of
// type 3 (control) are special.
func (f *File) tokenizer() (*tokenizer.Tokenizer, error) {
	if m, _ := f.Get("tokenizer.ggml.model").(string); m != "gpt2" {
		return nil, fmt.Errorf("tokenizer.ggml.model is %v: want \"gpt2\" (byte-level BPE)", f.Get("tokenizer.ggml.model"))
	}
	tokens, ok := arrayOf[string](f.Get("tokenizer.ggml.tokens"))
	if !ok {
		return nil, fmt.Errorf("tokenizer.ggml.tokens: want an array of strings")
	}
	merges, ok := arrayOf[string](f.Get("tokenizer.ggml.merges"))
	if !ok {
		return nil, fmt.Errorf("tokenizer.ggml.merges: want an array of strings")
	}
	var special []int32
	if types, ok := arrayOf[int32](f.Get("tokenizer.ggml.token_type")); ok {
		if len(types) != len(tokens) {
			return nil, fmt.Errorf("tokenizer.ggml.token_type has %d entries for %d tokens", len(types), len(tokens))
		}
		for id, t := range types {
			if t == 3 {
				special = append(special, int32(id))
			}
		}
	}
	return tokenizer.New(tokens, merges, special, "tokenizer.ggml")
}

// arrayOf returns v's elements when v is an array of T.
func arrayOf[T any](v any) ([]T, bool) {
	a, ok := v.(Array)
	if !ok {
		return nil, false
	}
	out, ok := a.Values.([]T)
	return out, ok
}

// tensorFrom converts one tensor, whose ggml dimensions must be want reversed.
func tensorFrom(t *TensorInfo, want []int) (model.Tensor, error) {
	if len(t.Dims) != len(want) {
		return nil, fmt.Errorf("shape %v, want %v (innermost first)", t.Dims, reversed(want))
	}
	for i, d := range want {
		if t.Dims[len(want)-1-i] != int64(d) {
			return nil, fmt.Errorf("shape %v, want %v (innermost first)", t.Dims, reversed(want))
		}
	}
	n := int(t.Elements())
	switch t.Type {
	case F32, F16:
		v := make([]float32, n)
		for i := range v {
			if t.Type == F32 {
				v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
			} else {
				v[i] = model.HalfToFloat32(binary.LittleEndian.Uint16(t.Data[2*i:]))
			}
			if math.IsNaN(float64(v[i])) || math.IsInf(float64(v[i]), 0) {
				return nil, fmt.Errorf("value %d is %v", i, v[i])
			}
		}
		return model.NewF32(v, want...), nil
	case Q8_0:
		return q8Tensor(t.Data, want)
	}
	return q4Tensor(t.Data, want)
}

func reversed(d []int) []int {
	out := make([]int, len(d))
	for i, x := range d {
		out[len(d)-1-i] = x
	}
	return out
}

// blockScale reads a block's d and checks it is finite.
func blockScale(blk []byte, b int) (float32, error) {
	d := model.HalfToFloat32(binary.LittleEndian.Uint16(blk))
	if math.IsNaN(float64(d)) || math.IsInf(float64(d), 0) {
		return 0, fmt.Errorf("block %d has scale %v", b, d)
	}
	return d, nil
}

// q8Tensor turns Q8_0 blocks into absmax int8 group:32 codes. llama.cpp writes d ≥ 0 and codes in
// −127..127; a block with d < 0 is mirrored, and code −128 (outside our symmetric range) refused.
func q8Tensor(data []byte, dims []int) (*quantize.Tensor, error) {
	n := model.NumElements(dims)
	q := &quantize.Tensor{Dims: append([]int(nil), dims...), Scheme: quantize.Absmax, Bits: 8, GroupSize: BlockSize,
		Codes: make([]byte, n), Scales: make([]float32, n/BlockSize)}
	for b := range n / BlockSize {
		blk := data[b*q8Block : (b+1)*q8Block]
		d, err := blockScale(blk, b)
		if err != nil {
			return nil, err
		}
		sign := int8(1)
		if d < 0 {
			sign, d = -1, -d
		}
		q.Scales[b] = 1
		if d != 0 {
			q.Scales[b] = 1 / d
		}
		for i := range BlockSize {
			c := int8(blk[2+i])
			if c == -128 {
				return nil, fmt.Errorf("block %d holds code -128, outside absmax int8's -127..127", b)
			}
			if d == 0 {
				c = 0 // every value is 0
			}
			q.Codes[b*BlockSize+i] = byte(sign * c)
		}
	}
	return q, nil
}

// q4Tensor turns Q4_0 blocks (x = (n − 8)·d, n the stored nibble) into zero-point int4 group:32
// codes (x = (q − z)·s⁻¹): q = n − 8, z = 0 for d > 0; q = 7 − n, z = −1, s = 1/|d| for d < 0.
func q4Tensor(data []byte, dims []int) (*quantize.Tensor, error) {
	n := model.NumElements(dims)
	q := &quantize.Tensor{Dims: append([]int(nil), dims...), Scheme: quantize.ZeroPoint, Bits: 4, GroupSize: BlockSize,
		Codes: make([]byte, n/2), Scales: make([]float32, n/BlockSize), Zeros: make([]float32, n/BlockSize)}
	set := func(i int, code int) { // stored as code+8, element 2k in the low nibble
		q.Codes[i/2] |= byte(code+8) << (4 * (i & 1))
	}
	for b := range n / BlockSize {
		blk := data[b*q4Block : (b+1)*q4Block]
		d, err := blockScale(blk, b)
		if err != nil {
			return nil, err
		}
		q.Scales[b] = 1
		if d != 0 {
			q.Scales[b] = float32(1 / math.Abs(float64(d)))
		}
		if d < 0 {
			q.Zeros[b] = -1
		}
		for j := range BlockSize / 2 {
			for k, nib := range [2]int{int(blk[2+j] & 0xf), int(blk[2+j] >> 4)} {
				code := nib - 8
				switch {
				case d == 0:
					code = 0 // every value is 0
				case d < 0:
					code = 7 - nib
				}
				set(b*BlockSize+j+k*BlockSize/2, code)
			}
		}
	}
	return q, nil
}
