package cli

import (
	"fmt"
	"path/filepath"
	"sort"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/gguf"
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
			path, rows, err := fileTensors(c.String("model"))
			if err != nil {
				return err
			}
			total := 0
			for _, r := range rows {
				total += r.Bytes
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

// tensorRow is one tensor of a checkpoint file as stored.
type tensorRow struct {
	Name  string   `json:"name"`
	DType string   `json:"dtype"`
	Shape []uint64 `json:"shape"`
	Bytes int      `json:"bytes"`
}

// fileTensors lists the tensors of --model's file: model.safetensors in a folder, or a GGUF
// (its shapes innermost first, as GGUF stores them).
func fileTensors(modelPath string) (string, []tensorRow, error) {
	var rows []tensorRow
	if gguf.IsGGUF(modelPath) {
		data, closer, err := model.MapFile(modelPath, "GGUF")
		if err != nil {
			return "", nil, err
		}
		defer closer.Close()
		f, err := gguf.Parse(data)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", modelPath, err)
		}
		for _, t := range f.Tensors {
			shape := make([]uint64, len(t.Dims))
			for i, d := range t.Dims {
				shape[i] = uint64(d)
			}
			rows = append(rows, tensorRow{t.Name, t.Type.String(), shape, len(t.Data)})
		}
		return modelPath, rows, nil
	}
	path := filepath.Join(modelPath, "model.safetensors")
	st, m, err := model.OpenSafetensors(path)
	if err != nil {
		return "", nil, err
	}
	defer m.Close()
	for _, t := range st.Tensors() {
		v := t.TensorView
		rows = append(rows, tensorRow{t.Name, v.DType().String(), v.Shape(), len(v.Data())})
	}
	return path, rows, nil
}

// inspectQuant quantizes the model in memory and reports the error of every quantized tensor.
func inspectQuant(c *ucli.Context) error {
	src, fileQuant, _, err := openSource(c)
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
