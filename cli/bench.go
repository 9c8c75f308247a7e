package cli

import (
	"fmt"
	"sort"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/bench"
	"github.com/gpuquant/gpuquant/compare"
	"github.com/gpuquant/gpuquant/model"
)

func benchCommand() *ucli.Command {
	flags := append(modelFlags(), schemeFlags()...)
	flags = append(flags,
		&ucli.IntFlag{Name: "prompt-tokens", Value: 512, Usage: "prefill window"},
		&ucli.IntFlag{Name: "new-tokens", Value: 128, Usage: "decoded tokens after the prompt (KV cache)"},
		&ucli.IntFlag{Name: "repeat", Value: 3, Usage: "timed runs after one warm-up; medians are reported"},
		&ucli.BoolFlag{Name: "json"},
		&ucli.BoolFlag{Name: "op-times", Usage: "GPU: wait for every kernel and report where the time goes, by kernel (no CUDA graphs, no overlap: slower)"},
	)
	return &ucli.Command{
		Name:  "bench",
		Usage: "prefill and decode throughput of one model and scheme",
		Flags: flags,
		Action: func(c *ucli.Context) error {
			l, err := loadModel(c, false)
			if err != nil {
				return err
			}
			defer l.Close()
			if d, ok := l.Ops.(model.Device); ok {
				d.ResetOpTimes() // time the benchmark, not the upload
			}
			s, err := model.NewSession(l.Ops, l.W, 0)
			if err != nil {
				return err
			}
			defer s.Close()
			r, err := bench.Run(s, bench.Options{PromptTokens: c.Int("prompt-tokens"), NewTokens: c.Int("new-tokens"), Repeat: c.Int("repeat")})
			if err != nil {
				return err
			}
			out := l.Spec.Fields()
			out["model"], out["device"], out["model_bytes"] = l.Dir, l.Ops.Name(), l.W.Bytes()
			out["prefill_tokens_per_s"], out["decode_tokens_per_s"] = r.PrefillTokensPerS, r.DecodeTokensPerS
			out["prompt_tokens"], out["new_tokens"], out["repeat"] = r.PromptTokens, r.NewTokens, r.Repeat
			out["prefill_seconds"], out["decode_seconds"] = r.PrefillSeconds, r.DecodeSeconds
			out["kernel"], out["kernels"] = c.String("kernel"), model.KernelsUsed(l.Ops)
			out["peak_rss_bytes"] = compare.PeakRSS()
			if err := addDevice(l.Ops, l.W, out); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c, out)
			}
			if d := compare.DeviceOf(l.Ops, nil); d != nil && d.OpTimes != nil {
				printOpTimes(c, d.OpTimes)
			}
			fmt.Fprintf(stdout(c), "%s %s on %s: prefill %.1f tokens/s (%d tokens), decode %.1f tokens/s (%d tokens), model %s, peak RSS %s\n",
				l.Dir, out["scheme"], l.Ops.Name(), r.PrefillTokensPerS, r.PromptTokens, r.DecodeTokensPerS, r.NewTokens,
				model.HumanBytes(l.W.Bytes()), model.HumanBytes(compare.PeakRSS()))
			return nil
		},
	}
}

// printOpTimes prints --op-times' kernel times, largest first.
func printOpTimes(c *ucli.Context, t map[string]model.OpTime) {
	names := make([]string, 0, len(t))
	var total float64
	for k, v := range t {
		names = append(names, k)
		total += v.Seconds
	}
	sort.Slice(names, func(i, j int) bool { return t[names[i]].Seconds > t[names[j]].Seconds })
	tw := tabwriter.NewWriter(stdout(c), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "kernel\tcalls\tseconds\tshare\tµs/call")
	for _, k := range names {
		v := t[k]
		fmt.Fprintf(tw, "%s\t%d\t%.4f\t%.1f%%\t%.1f\n", k, v.Calls, v.Seconds, 100*v.Seconds/total, 1e6*v.Seconds/float64(v.Calls))
	}
	tw.Flush()
}
