//go:build !cuda

package cuda

import (
	"errors"

	"github.com/gpuquant/gpuquant/kernels"
)

// ErrNoCUDA is returned by every entry point of a build without the `cuda` tag.
var ErrNoCUDA = errors.New("cuda: built without CUDA: build with `make cuda` (go build -tags cuda) on a machine with the CUDA toolkit")

// Device is a CUDA device; without the `cuda` tag none can be opened and every method fails with
// ErrNoCUDA. The signatures match the tagged build's.
type Device struct{}

var _ kernels.Device = (*Device)(nil)

// Open would open device cuda:index; without the `cuda` tag it fails with ErrNoCUDA.
func Open(index int) (*Device, error) { return nil, ErrNoCUDA }

// RegisterModule would add a PTX module to every device opened later; without the tag it does nothing.
func RegisterModule(name string, ptx []byte) {}

// Close does nothing.
func (d *Device) Close() error { return nil }

// Alloc fails with ErrNoCUDA.
func (d *Device) Alloc(bytes int) (kernels.Ptr, error) { return 0, ErrNoCUDA }

// Free does nothing.
func (d *Device) Free(p kernels.Ptr) {}

// CopyToDevice fails with ErrNoCUDA.
func (d *Device) CopyToDevice(dst kernels.Ptr, src []byte) error { return ErrNoCUDA }

// CopyFromDevice fails with ErrNoCUDA.
func (d *Device) CopyFromDevice(dst []byte, src kernels.Ptr) error { return ErrNoCUDA }

// Launch fails with ErrNoCUDA.
func (d *Device) Launch(name string, grid, block kernels.Dim3, shared int, args ...any) error {
	return ErrNoCUDA
}

// Sync fails with ErrNoCUDA.
func (d *Device) Sync() error { return ErrNoCUDA }
