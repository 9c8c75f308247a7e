// Package compare runs gpuquant's comparison of a GPT-2 checkpoint with its quantized versions,
// the tutorial's workflow: the original, absmax and zero-point models side by side (bytes, weight
// error, histograms, generated text, perplexity, speed) on any quantize.Backend. The Report is
// data: package cli prints it as a table, JSON (report.json) or Markdown (report.md); Go code
// can use it without the CLI (see Example).
//
// # Report JSON
//
// A Report marshals to one object: "model" (the checkpoint's name), "device" (the backend),
// "prompt", "seed", "perplexity_text" (the file scored, or "the fp32 model's generated text"),
// "perplexity_tokens", "peak_rss_bytes", "models" (one object per model, fp32 first: "name",
// "scheme" {scheme, bits, granularity, scope, preset}, "model_bytes", "size_ratio" (to fp32),
// "quantize_seconds", "generation" {prompt_ids, token_ids, text, seconds, tokens_per_s},
// "perplexity", "nll_mean", "tokens_scored", "score_tokens_per_s", "rss_bytes", "kernels"
// (Linear calls per kernel while scoring) and, for quantized models, "weight_error"
// (quantize.Stats over every quantized tensor)), and on a GPU the DeviceStats fields:
// "device_name", "cuda_graphs", "device_in_use_bytes", "device_peak_bytes",
// "device_cached_bytes", "device_driver_used_bytes", "device_total_bytes" and, when kernels
// are timed, "op_times".
package compare

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/model/tokenizer"
	"github.com/gpuquant/gpuquant/quantize"
	"github.com/gpuquant/gpuquant/report"
)

// Options configure Run.
type Options struct {
	// Name names the checkpoint in the report (its folder, say).
	Name string
	// Quant is the quantization of both quantized models; its Scheme is ignored (Run makes an
	// absmax and a zero-point model).
	Quant quantize.Options
	// Tokenizer encodes the prompt and the text and decodes the generations.
	Tokenizer *tokenizer.Tokenizer
	// Prompt, MaxNewTokens and Sampling are the generation of every model (same seed, so any
	// difference in text comes from the weights).
	Prompt       string
	MaxNewTokens int
	Sampling     model.SampleOptions
	// Text is scored for perplexity, TextName names it in the report; empty Text scores the
	// prompt followed by the fp32 model's generated text, as the tutorial does.
	Text, TextName string
	// MaxTokens scores only the first MaxTokens tokens of the text (0: all).
	MaxTokens int
	// Perplexity is the scoring method and window (MaxLength 0: the model's context, at most
	// the text).
	Perplexity model.PerplexityOptions
	// HistogramPrefix selects the parameters of the histograms by name prefix ("": every
	// quantized parameter).
	HistogramPrefix string
	// Log, when not nil, receives one line per step.
	Log io.Writer
	// Progress, when not nil, is called before each perplexity pass with its name and returns
	// the callback of its progress and the func that ends it.
	Progress func(what string) (update func(done, total int), finish func())
}

// Report is the comparison's result; see the package documentation for its JSON.
type Report struct {
	Model            string `json:"model"`
	Device           string `json:"device"`
	Prompt           string `json:"prompt"`
	Seed             uint64 `json:"seed"`
	PerplexityText   string `json:"perplexity_text"`
	PerplexityTokens int    `json:"perplexity_tokens"`
	Models           []*Row `json:"models"`
	PeakRSSBytes     int64  `json:"peak_rss_bytes"`
	*DeviceStats
	// Histograms are the binned weights of the original, absmax and zero-point models.
	Histograms *Histograms `json:"-"`
}

// Row is one model's column of the comparison.
type Row struct {
	Name          string           `json:"name"`
	Scheme        map[string]any   `json:"scheme"`
	ModelBytes    int64            `json:"model_bytes"`
	SizeRatio     float64          `json:"size_ratio"`
	QuantizeSecs  float64          `json:"quantize_seconds"`
	Generation    *Generation      `json:"generation"`
	Perplexity    float64          `json:"perplexity"`
	NLLMean       float64          `json:"nll_mean"`
	TokensScored  int              `json:"tokens_scored"`
	ScoreTokensPS float64          `json:"score_tokens_per_s"`
	RSSBytes      int64            `json:"rss_bytes"`
	Kernels       map[string]int64 `json:"kernels"` // Linear calls per kernel while scoring perplexity
	// Error is the weight error of the quantized tensors against the originals (nil for fp32).
	Error *quantize.Stats `json:"weight_error,omitempty"`
}

// FP32TextName is Report.PerplexityText when Options.Text is empty.
const FP32TextName = "the fp32 model's generated text"

// Run compares src (float32 weights, as read from disk) with its absmax and zero-point versions
// on ops. The original is uploaded once; the quantized models are made from it where the backend
// chooses (on a GPU, by our kernels on the device), and their stored codes come back to the host
// only for the error statistics and histograms.
func Run(ops quantize.Backend, src *model.Weights, opt Options) (*Report, error) {
	if opt.Tokenizer == nil {
		return nil, fmt.Errorf("compare: no tokenizer")
	}
	models, hosts, err := prepare(ops, src, opt)
	if err != nil {
		return nil, err
	}
	rep := &Report{Model: opt.Name, Device: ops.Name(), Prompt: opt.Prompt, Seed: opt.Sampling.Seed, PerplexityText: opt.TextName}
	for _, m := range models {
		rep.Models = append(rep.Models, m.row)
	}
	if rep.Histograms, err = binHistograms(opt.HistogramPrefix, src, hosts[1], hosts[2]); err != nil {
		return nil, err
	}
	for _, m := range models {
		logf(opt.Log, "generating with %s...\n", m.row.Name)
		if m.row.Generation, err = Generate(ops, m.w, opt.Tokenizer, opt.Prompt, opt.MaxNewTokens, opt.Sampling, nil); err != nil {
			return nil, err
		}
	}
	text := opt.Text
	if text == "" {
		text, rep.PerplexityText = opt.Prompt+rep.Models[0].Generation.Text, FP32TextName
	}
	ids := opt.Tokenizer.Encode(text)
	if opt.MaxTokens > 0 && opt.MaxTokens < len(ids) {
		ids = ids[:opt.MaxTokens]
	}
	rep.PerplexityTokens = len(ids)
	for _, m := range models {
		if err := score(ops, m, ids, opt); err != nil {
			return nil, err
		}
	}
	rep.PeakRSSBytes = PeakRSS()
	rep.DeviceStats = DeviceOf(ops, nil)
	return rep, nil
}

