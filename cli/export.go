package cli

import (
	"fmt"
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/gguf"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

func exportCommand() *ucli.Command {
	flags := append([]ucli.Flag{
		&ucli.StringFlag{Name: "model", Required: true, Usage: "checkpoint folder (original or gpuquant-quantized) to export"},
		&ucli.StringFlag{Name: "out", Required: true, Usage: "file to write (never the source; refuses to replace one without --force)"},
		&ucli.StringFlag{Name: "format", Value: "gguf", Usage: "gguf (llama.cpp)"},
		&ucli.StringFlag{Name: "type", Usage: "f32, f16, q8_0 or q4_0 (default: q8_0 for absmax int8 group:32 codes, q4_0 for absmax int4 group:32, else f32)"},
		&ucli.BoolFlag{Name: "force", Usage: "replace an existing --out file"},
		&ucli.BoolFlag{Name: "json", Usage: "print the export report as JSON"},
	}, schemeFlags()...)
	return &ucli.Command{
		Name:   "export",
		Usage:  "write a model as GGUF for llama.cpp (F32, F16, Q8_0, Q4_0; our codes go in unchanged where the grids coincide)",
		Flags:  flags,
		Action: exportAction,
	}
}

func exportAction(c *ucli.Context) error {
	if f := c.String("format"); f != "gguf" {
		return fmt.Errorf("--format %q: only gguf is supported", f)
	}
	out := c.String("out")
	if err := model.CheckFile(out, c.Bool("force"), []string{c.String("model")}); err != nil {
		return err
	}
	scheme, err := schemeFlag(c)
	if err != nil {
		return err
	}
	opt, err := quantOptions(c, scheme)
	if err != nil {
		return err
	}
	src, fileQuant, ggufTok, err := openSource(c)
	if err != nil {
		return err
	}
	defer src.Close()
	w := src
	switch {
	case opt != nil && fileQuant != nil:
		return fmt.Errorf("%s is already quantized (%s); drop --scheme to export it as saved", c.String("model"), fileQuant)
	case opt != nil:
		if w, err = quantize.QuantizeWeights(src, *opt); err != nil {
			return err
		}
		fileQuant = opt
	case scheme == quantize.SchemeFP16:
		return fmt.Errorf("--scheme fp16 is a GPU format: use --type f16")
	}
	typ, err := exportType(c.String("type"), fileQuant)
	if err != nil {
		return err
	}
	tok, err := tokenizerOf(c.String("model"), ggufTok)
	if err != nil {
		return err
	}
	rep, err := gguf.Export(out, w, tok, typ)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr(c), "wrote %s: %s, %s (%d matrices with our codes unchanged, %d quantized afresh)\n",
		out, typ, model.HumanBytes(fileSize(out)), rep.Direct, len(rep.Requantized))
	if c.Bool("json") {
		return printJSON(c, rep)
	}
	if rep.Direct > 0 {
		fmt.Fprintf(stdout(c), "codes unchanged in %d matrices; the scale rounded to half moves their values by at most %.3g (relative)\n", rep.Direct, rep.HalfScaleMaxRel)
	}
	var worst gguf.TensorError
	for _, e := range rep.Requantized {
		if e.MaxAbsErr >= worst.MaxAbsErr {
			worst = e
		}
	}
	if len(rep.Requantized) > 0 {
		fmt.Fprintf(stdout(c), "re-quantized %d matrices with llama.cpp's %s rounding; worst %s: max |error| %.3g, RMS %.3g against the values we run\n",
			len(rep.Requantized), typ, worst.Name, worst.MaxAbsErr, worst.RMS)
	}
	return nil
}

// exportType is --type, or the GGUF type our codes go into unchanged.
func exportType(flag string, q *quantize.Options) (gguf.TensorType, error) {
	if flag != "" {
		return gguf.ParseTensorType(flag)
	}
	if q != nil && q.Scheme == quantize.Absmax && q.Granularity == (quantize.Granularity{Kind: quantize.PerGroup, Size: gguf.BlockSize}) {
		if q.Bits == 8 {
			return gguf.Q8_0, nil
		}
		return gguf.Q4_0, nil
	}
	if q != nil {
		return 0, fmt.Errorf("%s has no GGUF type with the same grid: choose --type q8_0 or q4_0 (re-quantized, error reported) or f32/f16", q)
	}
	return gguf.F32, nil
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
