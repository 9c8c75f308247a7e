//go:build cudaemu && !cuda

package gpu

import (
	"testing"

	"github.com/gpuquant/gpuquant/kernels"
	"github.com/gpuquant/gpuquant/kernels/emu"
)

// testDevice is the CPU emulator of our kernels (tag cudaemu: every CI run).
func testDevice(t *testing.T) kernels.Device { return emu.New() }