// compared is one model of the comparison.
type compared struct {
	row *Row
	w   *model.Weights // on the backend
}

// prepare uploads src and makes the quantized models from it; hosts are each model's weights on
// the host (src for fp32).
func prepare(ops quantize.Backend, src *model.Weights, opt Options) ([]compared, []*model.Weights, error) {
	fp32Bytes := src.Bytes()
	logf(opt.Log, "model %s: %d layers, n_embd %d, %s in fp32\n", opt.Name, src.Config.NLayer, src.Config.NEmbd, model.HumanBytes(fp32Bytes))
	var models []compared
	var hosts []*model.Weights
	for _, scheme := range []quantize.Scheme{"", quantize.Absmax, quantize.ZeroPoint} {
		spec, name := quantize.Spec{}, "fp32"
		if scheme != "" {
			q := opt.Quant
			q.Scheme = scheme
			if err := q.Validate(); err != nil {
				return nil, nil, err
			}
			spec, name = quantize.Spec{Quant: &q}, string(scheme)
		}
		start := time.Now()
		from := src
		if len(models) > 0 {
			from = models[0].w // quantized from the uploaded original: one upload in all
		}
		end := model.Trace(ops, "quantize "+name)
		w, err := ops.Upload(from, spec)
		end()
		if err != nil {
			return nil, nil, err
		}
		row := &Row{Name: name, Scheme: spec.Fields(), ModelBytes: w.Bytes(), QuantizeSecs: time.Since(start).Seconds(), RSSBytes: currentRSS()}
		row.SizeRatio = float64(row.ModelBytes) / float64(fp32Bytes)
		host := src
		if spec.Quant != nil {
			if host, err = ops.HostWeights(w, src); err != nil {
				return nil, nil, err
			}
			stats, err := quantize.CompareWeights(src, host)
			if err != nil {
				return nil, nil, err
			}
			total := quantize.Total(stats)
			row.Error = &total
		}
		logf(opt.Log, "%-9s %s (%.3fx)\n", name, model.HumanBytes(row.ModelBytes), row.SizeRatio)
		models, hosts = append(models, compared{row, w}), append(hosts, host)
	}
	return models, hosts, nil
}

// score measures one model's perplexity on ids and the kernels it ran for it.
func score(ops quantize.Backend, m compared, ids []int32, opt Options) error {
	s, err := model.NewSession(ops, m.w, 0)
	if err != nil {
		return err
	}
	defer s.Close() // one session's buffers at a time (about 0.9 GB at GPT-2 XL's full context)
	popt := opt.Perplexity
	if popt.MaxLength == 0 {
		popt.MaxLength = min(s.MaxT(), len(ids))
	}
	if opt.Progress != nil {
		update, finish := opt.Progress("perplexity " + m.row.Name)
		defer finish()
		popt.Progress = update
	}
	before := model.KernelsUsed(ops)
	start := time.Now()
	r, err := model.Perplexity(s, ids, popt)
	if err != nil {
		return err
	}
	m.row.Perplexity, m.row.NLLMean, m.row.TokensScored = r.Perplexity, r.NLLMean, r.Tokens
	m.row.ScoreTokensPS = float64(r.Tokens) / time.Since(start).Seconds()
	m.row.Kernels = KernelsSince(ops, before)
	return nil
}

// KernelsSince is o's kernel counts (model.KernelsUsed) minus before: what ran in between, on a
// backend shared by several models.
func KernelsSince(o model.Ops, before map[string]int64) map[string]int64 {
	now := model.KernelsUsed(o)
	for k, n := range before {
		if now[k] -= n; now[k] == 0 {
			delete(now, k)
		}
	}
	return now
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}

// Histograms are the binned original, absmax and zero-point weights of one selection.
type Histograms struct {
	Title                     string
	Original, Absmax, ZeroPnt report.Hist
}

// binHistograms bins the selected original weights (parameters whose name starts with prefix;
// all quantized ones when empty) and their absmax and zero-point versions, 100 bins over [-1, 1].
func binHistograms(prefix string, orig, abs, zp *model.Weights) (*Histograms, error) {
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
	out := &Histograms{Title: "all quantized weights"}
	if prefix != "" {
		out.Title = prefix
	}
	hist := func(x *quantize.Histogram) report.Hist { return report.Hist{Lo: x.Lo, Hi: x.Hi, Counts: x.Counts} }
	out.Original, out.Absmax, out.ZeroPnt = hist(h[0]), hist(h[1]), hist(h[2])
	return out, nil
}

// PNG draws the histograms to path.
func (h *Histograms) PNG(path string) error {
	return report.HistogramPNG(path, h.Title, h.Original, h.Absmax, h.ZeroPnt)
}
