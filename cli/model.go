package cli

import (
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/gpu"
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

// schemeFP16 stores the weight matrices as IEEE half on the GPU: the float baseline our int8
// kernels are measured against.
const schemeFP16 = "fp16"

// quantOptions reads the scheme flags with the given scheme; nil means a float scheme.
func quantOptions(c *ucli.Context, scheme string) (*quantize.Options, error) {
	if scheme == "fp32" || scheme == schemeFP16 {
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
	Quant  *quantize.Options // nil for a float scheme
	Half   bool              // fp16 weights
	Ops    model.Ops
	owner  bool // Close closes Ops
}

func (l *loaded) Close() {
	if l.owner {
		closeBackend(l.Ops)
	}
	l.Source.Close()
}

// scheme describes the model's weights for reports.
func (l *loaded) scheme() map[string]any {
	if l.Half {
		return map[string]any{"scheme": schemeFP16, "bits": 16, "granularity": "", "scope": "weights", "preset": ""}
	}
	return schemeFields(l.Quant)
}

// openSource reads a checkpoint folder, plain or quantized.
func openSource(c *ucli.Context) (*model.Weights, *quantize.Options, error) {
	return quantize.Open(c.String("model"))
}

// prepare makes src runnable on ops: as it is (fileQuant describes a quantized checkpoint), in
// fp16 (half), or quantized with opt. On a GPU the weights go to the device once and are
// quantized there by our kernels; on the CPU they are quantized in memory.
func prepare(c *ucli.Context, ops model.Ops, src *model.Weights, fileQuant, opt *quantize.Options, half bool) (*loaded, error) {
	l := &loaded{Dir: c.String("model"), Source: src, W: src, Quant: fileQuant, Saved: fileQuant != nil, Half: half, Ops: ops}
	if (opt != nil || half) && fileQuant != nil {
		return nil, fmt.Errorf("%s is already quantized (%s); drop --scheme to run it as saved", l.Dir, fileQuant)
	}
	defer model.Trace(ops, "upload")()
	var err error
	g, onGPU := ops.(*gpu.Backend)
	switch {
	case half && !onGPU:
		return nil, fmt.Errorf("--scheme fp16 runs only on a GPU (--device cuda:N): the CPU backend computes in float32")
	case half:
		l.W, err = g.UploadHalf(src)
	case opt != nil && onGPU:
		l.W, err = g.UploadQuantized(src, *opt)
		l.Quant = opt
	case opt != nil:
		var q *model.Weights
		if q, err = quantize.QuantizeWeights(src, *opt); err == nil {
			l.W, err = ops.Upload(q)
		}
		l.Quant = opt
	default:
		l.W, err = ops.Upload(src)
	}
	if err != nil {
		return nil, err
	}
	return l, nil
}

// schemeFlag is --scheme, refusing quantization flags that fp32 would silently ignore.
func schemeFlag(c *ucli.Context) (string, error) {
	s := c.String("scheme")
	if s == "fp32" || s == schemeFP16 {
		for _, f := range []string{"bits", "granularity", "scope", "preset"} {
			if c.IsSet(f) {
				return "", fmt.Errorf("--%s needs --scheme absmax or --scheme zeropoint (the scheme %s does not quantize)", f, s)
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
	ops, err := openBackend(c)
	if err != nil {
		return nil, err
	}
	end := model.Trace(ops, "load")
	src, fileQuant, err := openSource(c)
	end()
	if err != nil {
		closeBackend(ops)
		return nil, err
	}
	opt, err := quantOptions(c, scheme)
	if err == nil {
		var l *loaded
		if l, err = prepare(c, ops, src, fileQuant, opt, scheme == schemeFP16); err == nil {
			l.owner = true
			return l, nil
		}
	}
	src.Close()
	closeBackend(ops)
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
