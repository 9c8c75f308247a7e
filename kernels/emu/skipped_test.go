//go:build !cudaemu

package emu

import (
	"fmt"
	"os"
	"testing"
)

// Without tag cudaemu nothing here is built: say so (package-list `go test ./...` shows it as
// "[no tests to run]"; -v shows this message).
func TestMain(m *testing.M) {
	fmt.Println("kernels/emu: SKIPPED, the CUDA kernels on the CPU emulator need -tags cudaemu (cgo and g++): run `make test` or `go test -tags cudaemu ./...`")
	os.Exit(m.Run())
}
