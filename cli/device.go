package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/gpu"
	"github.com/gpuquant/gpuquant/model"
)

// ParseDevice reads "cpu" or "cuda:N" ("cuda" alone means cuda:0); it returns -1 for the CPU.
func ParseDevice(s string) (int, error) {
	switch {
	case s == "cpu":
		return -1, nil
	case s == "cuda":
		return 0, nil
	case strings.HasPrefix(s, "cuda:"):
		n, err := strconv.Atoi(s[len("cuda:"):])
		if err == nil && n >= 0 {
			return n, nil
		}
	}
	return 0, fmt.Errorf("unknown device %q (want cpu or cuda:N, e.g. cuda:0)", s)
}

// openBackend returns the backend for a device string.
func openBackend(device string, opt cpu.Options) (model.Ops, error) {
	idx, err := ParseDevice(device)
	if err != nil {
		return nil, err
	}
	if idx < 0 {
		return cpu.NewWith(opt)
	}
	return gpu.New(idx)
}
