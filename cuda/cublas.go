//go:build cuda

package cuda

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/gpuquant/gpuquant/kernels"
)

// cublasNames are tried in order by dlopen; GPUQUANT_CUBLAS, when set, is tried first. cuBLAS is
// opened at run time rather than linked so that a binary built against one toolkit (Debian's
// CUDA 11.8) runs where another is installed (the GPU machines' CUDA 13).
var cublasNames = []string{"libcublas.so", "libcublas.so.13", "libcublas.so.12", "libcublas.so.11",
	"/usr/local/cuda/lib64/libcublas.so"}

// GemmI8 computes with cuBLAS (cublasGemmEx, CUDA_R_8I inputs, CUDA_R_32I output, 32-bit integer
// compute), on the device's stream:
//
//	out[t, o] = Σ_c x[t, c] · w[o, c]
//	out // (T, OC) int32, row-major
//	x   // (T, C)  int8,  row-major (activations)
//	w   // (OC, C) int8,  row-major (weights, the nn.Linear view)
//
// It is the baseline our int8 kernels are benchmarked against. C must be a multiple of 4 (cuBLAS's
// int8 tensor-core path needs lda and ldb multiples of 4).
func (d *Device) GemmI8(out, x, w kernels.Ptr, T, C, OC int) error {
	if T <= 0 || C <= 0 || OC <= 0 || C%4 != 0 {
		return fmt.Errorf("cuda: gemm int8 T=%d C=%d OC=%d: sizes must be positive and C a multiple of 4", T, C, OC)
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if d.st.blas == 0 {
		if err := openCUBLAS(); err != nil {
			return fmt.Errorf("cuda: gemm int8 on %s: %w", d.st.info, err)
		}
		h, err := cublasCreate()
		if err != nil {
			return fmt.Errorf("cuda: gemm int8 on %s: cublasCreate: %w: %w", d.st.info, ErrNoCUBLAS, err)
		}
		d.st.blas = h
	}
	if err := cublasSetStream(d.st.blas, d.sh); err != nil {
		return fmt.Errorf("cuda: gemm int8 on %s: cublasSetStream: %w", d.st.info, err)
	}
	if err := cublasGemmI8(d.st.blas, uintptr(out), uintptr(x), uintptr(w), T, C, OC); err != nil {
		return fmt.Errorf("cuda: cublasGemmEx int8 out (%d, %d) = x (%d, %d) · w (%d, %d)ᵀ on %s: %w", T, OC, T, C, OC, C, d.st.info, err)
	}
	d.st.last = lastLaunch{name: "cublasGemmEx int8"}
	return nil
}

var cublasLib struct {
	sync.Mutex
	opened bool
}

func openCUBLAS() error {
	cublasLib.Lock()
	defer cublasLib.Unlock()
	if cublasLib.opened {
		return nil
	}
	names := cublasNames
	if p := os.Getenv("GPUQUANT_CUBLAS"); p != "" {
		names = append([]string{p}, names...)
	}
	var tried []string
	for _, n := range names {
		err := cublasOpen(n)
		if err == nil {
			cublasLib.opened = true
			return nil
		}
		tried = append(tried, err.Error())
	}
	return fmt.Errorf("%w: dlopen failed for each of %s (set GPUQUANT_CUBLAS to the path of libcublas.so.N, or add its folder to LD_LIBRARY_PATH):\n  %s",
		ErrNoCUBLAS, strings.Join(names, ", "), strings.Join(tried, "\n  "))
}
