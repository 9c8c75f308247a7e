package kernels

// Ptr is a device address: a CUdeviceptr on a GPU, a host address under CPU emulation.
type Ptr uintptr

// Dim3 is a CUDA grid or block size.
type Dim3 struct{ X, Y, Z int }

// Device is what the typed launchers in this package need from a GPU (package cuda, build tag
// `cuda`) or from the CPU emulator of our kernels (build tag `cudaemu`). One test body runs on
// both, so grid sizing and parameter packing are exercised in every CI run.
type Device interface {
	Alloc(bytes int) (Ptr, error)
	Free(p Ptr)
	CopyToDevice(dst Ptr, src []byte) error
	CopyFromDevice(dst []byte, src Ptr) error
	// Launch runs the named kernel of our .cu files. Each argument is an int32, uint32, int64,
	// float32 or Ptr, passed with exactly that size (never structs), in the kernel's order.
	Launch(name string, grid, block Dim3, shared int, args ...any) error
	Sync() error
}
