package cli

import (
	"errors"
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/cuda"
	"github.com/gpuquant/gpuquant/gpu"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
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

// deviceFlag is --device for the commands that quantize without running the model.
var deviceFlag = &ucli.StringFlag{Name: "device", Value: "cpu", Usage: "where to quantize: cpu or cuda:N (our kernels, codes bit-identical to the CPU's)"}

// quantizeOn quantizes src with opt on --device and returns host weights: on the CPU with
// quantize.QuantizeWeights, on a GPU by uploading src once and quantizing it there with our kernels.
func quantizeOn(c *ucli.Context, src *model.Weights, opt quantize.Options) (*model.Weights, error) {
	if c.String("device") == "cpu" {
		return quantize.QuantizeWeights(src, opt)
	}
	if opt.Scope == quantize.ScopeAll {
		// The device path keeps norms and biases float32 (dequantized), not as codes.
		return nil, fmt.Errorf("--scope all quantizes norms and biases on the CPU only: use --device cpu")
	}
	o, err := openBackend(c)
	if err != nil {
		return nil, err
	}
	defer closeBackend(o)
	g, ok := o.(*gpu.Backend)
	if !ok {
		return nil, fmt.Errorf("--device %s quantizes on the CPU: use --device cpu", c.String("device"))
	}
	w, err := g.Upload(src)
	if err != nil {
		return nil, err
	}
	q, err := g.QuantizeOnDevice(w, opt)
	if err != nil {
		return nil, err
	}
	return g.HostWeights(q, src)
}
