package cli

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	ucli "github.com/urfave/cli/v2"
)

func tokenizeCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "tokenize",
		Usage: "GPT-2 token ids of the text on stdin",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "model", Usage: "folder with vocab.json + merges.txt or tokenizer.json", Required: true},
			&ucli.BoolFlag{Name: "json", Usage: `print {"ids": [...]}`},
		},
		Action: func(c *ucli.Context) error {
			tok, err := loadTokenizer(c.String("model"))
			if err != nil {
				return err
			}
			data, err := io.ReadAll(c.App.Metadata["stdin"].(io.Reader))
			if err != nil {
				return err
			}
			if !utf8.Valid(data) {
				return fmt.Errorf("stdin is not valid UTF-8 text")
			}
			ids := tok.Encode(strings.ReplaceAll(string(data), "\r\n", "\n"))
			if c.Bool("json") {
				return printJSON(c, map[string]any{"ids": ids})
			}
			for i, id := range ids {
				if i > 0 {
					fmt.Fprint(stdout(c), " ")
				}
				fmt.Fprint(stdout(c), id)
			}
			fmt.Fprintln(stdout(c))
			return nil
		},
	}
}
