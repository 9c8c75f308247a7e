//go:build cuda || cudaemu

package kerneltest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gpuquant/gpuquant/kernels"
)

const (
	guardBytes = 256  // before and after every buffer of a guarded device
	guardByte  = 0xA5 // what they hold
)

// guarded is a view of a device whose allocator has no guard zones (the GPU's pools round sizes
// up, so a small overrun lands in memory nobody checks): every Alloc takes 2·guardBytes more, fills
// the margins with guardByte and returns the address between them; checkGuards downloads the
// margins of every live buffer. It also remembers its buffers, so that a failed case frees them.
type guarded struct {
	kernels.Device
	live map[kernels.Ptr]int // requested sizes by returned address
}

func newGuarded(d kernels.Device) *guarded { return &guarded{Device: d, live: map[kernels.Ptr]int{}} }

func (g *guarded) Alloc(n int) (kernels.Ptr, error) {
	if n <= 0 {
		return 0, fmt.Errorf("guarded: alloc of %d bytes", n)
	}
	p, err := g.Device.Alloc(n + 2*guardBytes)
	if err != nil {
		return 0, err
	}
	pat := bytes.Repeat([]byte{guardByte}, guardBytes)
	if err := errors.Join(g.Device.CopyToDevice(p, pat), g.Device.CopyToDevice(p+guardBytes+kernels.Ptr(n), pat)); err != nil {
		g.Device.Free(p)
		return 0, err
	}
	q := p + guardBytes
	g.live[q] = n
	return q, nil
}

func (g *guarded) Free(p kernels.Ptr) {
	if _, ok := g.live[p]; ok {
		delete(g.live, p)
		g.Device.Free(p - guardBytes)
	}
}

// checkGuards reports every live buffer whose margins changed.
func (g *guarded) checkGuards() error {
	var bad []string
	b := make([]byte, guardBytes)
	for p, n := range g.live {
		for _, side := range []struct {
			name string
			at   kernels.Ptr
		}{{"before", p - guardBytes}, {"after", p + kernels.Ptr(n)}} {
			if err := g.Device.CopyFromDevice(b, side.at); err != nil {
				return err
			}
			if i := slices.IndexFunc(b, func(c byte) bool { return c != guardByte }); i >= 0 {
				bad = append(bad, fmt.Sprintf("%s %#x (%d bytes): guard byte %d is %#02x", side.name, uintptr(p), n, i, b[i]))
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("guard bytes overwritten: %s", strings.Join(bad, "; "))
}

// finish waits for the device, checks the guards and frees every live buffer.
func (g *guarded) finish() error {
	err := g.Device.Sync()
	if err == nil {
		err = g.checkGuards()
	}
	for p := range g.live {
		g.Free(p)
	}
	return err
}

// The guarded view (what the GPU cases allocate through) reports a byte written just past a
// buffer and just before it, and only those.
func TestGuardedDeviceCatchesOverrun(t *testing.T) {
	g := newGuarded(testDevice(t))
	Output(t, g, 100)
	Output(t, g, 7)
	if err := g.finish(); err != nil {
		t.Fatalf("untouched buffers reported: %v", err)
	}
	p, q := Output(t, g, 100), Output(t, g, 7)
	// The margins are ordinary memory of the wrapped device, which a stray kernel write can hit.
	if err := g.Device.CopyToDevice(p+100, []byte{0}); err != nil {
		t.Fatal(err)
	}
	if err := g.Device.CopyToDevice(q-1, []byte{0x5A}); err != nil {
		t.Fatal(err)
	}
	err := g.finish()
	t.Logf("caught: %v", err)
	if err == nil || !strings.Contains(err.Error(), "after") || !strings.Contains(err.Error(), "before") || strings.Count(err.Error(), "guard byte ") != 2 {
		t.Fatalf("overruns not reported as one after and one before: %v", err)
	}
}
