package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/gguf"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/model/tokenizer"
	"github.com/gpuquant/gpuquant/quantize"
)

func modelFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "model", Usage: "Hugging Face GPT-2 folder (config.json, model.safetensors, vocab.json + merges.txt) or a gpuquant quantized folder", Required: true},
		&ucli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu or cuda:N"},
	}
}

// schemeFlags choose the quantization applied in memory after loading.
func schemeFlags() []ucli.Flag {
	return append([]ucli.Flag{&ucli.StringFlag{Name: "scheme", Value: "fp32", Usage: "fp32 (no quantization), fp16 (half weights, cuda only), absmax or zeropoint"}},
		quantFlags()...)
}

// quantFlags are the scheme flags but the scheme itself (run compares both schemes).
func quantFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.IntFlag{Name: "bits", Value: 8, Usage: "8 or 4"},
		&ucli.StringFlag{Name: "granularity", Value: "channel", Usage: "tensor, channel or group:N (N divides every row, e.g. 32 or 64)"},
		&ucli.StringFlag{Name: "scope", Value: "weights", Usage: "weights (every 2-D matrix), linear (block projections only) or all (every parameter, as the tutorial does)"},
		&ucli.StringFlag{Name: "preset", Value: "standard", Usage: "standard (qmax 127 / 255 levels) or article (the tutorial's constants)"},
		&ucli.StringFlag{Name: "kernel", Value: "auto", Usage: "auto (weight-only), weight-only or w8a8 (activations quantized per token)"},
		&ucli.Float64Flag{Name: "outlier-threshold", Usage: "W8A8 only: input columns with |x| above this run in float (LLM.int8()); 0 disables"},
	}
}

// quantOptions reads the scheme flags with the given scheme; nil means a float scheme.
func quantOptions(c *ucli.Context, scheme string) (*quantize.Options, error) {
	if scheme == "fp32" || scheme == quantize.SchemeFP16 {
		return nil, nil
	}
	g, err := quantize.ParseGranularity(c.String("granularity"))
	if err != nil {
		return nil, err
	}
	o := &quantize.Options{Scheme: quantize.Scheme(scheme), Bits: c.Int("bits"), Granularity: g,
		Preset: c.String("preset"), Scope: c.String("scope")}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// loaded is a model ready to run.
type loaded struct {
	Dir    string
	Source *model.Weights // as read from disk (owns the mapping)
	Saved  bool           // Source is a quantized checkpoint, so no fp32 original is at hand
	W      *model.Weights // as uploaded to the backend
	Spec   quantize.Spec  // how W is stored (a saved checkpoint's own quantization)
	Ops    quantize.Backend
	tok    *tokenizer.Tokenizer // a GGUF's own, read with its weights; nil for a folder
}

// tokenizer is the model's tokenizer: the GGUF's, or its folder's files.
func (l *loaded) tokenizer() (*tokenizer.Tokenizer, error) { return tokenizerOf(l.Dir, l.tok) }

func (l *loaded) Close() {
	l.Ops.Close()
	l.Source.Close()
}

// openSource reads --model: a checkpoint folder, plain or quantized, or a llama.cpp GGUF file,
// whose tokenizer comes with it (tok, nil for a folder: tokenizerOf reads its files).
func openSource(c *ucli.Context) (w *model.Weights, q *quantize.Options, tok *tokenizer.Tokenizer, err error) {
	if p := c.String("model"); gguf.IsGGUF(p) {
		return gguf.Load(p)
	}
	w, q, err = quantize.Open(c.String("model"))
	return w, q, nil, err
}

// schemeFlag is --scheme, refusing quantization flags that fp32 would silently ignore.
func schemeFlag(c *ucli.Context) (string, error) {
	s := c.String("scheme")
	if s == "fp32" || s == quantize.SchemeFP16 {
		for _, f := range []string{"bits", "granularity", "scope", "preset"} {
			if c.IsSet(f) {
				return "", fmt.Errorf("--%s needs --scheme absmax or --scheme zeropoint (the scheme %s does not quantize)", f, s)
			}
		}
	}
	return s, nil
}

// loadModel opens --model on --device, stored as the scheme flags say. On the CPU a float
// checkpoint is quantized while it loads (the float model is never in memory whole) unless
// keepSource asks for the original too.
func loadModel(c *ucli.Context, keepSource bool) (*loaded, error) {
	scheme, err := schemeFlag(c)
	if err != nil {
		return nil, err
	}
	opt, err := quantOptions(c, scheme)
	if err != nil {
		return nil, err
	}
	spec := quantize.Spec{Quant: opt, Half: scheme == quantize.SchemeFP16}
	ops, err := openBackend(c)
	if err != nil {
		return nil, err
	}
	end := model.Trace(ops, "load")
	stream := spec.Quant != nil && c.String("device") == "cpu" && !keepSource && !gguf.IsGGUF(c.String("model"))
	var src *model.Weights
	var fileQuant *quantize.Options
	var tok *tokenizer.Tokenizer
	if stream {
		src, fileQuant, err = quantize.OpenQuantizing(c.String("model"), *spec.Quant)
	} else {
		src, fileQuant, tok, err = openSource(c)
	}
	end()
	if err == nil && fileQuant != nil && !spec.Float() {
		src.Close()
		err = fmt.Errorf("%s is already quantized (%s); drop --scheme to run it as saved", c.String("model"), fileQuant)
	}
	if err != nil {
		ops.Close()
		return nil, err
	}
	l := &loaded{Dir: c.String("model"), Source: src, Saved: fileQuant != nil, Spec: spec, Ops: ops, tok: tok}
	if fileQuant != nil {
		l.Spec = quantize.Spec{Quant: fileQuant}
	}
	if stream && fileQuant == nil {
		spec = quantize.Spec{} // quantized as it loaded
	}
	end = model.Trace(ops, "upload")
	l.W, err = ops.Upload(src, spec)
	end()
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// loadTokenizer reads the tokenizer of a checkpoint folder or GGUF file.
func loadTokenizer(path string) (*tokenizer.Tokenizer, error) { return tokenizerOf(path, nil) }

// tokenizerOf is tok when the model's file brought one, else the tokenizer at path.
func tokenizerOf(path string, tok *tokenizer.Tokenizer) (*tokenizer.Tokenizer, error) {
	switch {
	case tok != nil:
		return tok, nil
	case gguf.IsGGUF(path):
		return gguf.LoadTokenizer(path)
	}
	return tokenizer.Load(path)
}

// maxTokens is --max-tokens (0: all).
func maxTokens(c *ucli.Context) (int, error) {
	if n := c.Int("max-tokens"); n < 0 {
		return 0, fmt.Errorf("--max-tokens %d is negative (0 means all)", n)
	}
	return c.Int("max-tokens"), nil
}

// firstTokens applies --max-tokens.
func firstTokens(c *ucli.Context, ids []int32) ([]int32, error) {
	n, err := maxTokens(c)
	if err != nil {
		return nil, err
	}
	if n > 0 && n < len(ids) {
		ids = ids[:n]
	}
	return ids, nil
}
