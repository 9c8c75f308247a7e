package cli

import (
	"fmt"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/compare"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

func perplexityFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.IntFlag{Name: "max-length", Usage: "window length in tokens (default: the model's n_positions)"},
		&ucli.IntFlag{Name: "stride", Usage: "tokens a window advances (default: max-length/2; hf method only)"},
		&ucli.StringFlag{Name: "method", Value: model.MethodHF, Usage: "hf (sliding window, Hugging Face) or llamacpp (non-overlapping windows, second half scored)"},
	}
}

func perplexityOptions(c *ucli.Context) (model.PerplexityOptions, error) {
	if c.String("method") == model.MethodLlamaCpp && c.IsSet("stride") {
		return model.PerplexityOptions{}, fmt.Errorf("--stride does not apply to --method llamacpp (its windows do not overlap)")
	}
	return model.PerplexityOptions{MaxLength: c.Int("max-length"), Stride: c.Int("stride"), Method: c.String("method")}, nil
}

func evalCommand() *ucli.Command {
	flags := append(modelFlags(), perplexityFlags()...)
	flags = append(flags, schemeFlags()...)
	flags = append(flags,
		&ucli.StringFlag{Name: "text", Usage: "UTF-8 text file to score (CRLF is read as LF)", Required: true},
		&ucli.IntFlag{Name: "max-tokens", Usage: "score only the first N tokens of the text (0: all)"},
		&ucli.StringFlag{Name: "compare-to", Usage: "fp32: also report kld_mean and top1_agreement against the unquantized model on the same windows"},
		&ucli.BoolFlag{Name: "json", Usage: "print one JSON object"},
	)
	return &ucli.Command{
		Name:   "eval",
		Usage:  "perplexity of a model on a text file",
		Flags:  flags,
		Action: evalAction,
	}
}

func evalAction(c *ucli.Context) error {
	if cmp := c.String("compare-to"); cmp != "" && cmp != "fp32" {
		return fmt.Errorf("--compare-to %q: only fp32 is supported", cmp)
	}
	text, err := compare.ReadText(c.String("text"))
	if err != nil {
		return err
	}
	l, err := loadModel(c, c.String("compare-to") != "")
	if err != nil {
		return err
	}
	defer l.Close()
	tok, err := l.tokenizer()
	if err != nil {
		return err
	}
	ids, err := firstTokens(c, tok.Encode(text))
	if err != nil {
		return err
	}
	s, err := model.NewSession(l.Ops, l.W, 0)
	if err != nil {
		return err
	}
	defer s.Close()
	var ref *model.Session
	if c.String("compare-to") != "" {
		var done func()
		if ref, done, err = fp32Reference(c, l); err != nil {
			return err
		}
		defer done()
	}
	opt, err := perplexityOptions(c)
	if err != nil {
		return err
	}
	bar := newProgress(c, 1, "perplexity")
	opt.Progress = func(done, total int) { bar.ChangeMax(total); bar.Set(done) }
	start := time.Now()
	r, cmp, err := model.Compare(s, ref, ids, opt)
	bar.Finish()
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	out := l.Spec.Fields()
	out["model"], out["device"], out["text"] = l.Dir, l.Ops.Name(), c.String("text")
	out["perplexity"], out["nll_mean"], out["nll_sum"] = r.Perplexity, r.NLLMean, r.NLLSum
	out["tokens_scored"], out["tokens"], out["windows"] = r.Tokens, len(ids), r.Windows
	out["method"], out["model_bytes"], out["seconds"] = opt.Method, l.W.Bytes(), secs
	out["kernels"] = model.KernelsUsed(l.Ops)
	if err := addDevice(l.Ops, l.W, out); err != nil {
		return err
	}
	if ref != nil {
		out["kld_mean"], out["top1_agreement"] = cmp.KLDMean, cmp.Top1Agreement
	}
	if c.Bool("json") {
		return printJSON(c, out)
	}
	fmt.Fprintf(stdout(c), "perplexity %.4f  (nll %.5f over %d tokens in %d windows, %s, %s, %.1f s)\n",
		r.Perplexity, r.NLLMean, r.Tokens, r.Windows, opt.Method, l.Ops.Name(), secs)
	if ref != nil {
		fmt.Fprintf(stdout(c), "vs fp32: mean KL divergence %.5f nats, top-1 agreement %.2f%%\n", cmp.KLDMean, 100*cmp.Top1Agreement)
	}
	return nil
}

// fp32Reference is the unquantized model of l on a backend of its own (so that "kernels" counts
// the evaluated model's calls only), for --compare-to fp32.
func fp32Reference(c *ucli.Context, l *loaded) (*model.Session, func(), error) {
	if l.Saved {
		return nil, nil, fmt.Errorf("--compare-to fp32 needs the original checkpoint: %s is quantized (%s); pass the original as --model with the scheme flags", l.Dir, l.Spec.Quant)
	}
	ops, err := openBackend(c)
	if err != nil {
		return nil, nil, err
	}
	w, err := ops.Upload(l.Source, quantize.Spec{})
	var s *model.Session
	if err == nil {
		s, err = model.NewSession(ops, w, 0)
	}
	if err != nil {
		ops.Close()
		return nil, nil, err
	}
	return s, func() { s.Close(); ops.Close() }, nil
}
