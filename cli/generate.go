package cli

import (
	"fmt"
	"unicode/utf8"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/compare"
	"github.com/gpuquant/gpuquant/model"
)

const defaultPrompt = "The way forward for AI is"

func samplingFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "prompt", Value: defaultPrompt},
		&ucli.IntFlag{Name: "max-new-tokens", Value: 50},
		&ucli.BoolFlag{Name: "greedy", Usage: "always take the most likely token"},
		&ucli.Float64Flag{Name: "temperature", Value: 1.0},
		&ucli.IntFlag{Name: "top-k", Value: 50, Usage: "sample among the k most likely tokens (0: all)"},
		&ucli.Float64Flag{Name: "top-p", Value: 1.0, Usage: "nucleus sampling: the smallest set reaching this probability"},
		&ucli.Uint64Flag{Name: "seed", Value: 0, Usage: "sampling seed: same seed, same text"},
	}
}

func sampleOptions(c *ucli.Context) model.SampleOptions {
	return model.SampleOptions{Greedy: c.Bool("greedy"), Temperature: c.Float64("temperature"),
		TopK: c.Int("top-k"), TopP: c.Float64("top-p"), Seed: c.Uint64("seed")}
}

// completeUTF8 is how many leading bytes of b can be printed now: all but a trailing incomplete
// UTF-8 sequence, which the next token may finish (invalid bytes are passed through).
func completeUTF8(b []byte) int {
	for i := 0; i < len(b); {
		if !utf8.FullRune(b[i:]) {
			return i
		}
		_, size := utf8.DecodeRune(b[i:])
		i += size
	}
	return len(b)
}

func generateCommand() *ucli.Command {
	flags := append(modelFlags(), samplingFlags()...)
	flags = append(flags, schemeFlags()...)
	flags = append(flags, &ucli.BoolFlag{Name: "json", Usage: "print one JSON object instead of streaming text"})
	return &ucli.Command{
		Name:  "generate",
		Usage: "continue a prompt (greedy, or seeded top-k / top-p sampling), one KV-cached step per token",
		Flags: flags,
		Action: func(c *ucli.Context) error {
			l, err := loadModel(c, false)
			if err != nil {
				return err
			}
			defer l.Close()
			tok, err := l.tokenizer()
			if err != nil {
				return err
			}
			var stream func(int32)
			if !c.Bool("json") {
				fmt.Fprint(stdout(c), c.String("prompt"))
				var pending []byte // a character may span tokens: hold back an unfinished one
				stream = func(id int32) {
					s, _ := tok.Decode([]int32{id}) // ids come from the model's own vocabulary
					pending = append(pending, s...)
					n := completeUTF8(pending)
					stdout(c).Write(pending[:n])
					pending = append(pending[:0], pending[n:]...)
				}
				defer func() { stdout(c).Write(pending) }()
			}
			g, err := compare.Generate(l.Ops, l.W, tok, c.String("prompt"), c.Int("max-new-tokens"), sampleOptions(c), stream)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				out := l.Spec.Fields()
				out["model"], out["device"], out["prompt"] = l.Dir, l.Ops.Name(), c.String("prompt")
				out["prompt_ids"], out["token_ids"], out["text"] = g.PromptIDs, g.TokenIDs, g.Text
				out["seconds"], out["tokens_per_s"], out["kernels"] = g.Seconds, g.TokensPS, model.KernelsUsed(l.Ops)
				if err := addDevice(l.Ops, l.W, out); err != nil {
					return err
				}
				return printJSON(c, out)
			}
			fmt.Fprintf(stdout(c), "\n")
			fmt.Fprintf(stderr(c), "%d tokens in %.2f s (%.1f tokens/s, %s)\n", len(g.TokenIDs), g.Seconds, g.TokensPS, l.Ops.Name())
			return nil
		},
	}
}
