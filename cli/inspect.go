package cli

import (
	"fmt"
	"path/filepath"
	"sort"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

func inspectCommand() *ucli.Command {
	flags := append([]ucli.Flag{
		&ucli.StringFlag{Name: "model", Required: true},
		&ucli.BoolFlag{Name: "json"},
		deviceFlag,
	}, schemeFlags()...)
	return &ucli.Command{
		Name:  "inspect",
		Usage: "list a checkpoint's tensors (name, dtype, shape, bytes); with --scheme, the quantization error of each",
		Flags: flags,
		Action: func(c *ucli.Context) error {
			scheme, err := schemeFlag(c)
			if err != nil {
				return err
			}
			if scheme != "fp32" {
				return inspectQuant(c)
			}
			path := filepath.Join(c.String("model"), "model.safetensors")
			st, m, err := model.OpenSafetensors(path)
			if err != nil {
				return err
			}
			defer m.Close()
			type row struct {
				Name  string   `json:"name"`
				DType string   `json:"dtype"`
				Shape []uint64 `json:"shape"`
				Bytes int      `json:"bytes"`
			}
			var rows []row
			total := 0
			for _, t := range st.Tensors() {
				v := t.TensorView
				rows = append(rows, row{t.Name, v.DType().String(), v.Shape(), len(v.Data())})
				total += len(v.Data())
			}
			sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
			if c.Bool("json") {
				return printJSON(c, map[string]any{"file": path, "tensors": rows, "total_bytes": total})
			}
			tw := tabwriter.NewWriter(stdout(c), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "tensor\tdtype\tshape\tbytes")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%v\t%d\n", r.Name, r.DType, r.Shape, r.Bytes)
			}
			fmt.Fprintf(tw, "total\t\t%d tensors\t%d\n", len(rows), total)
			return tw.Flush()
		},
	}
}

// inspectQuant quantizes the model in memory and reports the error of every quantized tensor.
func inspectQuant(c *ucli.Context) error {
	src, fileQuant, err := openSource(c)
	if err != nil {
		return err
	}
	defer src.Close()
	if fileQuant != nil {
		return fmt.Errorf("%s is already quantized (%s): inspect the original", c.String("model"), fileQuant)
	}
	opt, err := quantOptions(c, c.String("scheme"))
	if err != nil {
		return err
	}
	q, err := quantizeOn(c, src, *opt)
	if err != nil {
		return err
	}
	stats, err := quantize.CompareWeights(src, q)
	if err != nil {
		return err
	}
	total := quantize.Total(stats)
	if c.Bool("json") {
		return printJSON(c, map[string]any{"scheme": opt.String(), "tensors": stats, "total": total})
	}
	tw := tabwriter.NewWriter(stdout(c), 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tensor\tvalues\tMSE\tSQNR dB\tmax |err|\trange used\t>6σ\t")
	for _, s := range append(stats, total) {
		fmt.Fprintf(tw, "%s\t%d\t%.3g\t%.2f\t%.3g\t%.1f%%\t%d\t\n", s.Name, s.N, s.MSE, s.SQNRdB, s.MaxAbsErr, 100*s.RangeUsed, s.Outliers)
	}
	return tw.Flush()
}
