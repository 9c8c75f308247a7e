//go:build !cudaemu && !cuda

package kerneltest

import (
	"fmt"
	"os"
	"testing"
)

// Without tag cudaemu (the CPU emulator) or cuda (a GPU) no kernel test is built: say so
// (package-list `go test ./...` shows it as "[no tests to run]"; -v shows this message).
func TestMain(m *testing.M) {
	fmt.Println("kernels/kerneltest: SKIPPED, the kernel-vs-CPU tests need -tags cudaemu (cgo and g++): run `make test` or `go test -tags cudaemu ./...`")
	os.Exit(m.Run())
}
