package cli

import (
	"encoding/json"
	"errors"
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/gpuquant/gpuquant/compare"
	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/cuda"
	"github.com/gpuquant/gpuquant/gpu"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// openBackend returns the backend of --device, "cpu" or "cuda:N", with the --kernel options.
func openBackend(c *ucli.Context) (quantize.Backend, error) {
	device := c.String("device")
	copt := cpu.Options{Kernel: c.String("kernel"), OutlierThreshold: float32(c.Float64("outlier-threshold"))}
	gopt := gpu.Options{Kernel: copt.Kernel, OpTimes: c.Bool("op-times")}
	switch device {
	case "cpu":
		if gopt.OpTimes {
			return nil, errors.New("--op-times times GPU kernels: it needs --device cuda:N")
		}
		return cpu.NewWith(copt)
	case "cudaemu": // the GPU path on the kernels' CPU emulator: tests only (-tags cudaemu)
		if copt.OutlierThreshold != 0 {
			return nil, errOutliersCPU
		}
		return gpu.NewEmulated(gopt)
	}
	idx, err := cuda.ParseDevice(device)
	if err != nil {
		return nil, fmt.Errorf("unknown device %q (want cpu or cuda:N, e.g. cuda:0)", device)
	}
	if copt.OutlierThreshold != 0 {
		return nil, errOutliersCPU
	}
	return gpu.New(idx, gopt)
}

var errOutliersCPU = errors.New("--outlier-threshold (LLM.int8() outliers) runs only on --device cpu")

// addDevice adds a device backend's figures (compare.DeviceOf) to a JSON object, with the
// device bytes of the weights w when not nil.
func addDevice(o model.Ops, w *model.Weights, out map[string]any) error {
	d := compare.DeviceOf(o, w)
	if d == nil {
		return nil
	}
	data, err := json.Marshal(d)
	if err == nil {
		err = json.Unmarshal(data, &out)
	}
	return err
}

// deviceFlag is --device for the commands that quantize without running the model.
var deviceFlag = &ucli.StringFlag{Name: "device", Value: "cpu", Usage: "where to quantize: cpu or cuda:N (our kernels, codes bit-identical to the CPU's)"}

// quantizeOn quantizes src with opt on --device and returns host weights: on the CPU with
// quantize.QuantizeWeights (the codes of every parameter in the scope, norms and biases
// included), on a GPU by the backend's kernels.
func quantizeOn(c *ucli.Context, src *model.Weights, opt quantize.Options) (*model.Weights, error) {
	if c.String("device") == "cpu" {
		return quantize.QuantizeWeights(src, opt)
	}
	if opt.Scope == quantize.ScopeAll {
		// A backend keeps norms and biases float32 (dequantized), not as codes.
		return nil, fmt.Errorf("--scope all quantizes norms and biases on the CPU only: use --device cpu")
	}
	o, err := openBackend(c)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	q, err := o.Upload(src, quantize.Spec{Quant: &opt})
	if err != nil {
		return nil, err
	}
	return o.HostWeights(q, src)
}
