//go:build cudaemu && !cuda

package kerneltest

// The kernels executed on the CPU by kernels/emu (every `make test`): each case in three thread
// orders, on a fresh emulated device whose allocations carry guard zones of their own (poisoned
// for ASan in `make test-emu-asan`), checked after every case.

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/gpuquant/gpuquant/kernels"
	"github.com/gpuquant/gpuquant/kernels/emu"
)

// onGPU is false: the GPT-2 XL-sized cases are skipped unless GQ_KERNELTEST_XL is set (xlCases).
const onGPU = false

var passed, failed atomic.Int64

func TestMain(m *testing.M) {
	if err := emu.CheckFresh("../emu"); err != nil {
		fmt.Println(err)
		fmt.Println("cudaemu kernels: 0 passed, 1 failed (stale build)")
		os.Exit(1)
	}
	code := m.Run()
	fmt.Printf("cudaemu kernels: %d passed, %d failed (kernel vs CPU twin, each case × 3 schedule orders; sanitized=%v)\n",
		passed.Load(), failed.Load(), emu.Sanitized())
	if failed.Load() > 0 && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// schedules are the three orders every case runs in.
var schedules = []struct {
	s    emu.Schedule
	seed uint64
}{{emu.Forward, 0}, {emu.Reverse, 0}, {emu.Random, 12345}}

// testDevice is a fresh emulated device (forward order), closed when t ends.
func testDevice(t *testing.T) kernels.Device {
	d := emu.New()
	t.Cleanup(func() {
		if err := d.CheckGuards(); err != nil {
			t.Error(err)
		}
		d.Close()
	})
	return d
}

// inOrders runs body once per schedule order as subtests (name/forward, name/reverse,
// name/random), each on a fresh device whose guard zones are checked afterwards, and counts them.
func inOrders(t *testing.T, name string, body func(t *testing.T, d kernels.Device)) {
	t.Helper()
	for _, sc := range schedules {
		ran := false // t.Run reports success for a subtest that -test.run filtered out
		ok := t.Run(name+"/"+sc.s.String(), func(t *testing.T) {
			ran = true
			d := emu.New()
			defer d.Close()
			d.SetSchedule(sc.s, sc.seed)
			body(t, d)
			if err := d.CheckGuards(); err != nil {
				t.Fatal(err)
			}
		})
		switch {
		case !ran:
		case ok:
			passed.Add(1)
		default:
			failed.Add(1)
		}
	}
}
