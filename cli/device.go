package cli

import (
	"errors"
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/cuda"
	"github.com/gpuquant/gpuquant/gpu"
	"github.com/gpuquant/gpuquant/model"
)

// openBackend returns the backend of --device, "cpu" or "cuda:N", with the --kernel options.
func openBackend(c *ucli.Context) (model.Ops, error) {
	device, opt := c.String("device"), backendOptions(c)
	gopt := gpu.Options{Kernel: opt.Kernel, OpTimes: c.Bool("op-times")}
	switch device {
	case "cpu":
		if gopt.OpTimes {
			return nil, errors.New("--op-times times GPU kernels: it needs --device cuda:N")
		}
		return cpu.NewWith(opt)
	case "cudaemu": // the GPU path on the kernels' CPU emulator: tests only (-tags cudaemu)
		if opt.OutlierThreshold != 0 {
			return nil, errOutliersCPU
		}
		return gpu.NewEmulated(gopt)
	}
	idx, err := cuda.ParseDevice(device)
	if err != nil {
		return nil, fmt.Errorf("unknown device %q (want cpu or cuda:N, e.g. cuda:0)", device)
	}
	if opt.OutlierThreshold != 0 {
		return nil, errOutliersCPU
	}
	return gpu.New(idx, gopt)
}

var errOutliersCPU = errors.New("--outlier-threshold (LLM.int8() outliers) runs only on --device cpu")

// closeBackend releases a backend that holds a device.
func closeBackend(o model.Ops) {
	if g, ok := o.(*gpu.Backend); ok {
		g.Close()
	}
}

// deviceFields adds a GPU backend's device and memory figures to a JSON report, with the device
// bytes of the weights w when not nil.
func deviceFields(o model.Ops, w *model.Weights, out map[string]any) {
	g, ok := o.(*gpu.Backend)
	if !ok {
		return
	}
	if w != nil {
		out["device_weight_bytes"] = w.Bytes()
	}
	out["device_name"] = gpu.DeviceInfo(g)
	if t := g.OpTimes(); t != nil {
		out["op_times"] = t
	}
	out["cuda_graphs"] = g.GraphsUsed()
	if m, err := g.Memory(); err == nil {
		out["device_in_use_bytes"], out["device_peak_bytes"], out["device_cached_bytes"] = m.InUse, m.Peak, m.Cached
		out["device_driver_used_bytes"], out["device_total_bytes"] = m.Total-m.DriverFree, m.Total
	}
}
