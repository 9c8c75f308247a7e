package cli

import (
	"fmt"
	"sort"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/model/tokenizer"
)

func synthCommand() *ucli.Command {
	var presets []string
	for p := range model.Presets {
		presets = append(presets, p)
	}
	sort.Strings(presets)
	return &ucli.Command{
		Name:  "synth",
		Usage: "write a random GPT-2 in Hugging Face layout (initialised like transformers), with GPT-2's real tokenizer files",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "out", Required: true, Usage: "folder to create"},
			&ucli.StringFlag{Name: "preset", Value: "tiny", Usage: strings.Join(presets, ", ")},
			&ucli.IntFlag{Name: "n-layer", Usage: "override the preset"},
			&ucli.IntFlag{Name: "n-head", Usage: "override the preset"},
			&ucli.IntFlag{Name: "n-embd", Usage: "override the preset"},
			&ucli.IntFlag{Name: "n-positions", Usage: "override the preset"},
			&ucli.IntFlag{Name: "vocab-size", Usage: "override the preset (tokenizer files are written only for 50257)"},
			&ucli.StringFlag{Name: "dtype", Value: "f32", Usage: "f32, f16 or bf16"},
			&ucli.Uint64Flag{Name: "seed", Value: 1},
			&ucli.BoolFlag{Name: "force", Usage: "replace an existing --out folder"},
		},
		Action: func(c *ucli.Context) error {
			cfg, ok := model.Presets[c.String("preset")]
			if !ok {
				return fmt.Errorf("unknown preset %q (want one of %s)", c.String("preset"), strings.Join(presets, ", "))
			}
			for name, dst := range map[string]*int{"n-layer": &cfg.NLayer, "n-head": &cfg.NHead, "n-embd": &cfg.NEmbd, "n-positions": &cfg.NPositions, "vocab-size": &cfg.VocabSize} {
				if c.IsSet(name) {
					*dst = c.Int(name)
				}
			}
			out := c.String("out")
			err := model.WriteFolder(out, c.Bool("force"), nil, func(tmp string) error {
				err := model.Synth(tmp, model.SynthOptions{Config: cfg, DType: strings.ToUpper(c.String("dtype")), Seed: c.Uint64("seed")})
				if err == nil && cfg.VocabSize == tokenizer.GPT2().VocabSize() {
					err = tokenizer.WriteGPT2Files(tmp)
				}
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr(c), "wrote %s: n_layer %d, n_head %d, n_embd %d, n_positions %d, vocab %d, %s\n",
				out, cfg.NLayer, cfg.NHead, cfg.NEmbd, cfg.NPositions, cfg.VocabSize, c.String("dtype"))
			return nil
		},
	}
}
