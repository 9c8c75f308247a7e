//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"

	"github.com/gpuquant/gpuquant/kernels"
)

// registry holds the modules given to RegisterModule, loaded by every device opened afterwards
// (and by open devices on their next launch of a kernel they do not know yet).
var registry struct {
	sync.Mutex
	mods []registered
}

type registered struct {
	name string
	ptx  []byte
}

type loadedModule struct {
	name   string
	handle uintptr // CUmodule
}

// RegisterModule adds a PTX module (e.g. the kernels package's embedded PTX) under name; a second
// call with the same name replaces it for devices that have not loaded it yet. Kernels are found
// by name across all modules of a device.
func RegisterModule(name string, ptx []byte) {
	registry.Lock()
	defer registry.Unlock()
	for i := range registry.mods {
		if registry.mods[i].name == name {
			registry.mods[i].ptx = ptx
			return
		}
	}
	registry.mods = append(registry.mods, registered{name: name, ptx: ptx})
}

// LoadModule loads a PTX module (text) or cubin/fatbin image into the device now. The driver
// JIT-compiles PTX for this GPU; if it cannot, the error names the compute capability and how to
// rebuild.
func (d *Device) LoadModule(name string, image []byte) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.loadLocked(name, image)
}

func (d *Device) loadLocked(name string, image []byte) error {
	for _, m := range d.st.mods {
		if m.name == name {
			return fmt.Errorf("cuda: load module %q on %s: already loaded", name, d.st.info)
		}
	}
	if len(image) == 0 {
		return fmt.Errorf("cuda: load module %q on %s: empty image (was the PTX generated? `make kernels`)", name, d.st.info)
	}
	h, jitLog, err := moduleLoad(image)
	if err != nil {
		return d.imageError(name, err, strings.TrimSpace(jitLog))
	}
	d.st.mods = append(d.st.mods, loadedModule{name: name, handle: h})
	return nil
}

func (d *Device) loadRegistered() error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.loadRegisteredLocked()
}

// loadRegisteredLocked loads the registered modules the device has not loaded yet.
func (d *Device) loadRegisteredLocked() error {
	registry.Lock()
	mods := append([]registered(nil), registry.mods...)
	registry.Unlock()
next:
	for _, r := range mods {
		for _, m := range d.st.mods {
			if m.name == r.name {
				continue next
			}
		}
		if err := d.loadLocked(r.name, r.ptx); err != nil {
			return err
		}
	}
	return nil
}

// Modules lists the names of the loaded modules.
func (d *Device) Modules() []string {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	var names []string
	for _, m := range d.st.mods {
		names = append(names, m.name)
	}
	return names
}

// function returns the CUfunction of the named kernel, cached after the first lookup.
func (d *Device) function(name string) (uintptr, error) {
	if fn, ok := d.st.fns[name]; ok {
		return fn, nil
	}
	if err := d.loadRegisteredLocked(); err != nil {
		return 0, err
	}
	for _, m := range d.st.mods {
		fn, err := moduleFunction(m.handle, name)
		if err == nil {
			d.st.fns[name] = fn
			return fn, nil
		}
		if !isCode(err, resNotFound) {
			return 0, fmt.Errorf("cuda: kernel %q in module %q on %s: %w", name, m.name, d.st.info, err)
		}
	}
	var names []string
	for _, m := range d.st.mods {
		names = append(names, m.name)
	}
	return 0, fmt.Errorf("cuda: kernel %q on %s: %w in the loaded modules %q (is it extern \"C\" __global__, and the PTX regenerated?)", name, d.st.info, ErrNoKernel, names)
}

// FuncInfo is what the driver reports about a compiled kernel.
type FuncInfo struct {
	Regs, MaxThreads, StaticShared, LocalBytes, MaxDynamicShared int
	PTXVersion, BinaryVersion                                    int // e.g. 80 for compute_80 / sm_80
}

// Func returns the driver's resource report of the named kernel (registers, spills to local memory,
// shared memory): the JIT's counterpart of nvcc's --resource-usage.
func (d *Device) Func(name string) (FuncInfo, error) {
	if err := d.enter(); err != nil {
		return FuncInfo{}, err
	}
	defer d.leave()
	fn, err := d.function(name)
	if err != nil {
		return FuncInfo{}, err
	}
	var fi FuncInfo
	var errs []error
	for _, a := range []struct {
		attr int
		dst  *int
	}{{attrNumRegs, &fi.Regs}, {attrMaxThreads, &fi.MaxThreads}, {attrSharedBytes, &fi.StaticShared},
		{attrLocalBytes, &fi.LocalBytes}, {attrMaxDynamicShared, &fi.MaxDynamicShared},
		{attrPTXVersion, &fi.PTXVersion}, {attrBinaryVersion, &fi.BinaryVersion}} {
		v, err := funcAttr(fn, a.attr)
		errs = append(errs, err)
		*a.dst = v
	}
	if err := errors.Join(errs...); err != nil {
		return fi, fmt.Errorf("cuda: attributes of kernel %q on %s: %w", name, d.st.info, err)
	}
	return fi, nil
}

