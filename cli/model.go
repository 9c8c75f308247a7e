package cli

import (
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/cpu"
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
	return append([]ucli.Flag{&ucli.StringFlag{Name: "scheme", Value: "fp32", Usage: "fp32 (no quantization), absmax or zeropoint"}},
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

// quantOptions reads the scheme flags with the given scheme; nil means fp32.
func quantOptions(c *ucli.Context, scheme string) (*quantize.Options, error) {
	if scheme == "fp32" {
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

func backendOptions(c *ucli.Context) cpu.Options {
	return cpu.Options{Kernel: c.String("kernel"), OutlierThreshold: float32(c.Float64("outlier-threshold"))}
}

// loaded is a model ready to run.
type loaded struct {
	Dir    string
	Source *model.Weights    // as read from disk (owns the mapping)
	Saved  bool              // Source is a quantized checkpoint, so no fp32 original is at hand
	W      *model.Weights    // as uploaded to the backend
	Quant  *quantize.Options // nil for fp32
	Ops    model.Ops
}

func (l *loaded) Close() { l.Source.Close() }

// openSource reads a checkpoint folder, plain or quantized.
func openSource(c *ucli.Context) (*model.Weights, *quantize.Options, error) {
	return quantize.Open(c.String("model"))
}

// prepare quantizes src with opt (nil: as it is) and uploads it to the backend of the flags.
func prepare(c *ucli.Context, src *model.Weights, fileQuant, opt *quantize.Options) (*loaded, error) {
	ops, err := openBackend(c.String("device"), backendOptions(c))
	if err != nil {
		return nil, err
	}
	l := &loaded{Dir: c.String("model"), Source: src, W: src, Quant: fileQuant, Saved: fileQuant != nil}
	if opt != nil {
		if fileQuant != nil {
			return nil, fmt.Errorf("%s is already quantized (%s); drop --scheme to run it as saved", l.Dir, fileQuant)
		}
		q, err := quantize.QuantizeWeights(src, *opt)
		if err != nil {
			return nil, err
		}
		l.W, l.Quant = q, opt
	}
	up, err := ops.Upload(l.W)
	if err != nil {
		return nil, err
	}
	l.W, l.Ops = up, ops
	return l, nil
}

// schemeFlag is --scheme, refusing quantization flags that fp32 would silently ignore.
func schemeFlag(c *ucli.Context) (string, error) {
	s := c.String("scheme")
	if s == "fp32" {
		for _, f := range []string{"bits", "granularity", "scope", "preset"} {
			if c.IsSet(f) {
				return "", fmt.Errorf("--%s needs --scheme absmax or --scheme zeropoint (the default scheme fp32 does not quantize)", f)
			}
		}
	}
	return s, nil
}

// loadModel opens --model and applies the scheme flags.
func loadModel(c *ucli.Context) (*loaded, error) {
	scheme, err := schemeFlag(c)
	if err != nil {
		return nil, err
	}
	src, fileQuant, err := openSource(c)
	if err != nil {
		return nil, err
	}
	opt, err := quantOptions(c, scheme)
	if err == nil {
		var l *loaded
		if l, err = prepare(c, src, fileQuant, opt); err == nil {
			return l, nil
		}
	}
	src.Close()
	return nil, err
}

// schemeFields describes a model's quantization for JSON output.
func schemeFields(q *quantize.Options) map[string]any {
	if q == nil {
		return map[string]any{"scheme": "fp32", "bits": 32, "granularity": "", "scope": "", "preset": ""}
	}
	return map[string]any{"scheme": string(q.Scheme), "bits": q.Bits, "granularity": q.Granularity.String(), "scope": q.Scope, "preset": q.Preset}
}

func loadTokenizer(dir string) (*tokenizer.Tokenizer, error) { return tokenizer.Load(dir) }

// firstTokens applies --max-tokens (0: all).
func firstTokens(c *ucli.Context, ids []int32) ([]int32, error) {
	n := c.Int("max-tokens")
	if n < 0 {
		return nil, fmt.Errorf("--max-tokens %d is negative (0 means all)", n)
	}
	if n > 0 && n < len(ids) {
		ids = ids[:n]
	}
	return ids, nil
}

// readText reads a UTF-8 text file with CRLF line endings normalised to LF.
func readText(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if len(data) == 0 {
		return "", fmt.Errorf("%s is empty", path)
	}
	if !utf8.Valid(data) {
		return "", fmt.Errorf("%s is not valid UTF-8 text", path)
	}
	return strings.ReplaceAll(string(data), "\r\n", "\n"), nil
}
