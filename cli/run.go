package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/compare"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/model/tokenizer"
	"github.com/gpuquant/gpuquant/quantize"
)

func runCommand() *ucli.Command {
	flags := append(modelFlags(), quantFlags()...)
	flags = append(flags, samplingFlags()...)
	flags = append(flags, perplexityFlags()...)
	flags = append(flags,
		&ucli.StringFlag{Name: "text", Usage: "text file for perplexity (default: the fp32 model's own generated text, as in the tutorial)"},
		&ucli.IntFlag{Name: "max-tokens", Usage: "score only the first N tokens of --text (0: all)"},
		&ucli.StringFlag{Name: "out", Value: "gpuquant-report", Usage: "folder for report.json, report.md and histograms.png"},
		&ucli.StringFlag{Name: "tensor", Usage: "histogram only parameters whose name starts with this (e.g. h.0.attn.c_attn.weight or h.3.)"},
		&ucli.BoolFlag{Name: "json", Usage: "print the report as JSON instead of a table"},
		&ucli.BoolFlag{Name: "force", Usage: "replace an existing --out report folder"},
	)
	return &ucli.Command{
		Name:   "run",
		Usage:  "the whole comparison: original vs absmax vs zero-point (size, histograms, text, perplexity, speed)",
		Flags:  flags,
		Action: runAction,
	}
}

func runAction(c *ucli.Context) error {
	ops, err := openBackend(c)
	if err != nil {
		return err
	}
	defer ops.Close()
	end := model.Trace(ops, "load")
	src, fileQuant, ggufTok, err := openSource(c)
	end()
	if err != nil {
		return err
	}
	defer src.Close()
	if fileQuant != nil {
		return fmt.Errorf("%s is already quantized (%s): run compares an original checkpoint with its quantized versions", c.String("model"), fileQuant)
	}
	out := c.String("out")
	if _, err := model.CheckFolder(out, c.Bool("force"), []string{c.String("model")}); err != nil {
		return err // before the long work, not after it
	}
	opt, err := runOptions(c, ggufTok)
	if err != nil {
		return err
	}
	rep, err := compare.Run(ops, src, opt)
	if err != nil {
		return err
	}
	log := stderr(c)
	if d := rep.DeviceStats; d != nil {
		fmt.Fprintf(log, "device %s: our allocator peak %s, driver used %s of %s\n", d.Name, model.HumanBytes(d.Peak),
			model.HumanBytes(d.DriverUsed), model.HumanBytes(d.Total))
	}
	err = model.WriteFolder(out, c.Bool("force"), []string{c.String("model")}, func(tmp string) error {
		data, err := jsonIndent(rep)
		if err == nil {
			err = model.WriteFileAtomic(filepath.Join(tmp, "report.json"), data)
		}
		if err == nil {
			err = model.WriteFileAtomic(filepath.Join(tmp, "report.md"), []byte(runMarkdown(c, rep)))
		}
		if err == nil {
			err = rep.Histograms.PNG(filepath.Join(tmp, "histograms.png"))
		}
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "wrote %s/report.json, report.md, histograms.png\n", out)
	if c.Bool("json") {
		return printJSON(c, rep)
	}
	tw := tabwriter.NewWriter(stdout(c), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "model\tbytes\tsize\tperplexity\tdecode tok/s\tscore tok/s\tgenerated text")
	for _, r := range rep.Models {
		fmt.Fprintf(tw, "%s\t%s\t%.3fx\t%.3f\t%.1f\t%.1f\t%q\n", r.Name, model.HumanBytes(r.ModelBytes), r.SizeRatio, r.Perplexity,
			r.Generation.TokensPS, r.ScoreTokensPS, oneLine(rep.Prompt+r.Generation.Text, 70))
	}
	return tw.Flush()
}

// runOptions maps run's flags to the comparison's options.
func runOptions(c *ucli.Context, ggufTok *tokenizer.Tokenizer) (compare.Options, error) {
	q, err := quantOptions(c, string(quantize.Absmax)) // the shared flags; Run sets each scheme
	if err != nil {
		return compare.Options{}, err
	}
	popt, err := perplexityOptions(c)
	if err != nil {
		return compare.Options{}, err
	}
	n, err := maxTokens(c)
	if err != nil {
		return compare.Options{}, err
	}
	tok, err := tokenizerOf(c.String("model"), ggufTok)
	if err != nil {
		return compare.Options{}, err
	}
	opt := compare.Options{Name: c.String("model"), Quant: *q, Tokenizer: tok, Prompt: c.String("prompt"),
		MaxNewTokens: c.Int("max-new-tokens"), Sampling: sampleOptions(c), MaxTokens: n,
		Perplexity: popt, HistogramPrefix: c.String("tensor"), Log: stderr(c)}
	if f := c.String("text"); f != "" {
		if opt.Text, err = compare.ReadText(f); err != nil {
			return compare.Options{}, err
		}
		opt.TextName = f
	}
	opt.Progress = func(what string) (func(done, total int), func()) {
		bar := newProgress(c, 1, what)
		return func(done, total int) { bar.ChangeMax(total); bar.Set(done) }, func() { bar.Finish() }
	}
	return opt, nil
}

func runMarkdown(c *ucli.Context, rep *compare.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# gpuquant run: %s\n\n", rep.Model)
	fmt.Fprintf(&b, "Quantization: %d bits, granularity %s, scope %s, preset %s. Device %s. Perplexity on %s.\n\n",
		c.Int("bits"), c.String("granularity"), c.String("scope"), c.String("preset"), c.String("device"), rep.PerplexityText)
	b.WriteString("| model | bytes | size | perplexity | decode tokens/s | scoring tokens/s | weight SQNR dB | weight MSE |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.Models {
		sqnr, mse := "—", "—"
		if r.Error != nil {
			sqnr, mse = fmt.Sprintf("%.2f", r.Error.SQNRdB), fmt.Sprintf("%.3g", r.Error.MSE)
		}
		fmt.Fprintf(&b, "| %s | %d | %.3fx | %.4f | %.1f | %.1f | %s | %s |\n", r.Name, r.ModelBytes, r.SizeRatio, r.Perplexity, r.Generation.TokensPS, r.ScoreTokensPS, sqnr, mse)
	}
	fmt.Fprintf(&b, "\n## Generated text (prompt %q, seed %d)\n\n", rep.Prompt, rep.Seed)
	for _, r := range rep.Models {
		fmt.Fprintf(&b, "**%s**: %s\n\n", r.Name, strings.TrimSpace(rep.Prompt+r.Generation.Text))
	}
	b.WriteString("![weight histograms](histograms.png)\n")
	return b.String()
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
