package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/gpu"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
	"github.com/gpuquant/gpuquant/report"
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

// runRow is one model's column of the comparison.
type runRow struct {
	Name          string           `json:"name"`
	Scheme        map[string]any   `json:"scheme"`
	ModelBytes    int64            `json:"model_bytes"`
	SizeRatio     float64          `json:"size_ratio"`
	QuantizeSecs  float64          `json:"quantize_seconds"`
	Generation    *generation      `json:"generation"`
	Perplexity    float64          `json:"perplexity"`
	NLLMean       float64          `json:"nll_mean"`
	TokensScored  int              `json:"tokens_scored"`
	ScoreTokensPS float64          `json:"score_tokens_per_s"`
	RSSBytes      int64            `json:"rss_bytes"`
	Kernels       map[string]int64 `json:"kernels"` // Linear calls per kernel while scoring perplexity
	// Error is the weight error of the quantized tensors against the originals (nil for fp32).
	Error *quantize.Stats `json:"weight_error,omitempty"`
}

func runAction(c *ucli.Context) error {
	ops, err := openBackend(c)
	if err != nil {
		return err
	}
	defer closeBackend(ops)
	end := model.Trace(ops, "load")
	src, fileQuant, err := openSource(c)
	end()
	if err != nil {
		return err
	}
	defer src.Close()
	if fileQuant != nil {
		return fmt.Errorf("%s is already quantized (%s): run compares an original checkpoint with its quantized versions", c.String("model"), fileQuant)
	}
	if _, err := model.CheckFolder(c.String("out"), c.Bool("force"), []string{c.String("model")}); err != nil {
		return err // before the long work, not after it
	}
	tok, err := loadTokenizer(c.String("model"))
	if err != nil {
		return err
	}
	log := stderr(c)
	fp32Bytes := src.Bytes()
	fmt.Fprintf(log, "model %s: %d layers, n_embd %d, %s in fp32\n", c.String("model"), src.Config.NLayer, src.Config.NEmbd, model.HumanBytes(fp32Bytes))

	schemes := []string{"fp32", string(quantize.Absmax), string(quantize.ZeroPoint)}
	var rows []*runRow
	var models []*loaded
	var hosts []*model.Weights // each model's weights on the host, for error statistics and histograms
	for _, name := range schemes {
		opt, err := quantOptions(c, name)
		if err != nil {
			return err
		}
		start := time.Now()
		l, host, err := prepareRun(c, ops, src, models, opt)
		if err != nil {
			return err
		}
		row := &runRow{Name: name, Scheme: schemeFields(opt), ModelBytes: l.W.Bytes(), QuantizeSecs: time.Since(start).Seconds(), RSSBytes: currentRSS()}
		row.SizeRatio = float64(row.ModelBytes) / float64(fp32Bytes)
		if opt != nil {
			stats, err := quantize.CompareWeights(src, host)
			if err != nil {
				return err
			}
			total := quantize.Total(stats)
			row.Error = &total
		}
		fmt.Fprintf(log, "%-9s %s (%.3fx)\n", name, model.HumanBytes(row.ModelBytes), row.SizeRatio)
		rows, models, hosts = append(rows, row), append(models, l), append(hosts, host)
	}

	out := c.String("out")
	hist, err := binHistograms(c.String("tensor"), src, hosts[1], hosts[2])
	if err != nil {
		return err
	}

	for i, l := range models {
		fmt.Fprintf(log, "generating with %s...\n", rows[i].Name)
		g, err := generateText(l, tok, c.String("prompt"), c.Int("max-new-tokens"), sampleOptions(c), nil)
		if err != nil {
			return err
		}
		rows[i].Generation = g
	}

	text := c.String("prompt") + rows[0].Generation.Text
	textName := "the fp32 model's generated text"
	if f := c.String("text"); f != "" {
		if text, err = readText(f); err != nil {
			return err
		}
		textName = f
	}
	ids, err := firstTokens(c, tok.Encode(text))
	if err != nil {
		return err
	}
	for i, l := range models {
		s, err := model.NewSession(l.Ops, l.W, 0)
		if err != nil {
			return err
		}
		opt, err := perplexityOptions(c)
		if err != nil {
			return err
		}
		if opt.MaxLength == 0 {
			opt.MaxLength = min(s.MaxT(), len(ids))
		}
		bar := newProgress(c, 1, "perplexity "+rows[i].Name)
		opt.Progress = func(done, total int) { bar.ChangeMax(total); bar.Set(done) }
		before := kernelsUsed(l.Ops)
		start := time.Now()
		r, err := model.Perplexity(s, ids, opt)
		s.Close() // one session's buffers at a time (about 0.9 GB at GPT-2 XL's full context)
		bar.Finish()
		if err != nil {
			return err
		}
		rows[i].Perplexity, rows[i].NLLMean, rows[i].TokensScored = r.Perplexity, r.NLLMean, r.Tokens
		rows[i].ScoreTokensPS = float64(r.Tokens) / time.Since(start).Seconds()
		rows[i].Kernels = kernelsUsed(l.Ops)
		for k, n := range before { // the backend is shared by the three models: count this one's scoring
			if rows[i].Kernels[k] -= n; rows[i].Kernels[k] == 0 {
				delete(rows[i].Kernels, k)
			}
		}
	}

	rep := map[string]any{
		"model": c.String("model"), "device": models[0].Ops.Name(), "prompt": c.String("prompt"),
		"seed": c.Uint64("seed"), "perplexity_text": textName, "perplexity_tokens": len(ids),
		"models": rows, "peak_rss_bytes": peakRSS(),
	}
	deviceFields(ops, nil, rep)
	if peak, ok := rep["device_peak_bytes"].(int64); ok {
		fmt.Fprintf(log, "device %v: our allocator peak %s, driver used %s of %s\n", rep["device_name"], model.HumanBytes(peak),
			model.HumanBytes(rep["device_driver_used_bytes"].(int64)), model.HumanBytes(rep["device_total_bytes"].(int64)))
	}
	err = model.WriteFolder(out, c.Bool("force"), []string{c.String("model")}, func(tmp string) error {
		data, err := jsonIndent(rep)
		if err == nil {
			err = model.WriteFileAtomic(filepath.Join(tmp, "report.json"), data)
		}
		if err == nil {
			err = model.WriteFileAtomic(filepath.Join(tmp, "report.md"), []byte(runMarkdown(c, rows, textName)))
		}
		if err == nil {
			err = hist.png(filepath.Join(tmp, "histograms.png"))
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
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%.3fx\t%.3f\t%.1f\t%.1f\t%q\n", r.Name, model.HumanBytes(r.ModelBytes), r.SizeRatio, r.Perplexity,
			r.Generation.TokensPS, r.ScoreTokensPS, oneLine(c.String("prompt")+r.Generation.Text, 70))
	}
	return tw.Flush()
}

// prepareRun makes the next model of the comparison: the original first, then the quantized
// ones. On a GPU the original is uploaded once and the others are quantized from it on the device
// (their codes come back to the host only for the statistics); host is the model's weights on the
// host.
func prepareRun(c *ucli.Context, ops model.Ops, src *model.Weights, done []*loaded, opt *quantize.Options) (l *loaded, host *model.Weights, err error) {
	g, onGPU := ops.(*gpu.Backend)
	if !onGPU || len(done) == 0 {
		if l, err = prepare(c, ops, src, nil, opt, false); err != nil {
			return nil, nil, err
		}
		return l, l.W, nil
	}
	end := model.Trace(ops, "quantize")
	q, err := g.QuantizeOnDevice(done[0].W, *opt)
	end()
	if err != nil {
		return nil, nil, err
	}
	if host, err = g.HostWeights(q, src); err != nil {
		return nil, nil, err
	}
	return &loaded{Dir: c.String("model"), Source: src, W: q, Quant: opt, Ops: ops}, host, nil
}

func runMarkdown(c *ucli.Context, rows []*runRow, textName string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# gpuquant run: %s\n\n", c.String("model"))
	fmt.Fprintf(&b, "Quantization: %d bits, granularity %s, scope %s, preset %s. Device %s. Perplexity on %s.\n\n",
		c.Int("bits"), c.String("granularity"), c.String("scope"), c.String("preset"), c.String("device"), textName)
	b.WriteString("| model | bytes | size | perplexity | decode tokens/s | scoring tokens/s | weight SQNR dB | weight MSE |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		sqnr, mse := "—", "—"
		if r.Error != nil {
			sqnr, mse = fmt.Sprintf("%.2f", r.Error.SQNRdB), fmt.Sprintf("%.3g", r.Error.MSE)
		}
		fmt.Fprintf(&b, "| %s | %d | %.3fx | %.4f | %.1f | %.1f | %s | %s |\n", r.Name, r.ModelBytes, r.SizeRatio, r.Perplexity, r.Generation.TokensPS, r.ScoreTokensPS, sqnr, mse)
	}
	fmt.Fprintf(&b, "\n## Generated text (prompt %q, seed %d)\n\n", c.String("prompt"), c.Uint64("seed"))
	for _, r := range rows {
		fmt.Fprintf(&b, "**%s**: %s\n\n", r.Name, strings.TrimSpace(c.String("prompt")+r.Generation.Text))
	}
	b.WriteString("![weight histograms](histograms.png)\n")
	return b.String()
}

// histograms are the binned original, absmax and zero-point weights of one selection.
type histograms struct {
	title string
	h     [3]report.Hist
}

// binHistograms bins the selected original weights (parameters whose name starts with prefix;
// all quantized ones when empty) and their absmax and zero-point versions, 100 bins over [-1, 1].
func binHistograms(prefix string, orig, abs, zp *model.Weights) (*histograms, error) {
	const lo, hi, bins = -1, 1, 100
	h := [3]*quantize.Histogram{quantize.NewHistogram(lo, hi, bins), quantize.NewHistogram(lo, hi, bins), quantize.NewHistogram(lo, hi, bins)}
	op, ap, zpp := orig.Params(), abs.Params(), zp.Params()
	n := 0
	for i, p := range op {
		if prefix != "" && !strings.HasPrefix(p.Name, prefix) {
			continue
		}
		qa, okA := (*ap[i].T).(*quantize.Tensor)
		qz, okZ := (*zpp[i].T).(*quantize.Tensor)
		if !okA || !okZ {
			continue // not in the quantization scope
		}
		h[0].Add((*p.T).(*model.F32).Data)
		h[1].AddDequantized(qa)
		h[2].AddDequantized(qz)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("no quantized parameter matches --tensor %q", prefix)
	}
	out := &histograms{title: "all quantized weights"}
	if prefix != "" {
		out.title = prefix
	}
	for i, x := range h {
		out.h[i] = report.Hist{Lo: x.Lo, Hi: x.Hi, Counts: x.Counts}
	}
	return out, nil
}

func (h *histograms) png(path string) error {
	return report.HistogramPNG(path, h.title, h.h[0], h.h[1], h.h[2])
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// currentRSS is the resident set size now, from /proc (0 where unavailable).
func currentRSS() int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, res int64
	fmt.Sscan(string(data), &size, &res)
	return res * int64(os.Getpagesize())
}
