package gguf

import (
	"fmt"
	"io"
	"math"

	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/model/tokenizer"
	"github.com/gpuquant/gpuquant/quantize"
)

// llama.cpp's general.file_type for each export format (enum llama_ftype).
var fileTypes = map[TensorType]uint32{F32: 0, F16: 1, Q4_0: 2, Q8_0: 7}

// ExportReport says how each tensor got into the file.
type ExportReport struct {
	Format TensorType
	// Direct counts the matrices whose codes went in unchanged (our absmax int8 group:32 as Q8_0,
	// absmax int4 group:32 as Q4_0: only the scale is rounded to half).
	Direct int
	// Requantized lists the matrices quantized afresh with llama.cpp's rounding (from float
	// weights, or from our codes on another grid), with the error against the values we run.
	Requantized []TensorError
	// HalfScaleMaxRel is the largest relative change of a directly copied group's dequantized
	// values from rounding its scale to half.
	HalfScaleMaxRel float64
}

// TensorError is a re-quantized tensor's error against our (dequantized) values.
type TensorError struct {
	Name      string
	RMS       float64
	MaxAbsErr float64
}

// Export writes w (float32 or quantized host weights, as quantize.Open returns them) with
// tokenizer tok as a GGUF of llama.cpp's "gpt2" architecture at path: every matrix whose rows are
// whole blocks of 32 in format, norms, biases and any other tensor in F32. The head is written
// only when untied (llama.cpp reuses token_embd otherwise).
func Export(path string, w *model.Weights, tok *tokenizer.Tokenizer, format TensorType) (*ExportReport, error) {
	if _, ok := fileTypes[format]; !ok {
		return nil, fmt.Errorf("gguf: export format %s not supported (want F32, F16, Q8_0 or Q4_0)", format)
	}
	if tok.VocabSize() != w.Config.VocabSize {
		return nil, fmt.Errorf("gguf: the tokenizer has %d tokens, the model %d", tok.VocabSize(), w.Config.VocabSize)
	}
	rep := &ExportReport{Format: format}
	var tensors []Tensor
	for _, p := range w.Params() {
		t, err := exportTensor(p, format, rep)
		if err != nil {
			return nil, fmt.Errorf("gguf: %s: %w", p.Name, err)
		}
		tensors = append(tensors, t)
	}
	if err := Write(path, metadata(w.Config, tok, format), tensors); err != nil {
		return nil, err
	}
	return rep, nil
}

// ggufName maps our (Hugging Face) parameter names to llama.cpp's.
func ggufName(name string) string {
	var layer int
	var rest string
	if n, _ := fmt.Sscanf(name, "h.%d.%s", &layer, &rest); n == 2 {
		return fmt.Sprintf("blk.%d.%s", layer, blockNames[rest])
	}
	return topNames[name]
}

var topNames = map[string]string{"wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
	"ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias", "lm_head.weight": "output.weight"}

var blockNames = map[string]string{
	"ln_1.weight": "attn_norm.weight", "ln_1.bias": "attn_norm.bias",
	"attn.c_attn.weight": "attn_qkv.weight", "attn.c_attn.bias": "attn_qkv.bias",
	"attn.c_proj.weight": "attn_output.weight", "attn.c_proj.bias": "attn_output.bias",
	"ln_2.weight": "ffn_norm.weight", "ln_2.bias": "ffn_norm.bias",
	"mlp.c_fc.weight": "ffn_up.weight", "mlp.c_fc.bias": "ffn_up.bias",
	"mlp.c_proj.weight": "ffn_down.weight", "mlp.c_proj.bias": "ffn_down.bias",
}

// exportTensor chooses the parameter's type and how its bytes are made.
func exportTensor(p model.Param, format TensorType, rep *ExportReport) (Tensor, error) {
	shape := (*p.T).Shape()
	dims := make([]int64, len(shape)) // ggml: innermost first
	for i, d := range shape {
		dims[len(shape)-1-i] = int64(d)
	}
	t := Tensor{Name: ggufName(p.Name), Dims: dims, Type: F32}
	if t.Name == "" {
		return t, fmt.Errorf("no GGUF name for this parameter")
	}
	matrix := len(shape) == 2
	if matrix && (format == F16 || shape[1]%BlockSize == 0) {
		t.Type = format
	}
	q, _ := (*p.T).(*quantize.Tensor)
	direct := q != nil && t.Type != F32 && t.Type != F16 && q.Scheme == quantize.Absmax && q.GroupSize == BlockSize &&
		((t.Type == Q8_0 && q.Bits == 8) || (t.Type == Q4_0 && q.Bits == 4))
	if _, ok := (*p.T).(*model.F32); !ok && q == nil {
		return t, fmt.Errorf("cannot export a %T", *p.T)
	}
	// The bytes are made as Write reaches the tensor, so that only one converted tensor is in
	// memory at a time; the report fills in as they are.
	src := *p.T
	t.Fill = func(w io.Writer) error {
		data := tensorBytes(src, t.Name, t.Type, direct, rep)
		_, err := w.Write(data)
		return err
	}
	return t, nil
}

