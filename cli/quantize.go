package cli

import (
	"fmt"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

func quantizeCommand() *ucli.Command {
	flags := append([]ucli.Flag{
		&ucli.StringFlag{Name: "model", Required: true, Usage: "original Hugging Face GPT-2 folder"},
		&ucli.StringFlag{Name: "out", Required: true, Usage: "folder to write (never the source; refuses to replace one without --force)"},
		&ucli.BoolFlag{Name: "force", Usage: "replace an existing --out folder once the new one is complete"},
		deviceFlag,
	}, schemeFlags()...)
	return &ucli.Command{
		Name:  "quantize",
		Usage: "write a quantized checkpoint (int8/int4 codes + float32 scales in safetensors) that every command accepts as --model",
		Flags: flags,
		Action: func(c *ucli.Context) error {
			if c.String("scheme") == "fp32" {
				return fmt.Errorf("quantize needs --scheme absmax or --scheme zeropoint")
			}
			opt, err := quantOptions(c, c.String("scheme"))
			if err != nil {
				return err
			}
			src, fileQuant, _, err := openSource(c)
			if err != nil {
				return err
			}
			defer src.Close()
			if fileQuant != nil {
				return fmt.Errorf("%s is already quantized (%s): quantize the original checkpoint", c.String("model"), fileQuant)
			}
			start := time.Now()
			q, err := quantizeOn(c, src, *opt)
			if err != nil {
				return err
			}
			secs := time.Since(start).Seconds()
			if err := quantize.Save(c.String("out"), c.String("model"), q, *opt, c.Bool("force")); err != nil {
				return err
			}
			fmt.Fprintf(stderr(c), "%s: %s -> %s (%s -> %s, quantized in %.2f s)\n", opt, c.String("model"), c.String("out"),
				model.HumanBytes(src.Bytes()), model.HumanBytes(q.Bytes()), secs)
			return nil
		},
	}
}