// SetMaxDynamicShared lets the named kernel be launched with up to bytes of dynamic shared memory
// (above 48 KiB the driver requires this opt-in).
func (d *Device) SetMaxDynamicShared(name string, bytes int) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	fn, err := d.function(name)
	if err != nil {
		return err
	}
	if err := funcSetAttr(fn, attrMaxDynamicShared, bytes); err != nil {
		return fmt.Errorf("cuda: kernel %q on %s: allow %d bytes of dynamic shared memory: %w", name, d.st.info, bytes, err)
	}
	return nil
}

// Launch runs the named kernel on the device's stream with grid × block threads and shared bytes
// of dynamic shared memory. Each argument is an int32, uint32, int64, uint64, float32 or
// kernels.Ptr and is passed with exactly its size, in the kernel's order; a zero Y or Z of grid
// or block means 1. The kernel runs asynchronously: its faults surface at the next Sync or copy
// from the device, which names the most recent launch. Launch makes no allocation: the function
// is cached after the first lookup and the parameters are packed into a buffer reused by every
// launch.
func (d *Device) Launch(name string, grid, block kernels.Dim3, shared int, args ...any) error {
	g, gerr := dims(grid)
	b, berr := dims(block)
	if gerr != nil || berr != nil || shared < 0 || len(args) > maxArgs {
		return fmt.Errorf("cuda: launch %s grid %v block %v shared %d with %d arguments: %w",
			name, grid, block, shared, len(args), errors.Join(gerr, berr, errIf(shared < 0, "negative shared memory"),
				errIf(len(args) > maxArgs, fmt.Sprintf("more than %d arguments", maxArgs))))
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	fn, err := d.function(name)
	if err != nil {
		return err
	}
	var vals [maxArgs]uint64
	var sizes [maxArgs]uint8
	for i, a := range args {
		switch v := a.(type) {
		case int32:
			vals[i], sizes[i] = uint64(uint32(v)), 4
		case uint32:
			vals[i], sizes[i] = uint64(v), 4
		case int64:
			vals[i], sizes[i] = uint64(v), 8
		case uint64:
			vals[i], sizes[i] = v, 8
		case float32:
			vals[i], sizes[i] = uint64(math.Float32bits(v)), 4
		case kernels.Ptr:
			vals[i], sizes[i] = uint64(v), 8
		default:
			// reflect.TypeOf keeps args from escaping (fmt's %T would make callers box on the heap).
			return fmt.Errorf("cuda: launch %s: argument %d is a %s; want int32, uint32, int64, uint64, float32 or kernels.Ptr (sizes must match the kernel's parameters)", name, i, typeName(a))
		}
	}
	d.st.params.set(vals[:len(args)], sizes[:len(args)])
	if err := launch(fn, g, b, uint32(shared), d.sh, d.st.params); err != nil {
		hint := ""
		switch c, _ := codeOf(err); c {
		case resLaunchOutOfRes:
			hint = " (too many threads per block for this kernel's registers: see Func)"
		case resInvalidValue:
			hint = " (block over 1024 threads, grid Y/Z over 65535, or dynamic shared memory over the kernel's limit: see SetMaxDynamicShared)"
		}
		return fmt.Errorf("cuda: launch %s grid %v block %v shared %d on %s: %w%s: %w", name, g, b, shared, d.st.info, ErrLaunch, hint, err)
	}
	d.st.last = lastLaunch{name: name, grid: g, block: b}
	return nil
}

func dims(x kernels.Dim3) ([3]uint32, error) {
	v := [3]int{x.X, x.Y, x.Z}
	var out [3]uint32
	for i, n := range v {
		if n == 0 && i > 0 {
			n = 1
		}
		if n <= 0 || n > math.MaxInt32 {
			return out, fmt.Errorf("dimension %v: each of X, Y, Z must be positive (Y, Z may be 0 for 1)", x)
		}
		out[i] = uint32(n)
	}
	return out, nil
}

func typeName(a any) string {
	if t := reflect.TypeOf(a); t != nil {
		return t.String()
	}
	return "nil"
}

func errIf(cond bool, msg string) error {
	if cond {
		return errors.New(msg)
	}
	return nil
}
