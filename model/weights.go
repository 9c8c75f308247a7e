package model

import (
	"fmt"
	"io"
)

// Weights is a GPT-2 in memory. Matrices are (OC, C) row-major: Hugging Face's Conv1D weights,
// stored (in, out) on disk, are transposed once at load.
type Weights struct {
	Config Config
	WTE    Tensor // (V, C) token embeddings
	WPE    Tensor // (NPositions, C) position embeddings
	Blocks []Block
	LnF    Norm
	// Head is the LM head (V, C); nil when it is tied to WTE, as in every published GPT-2.
	Head Tensor

	closer io.Closer // the memory map that zero-copy tensors point into
}

// Block is one transformer layer.
type Block struct {
	Ln1      Norm
	QKV      Linear // (3C, C)
	AttnProj Linear // (C, C)
	Ln2      Norm
	FC       Linear // (4C, C)
	FCProj   Linear // (C, 4C)
}

// Norm is a LayerNorm's gain and bias, (C) each.
type Norm struct{ W, B Tensor }

// Linear is a projection y = x·Wᵀ + B with W (OC, C) and B (OC).
type Linear struct{ W, B Tensor }

// Copy returns weights whose parameter slots can be replaced without touching w: the tensors
// themselves, and the checkpoint mapping, are shared (close only the original).
func (w *Weights) Copy() *Weights {
	c := *w
	c.Blocks = append([]Block(nil), w.Blocks...)
	c.closer = nil
	return &c
}

// HeadTensor is the (V, C) matrix that produces logits: Head, or WTE when tied.
func (w *Weights) HeadTensor() Tensor {
	if w.Head != nil {
		return w.Head
	}
	return w.WTE
}

// Close releases the checkpoint mapping; tensors loaded zero-copy are invalid afterwards.
func (w *Weights) Close() error {
	if w.closer == nil {
		return nil
	}
	err := w.closer.Close()
	w.closer = nil
	return err
}

// Kind classifies a parameter for quantization scopes and reports.
type Kind int

const (
	KindEmbedding Kind = iota // wte, wpe
	KindLinear                // the four projection matrices of each block
	KindHead                  // an untied lm_head
	KindNorm                  // LayerNorm gains
	KindBias                  // projection and LayerNorm biases
)

func (k Kind) String() string {
	return [...]string{"embedding", "linear", "head", "norm", "bias"}[k]
}

// Param names one parameter by its Hugging Face name (without the "transformer." prefix) and
// points at its slot, so quantizers can replace it in place.
type Param struct {
	Name string
	Kind Kind
	T    *Tensor
}

// Params lists every parameter in checkpoint order. A tied head is not listed twice.
func (w *Weights) Params() []Param {
	ps := []Param{{"wte.weight", KindEmbedding, &w.WTE}, {"wpe.weight", KindEmbedding, &w.WPE}}
	for i := range w.Blocks {
		b := &w.Blocks[i]
		p := fmt.Sprintf("h.%d.", i)
		ps = append(ps,
			Param{p + "ln_1.weight", KindNorm, &b.Ln1.W}, Param{p + "ln_1.bias", KindBias, &b.Ln1.B},
			Param{p + "attn.c_attn.weight", KindLinear, &b.QKV.W}, Param{p + "attn.c_attn.bias", KindBias, &b.QKV.B},
			Param{p + "attn.c_proj.weight", KindLinear, &b.AttnProj.W}, Param{p + "attn.c_proj.bias", KindBias, &b.AttnProj.B},
			Param{p + "ln_2.weight", KindNorm, &b.Ln2.W}, Param{p + "ln_2.bias", KindBias, &b.Ln2.B},
			Param{p + "mlp.c_fc.weight", KindLinear, &b.FC.W}, Param{p + "mlp.c_fc.bias", KindBias, &b.FC.B},
			Param{p + "mlp.c_proj.weight", KindLinear, &b.FCProj.W}, Param{p + "mlp.c_proj.bias", KindBias, &b.FCProj.B},
		)
	}
	ps = append(ps, Param{"ln_f.weight", KindNorm, &w.LnF.W}, Param{"ln_f.bias", KindBias, &w.LnF.B})
	if w.Head != nil {
		ps = append(ps, Param{"lm_head.weight", KindHead, &w.Head})
	}
	return ps
}

// Bytes is the memory all parameters occupy in their current formats.
func (w *Weights) Bytes() int64 {
	var n int64
	for _, p := range w.Params() {
		n += (*p.T).Bytes()
	}
	return n
}

// Conv1D reports whether a parameter is stored (in, out) on disk by Hugging Face's Conv1D.
func Conv1D(name string) bool {
	switch Suffix(name) {
	case "attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight":
		return true
	}
	return false
}

// Suffix drops the "h.N." layer prefix of a parameter name.
func Suffix(name string) string {
	if len(name) > 2 && name[:2] == "h." {
		for i := 2; i < len(name); i++ {
			if name[i] == '.' {
				return name[i+1:]
			}
		}
	}
	return name
}

// ExpectedShape is the in-memory shape (OC, C) or (C) of a named parameter under config c.
func ExpectedShape(c Config, name string) []int {
	C := c.NEmbd
	switch Suffix(name) {
	case "wte.weight", "lm_head.weight":
		return []int{c.VocabSize, C}
	case "wpe.weight":
		return []int{c.NPositions, C}
	case "attn.c_attn.weight":
		return []int{3 * C, C}
	case "attn.c_attn.bias":
		return []int{3 * C}
	case "attn.c_proj.weight":
		return []int{C, C}
	case "mlp.c_fc.weight":
		return []int{4 * C, C}
	case "mlp.c_fc.bias":
		return []int{4 * C}
	case "mlp.c_proj.weight":
		return []int{C, 4 * C}
	}
	return []int{C} // LayerNorm gains and biases, projection biases of width C
}
