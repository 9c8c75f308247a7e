// Package cli is gpuquant's command line (urfave/cli/v2): flags, progress bars, tables and JSON.
// Data (JSON, tables, generated text) goes to stdout; usage errors, progress and logs to stderr.
package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/schollz/progressbar/v3"
	ucli "github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/gpuquant/gpuquant/model"
)

// New builds the gpuquant application writing data to stdout and everything else to stderr.
func New(stdin io.Reader, stdout, stderr io.Writer) *ucli.App {
	app := &ucli.App{
		Name:  "gpuquant",
		Usage: "quantize GPT-2 to int8/int4, run it on CPU or CUDA, and measure what it costs",
		// urfave prints usage errors to Writer: keep stdout for data.
		Writer:               stderr,
		ErrWriter:            stderr,
		EnableBashCompletion: false,
		Commands: []*ucli.Command{
			runCommand(), evalCommand(), generateCommand(), quantizeCommand(), benchCommand(),
			inspectCommand(), tokenizeCommand(), synthCommand(), exportCommand(),
		},
		Metadata: map[string]any{"stdin": stdin, "stdout": stdout, "stderr": stderr},
	}
	for _, c := range app.Commands {
		c.Before = noStrayArgs
	}
	return app
}

// Main runs the application on os.Args and returns the process exit code.
func Main() int {
	// An interrupted write leaves no half-written temporary folder behind.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		model.RemoveTemps()
		fmt.Fprintln(os.Stderr, "gpuquant:", s)
		os.Exit(130)
	}()
	if err := New(os.Stdin, os.Stdout, os.Stderr).Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "gpuquant:", err)
		return 1
	}
	return 0
}

// noStrayArgs rejects positional arguments: urfave/cli/v2 stops parsing flags at the first one,
// so "eval model --json" would silently ignore --json.
func noStrayArgs(c *ucli.Context) error {
	if c.Args().Len() > 0 {
		return fmt.Errorf("%s: unexpected argument %q (every input is a flag, e.g. --model DIR; flags must not follow an argument)", c.Command.Name, c.Args().First())
	}
	return nil
}

func stdout(c *ucli.Context) io.Writer { return c.App.Metadata["stdout"].(io.Writer) }
func stderr(c *ucli.Context) io.Writer { return c.App.Metadata["stderr"].(io.Writer) }

func printJSON(c *ucli.Context, v any) error {
	data, err := jsonIndent(v)
	if err == nil {
		_, err = stdout(c).Write(data)
	}
	return err
}

func jsonIndent(v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	return append(data, '\n'), err
}

// newProgress returns a bar on stderr that draws only when stderr is a terminal (progressbar
// has no detection of its own and would otherwise redraw into pipes and files).
func newProgress(c *ucli.Context, total int, what string) *progressbar.ProgressBar {
	w := stderr(c)
	f, ok := w.(*os.File)
	visible := ok && term.IsTerminal(int(f.Fd()))
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetVisibility(visible),
		progressbar.OptionSetDescription(what),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
	)
}
