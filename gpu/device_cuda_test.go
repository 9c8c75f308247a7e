//go:build cuda

package gpu

import (
	"testing"

	"github.com/gpuquant/gpuquant/kernels"
)

// testDevice is GPU 0 (tag cuda: the device machine).
func testDevice(t *testing.T) kernels.Device {
	d, err := Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
