//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"reflect"
)

// Sentinel errors; every error of this package wraps the driver's cause as well, so both
// errors.Is(err, ErrOutOfMemory) and the CUresult text are there.
var (
	ErrNoDevice          = errors.New("no such CUDA device")
	ErrComputeCapability = errors.New("compute capability below 8.0 (gpuquant's kernels use sm_80 mma)")
	ErrOutOfMemory       = errors.New("out of device memory")
	ErrNoKernelImage     = errors.New("kernel image not usable on this GPU")
	ErrNoKernel          = errors.New("no such kernel")
	ErrLaunch            = errors.New("kernel launch failed")
	ErrCapturing         = errors.New("not allowed while the stream is being captured into a graph")
	ErrClosed            = errors.New("device is closed")
	ErrNoCUBLAS          = errors.New("cuBLAS not available")
)

// drv turns an error from gorgonia.org/cu (its unexported cuResult, named like "OutOfMemory") into
// our Result, which prints the driver's own name and description. Other errors pass through.
func drv(err error) error {
	if err == nil {
		return nil
	}
	var ours detailed
	if errors.As(err, &ours) {
		return err
	}
	if r, ok := codeOf(err); ok {
		return withDetail(r)
	}
	return err
}

// codeOf finds the CUresult in err's chain, from our cgo (Result) or from gorgonia.org/cu.
func codeOf(err error) (Result, bool) {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if r, ok := e.(Result); ok {
			return r, true
		}
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Int && v.Type().PkgPath() == "gorgonia.org/cu" {
			return Result(v.Int()), true
		}
	}
	return 0, false
}

// isCode reports whether err carries the CUresult r.
func isCode(err error, r Result) bool {
	c, ok := codeOf(err)
	return ok && c == r
}

// imageError explains a module that the driver would not load: the PTX (or its ISA version) does
// not suit this GPU or this driver, and says how to rebuild.
func (d *Device) imageError(module string, err error, jitLog string) error {
	i := d.st.info
	var hint string
	switch c, _ := codeOf(err); c {
	case resUnsupportedPTX:
		hint = fmt.Sprintf("the PTX's ISA version is newer than driver %s can JIT-compile: regenerate it with `make kernels` using an nvcc no newer than the driver, or update the driver", i.DriverString())
	case resNoBinaryForGPU, resInvalidImage:
		hint = fmt.Sprintf("the module holds no code for sm_%d%d and no PTX the driver can compile for it: rebuild with `make kernels` (nvcc -arch=compute_80 embeds PTX that any GPU of compute capability >= 8.0 can JIT-compile)", i.Major, i.Minor)
	case resInvalidPTX, resJITNotFound:
		hint = fmt.Sprintf("the driver's JIT could not compile the PTX for sm_%d%d: regenerate it with `make kernels` (nvcc -arch=compute_80) and check the log", i.Major, i.Minor)
	default:
		return fmt.Errorf("cuda: load module %q on %s: %w", module, i, err)
	}
	msg := fmt.Sprintf("cuda: load module %q on %s: %v: %s", module, i, err, hint)
	if jitLog != "" {
		msg += "\nJIT log:\n" + jitLog
	}
	return fmt.Errorf("%s: %w (%w)", msg, ErrNoKernelImage, err)
}