// tensorBytes is the tensor src in type typ: our codes copied (direct), or re-quantized, or
// float values as F16 or F32.
func tensorBytes(src model.Tensor, name string, typ TensorType, direct bool, rep *ExportReport) []byte {
	if direct {
		data, rel := codesToBlocks(src.(*quantize.Tensor), typ)
		rep.Direct++
		rep.HalfScaleMaxRel = max(rep.HalfScaleMaxRel, rel)
		return data
	}
	var v []float32 // what we run: float32 weights, or our codes dequantized
	if f, ok := src.(*model.F32); ok {
		v = f.Data
	} else {
		v = src.(*quantize.Tensor).Dequantize().Data
	}
	switch typ {
	case Q8_0, Q4_0:
		data := quantizeBlocks(v, typ)
		rep.Requantized = append(rep.Requantized, blockError(name, typ, data, v))
		return data
	case F16:
		return model.HalfBytes(v)
	}
	return model.F32Bytes(v)
}

// codesToBlocks copies absmax group:32 codes into Q8_0 or Q4_0 blocks with d = 1/scale rounded to
// half, and returns the largest relative change of a group's step (d against 1/scale).
func codesToBlocks(q *quantize.Tensor, t TensorType) ([]byte, float64) {
	n := model.NumElements(q.Dims)
	size := q8Block
	if t == Q4_0 {
		size = q4Block
	}
	out := make([]byte, n/BlockSize*size)
	codes := make([]int8, BlockSize)
	var worst float64
	for b := range n / BlockSize {
		for i := range codes {
			codes[i] = q.Code(b*BlockSize + i)
		}
		step := 1 / float64(q.Scales[b])
		d := model.Float32ToHalf(float32(step))
		worst = max(worst, math.Abs(float64(model.HalfToFloat32(d))-step)/step)
		if t == Q8_0 {
			putQ8Block(out[b*size:], d, codes)
		} else {
			putQ4Block(out[b*size:], d, codes)
		}
	}
	return out, worst
}

// quantizeBlocks quantizes v with llama.cpp's rounding for t.
func quantizeBlocks(v []float32, t TensorType) []byte {
	size, quant, put := q8Block, quantizeQ8, putQ8Block
	if t == Q4_0 {
		size, quant, put = q4Block, quantizeQ4, putQ4Block
	}
	out := make([]byte, len(v)/BlockSize*size)
	codes := make([]int8, BlockSize)
	for b := range len(v) / BlockSize {
		d := quant(v[b*BlockSize:(b+1)*BlockSize], codes)
		put(out[b*size:], d, codes)
	}
	return out
}

// blockError compares the blocks' values with v.
func blockError(name string, t TensorType, data []byte, v []float32) TensorError {
	got := make([]float32, len(v))
	decodeBlocks(t, data, got)
	e := TensorError{Name: name}
	var sq float64
	for i, x := range v {
		d := math.Abs(float64(got[i]) - float64(x))
		sq += d * d
		e.MaxAbsErr = max(e.MaxAbsErr, d)
	}
	e.RMS = math.Sqrt(sq / float64(len(v)))
	return e
}

// metadata is llama.cpp's gpt2 hyperparameters and GPT-2's tokenizer.
func metadata(c model.Config, tok *tokenizer.Tokenizer, format TensorType) []KV {
	n := tok.VocabSize()
	tokens := make([]string, n)
	types := make([]int32, n)
	var eot uint32
	for id := range n {
		tokens[id] = tok.Token(int32(id))
		types[id] = 1 // normal
		if tok.IsSpecial(int32(id)) {
			types[id] = 3 // control
			if tokens[id] == tokenizer.EOTText {
				eot = uint32(id)
			}
		}
	}
	kv := []KV{
		{"general.architecture", "gpt2"},
		{"general.name", "gpt2"},
		{"general.file_type", fileTypes[format]},
		{"gpt2.context_length", uint32(c.NPositions)},
		{"gpt2.embedding_length", uint32(c.NEmbd)},
		{"gpt2.feed_forward_length", uint32(4 * c.NEmbd)},
		{"gpt2.block_count", uint32(c.NLayer)},
		{"gpt2.attention.head_count", uint32(c.NHead)},
		{"gpt2.attention.layer_norm_epsilon", float32(c.LayerNormE)},
		{"tokenizer.ggml.model", "gpt2"},
		{"tokenizer.ggml.pre", "gpt-2"},
		{"tokenizer.ggml.tokens", Array{TypeString, tokens}},
		{"tokenizer.ggml.token_type", Array{TypeInt32, types}},
		{"tokenizer.ggml.merges", Array{TypeString, tok.Merges()}},
		{"tokenizer.ggml.bos_token_id", eot},
		{"tokenizer.ggml.eos_token_id", eot},
	}
	if format == Q8_0 || format == Q4_0 {
		kv = append(kv, KV{"general.quantization_version", uint32(2)})
	}
	return kv
}
