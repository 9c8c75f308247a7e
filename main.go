// Command gpuquant quantizes GPT-2 checkpoints and compares the original with the quantized models.
package main

import (
	"os"

	"github.com/gpuquant/gpuquant/cli"
)

func main() { os.Exit(cli.Main()) }
