//go:build cuda

// Package initcheck stops a CUDA build of gpuquant with a one-line explanation when the machine
// has no usable NVIDIA driver or GPU. gorgonia.org/cu calls cuInit in its package init and exits
// with its own message when that fails; this package initialises first (Go initialises packages
// in import-path order when their imports allow: "github.com/…" sorts before "gorgonia.org/…",
// and this package imports only what gorgonia.org/cu imports too), so the user reads ours.
package initcheck

/*
#cgo LDFLAGS: -lcuda
#cgo linux LDFLAGS: -L/usr/lib/x86_64-linux-gnu/stubs -L/usr/local/cuda/lib64/stubs -L/usr/local/cuda/lib64
#cgo linux CFLAGS: -I/usr/local/cuda/include
#include <cuda.h>

static int gq_init(const char **name, const char **desc) {
	CUresult r = cuInit(0);
	*name = "CUDA_ERROR_UNKNOWN";
	*desc = "";
	cuGetErrorName(r, name);
	cuGetErrorString(r, desc);
	return (int)r;
}
*/
import "C"

import (
	"fmt"
	"os"
)

func init() {
	var name, desc *C.char
	if r := C.gq_init(&name, &desc); r != 0 {
		fmt.Fprintf(os.Stderr, "gpuquant: no usable NVIDIA GPU: cuInit failed with %s (%d: %s); this is the CUDA build of gpuquant (-tags cuda), the pure-Go build (`make build`, --device cpu) runs without one\n",
			C.GoString(name), int(r), C.GoString(desc))
		os.Exit(1)
	}
}
