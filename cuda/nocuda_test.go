//go:build !cuda

package cuda

import (
	"errors"
	"strings"
	"testing"
)

func TestOpenWithoutCUDA(t *testing.T) {
	d, err := Open(0)
	if d != nil || !errors.Is(err, ErrNoCUDA) || !strings.Contains(err.Error(), "make cuda") {
		t.Fatalf("Open(0) = %v, %v; want nil, ErrNoCUDA naming `make cuda`", d, err)
	}
	var z *Device
	if _, err := z.Alloc(8); !errors.Is(err, ErrNoCUDA) {
		t.Errorf("Alloc without CUDA: %v", err)
	}
}
