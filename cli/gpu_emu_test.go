//go:build cudaemu && !cuda

package cli

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestRunOnEmulatedGPU runs the GPU path of `run` (weights uploaded once, quantized on the
// device, host copies of the codes for the statistics) with our kernels on the CPU emulator, and
// requires the same sizes, weight errors and (within the parity bound) perplexities as the CPU run.
func TestRunOnEmulatedGPU(t *testing.T) {
	text := textFile(t, sample)
	report := func(device string) []any {
		out := filepath.Join(t.TempDir(), "report")
		if _, _, err := gpuquant(t, "", "run", "--model", tiny(t), "--device", device, "--max-new-tokens", "3", "--seed", "3",
			"--text", text, "--out", out); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(out, "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		return jsonOut(t, string(data))["models"].([]any)
	}
	gpu, cpu := report("cudaemu"), report("cpu")
	for i := range cpu {
		g, c := gpu[i].(map[string]any), cpu[i].(map[string]any)
		name := c["name"].(string)
		if g["model_bytes"] != c["model_bytes"] {
			t.Errorf("%s: %v bytes on the device, %v on the CPU", name, g["model_bytes"], c["model_bytes"])
		}
		gp, cp := g["perplexity"].(float64), c["perplexity"].(float64)
		if math.Abs(gp-cp) > 1e-3*cp {
			t.Errorf("%s: perplexity %v on the device, %v on the CPU", name, gp, cp)
		}
		if i > 0 {
			ge, ce := g["weight_error"].(map[string]any), c["weight_error"].(map[string]any)
			// Identical codes: the same maximum error; the MSE up to the order of its parallel sum.
			gm, cm := ge["MSE"].(float64), ce["MSE"].(float64)
			if !(math.Abs(gm-cm) <= 1e-9*cm) || ge["MaxAbsErr"] != ce["MaxAbsErr"] {
				t.Errorf("%s: weight error on the device %v, on the CPU %v (the codes must be identical)", name, ge, ce)
			}
		}
	}
}

func TestBenchOpTimesOnEmulatedGPU(t *testing.T) {
	o, _, err := gpuquant(t, "", "bench", "--model", tiny(t), "--device", "cudaemu", "--prompt-tokens", "9", "--new-tokens", "2",
		"--repeat", "1", "--scheme", "absmax", "--op-times", "--json")
	if err != nil {
		t.Fatal(err)
	}
	times, _ := jsonOut(t, o)["op_times"].(map[string]any)
	for _, k := range []string{"gemv", "gemm_f32", "attention", "add_layernorm", "embed"} {
		if v, ok := times[k].(map[string]any); !ok || !(v["calls"].(float64) > 0) || !(v["seconds"].(float64) > 0) {
			t.Errorf("op_times[%s] = %v", k, times[k])
		}
	}
	if _, ok := times["quant_encode"]; ok {
		t.Error("op_times counts the quantization at load")
	}
	if _, _, err := gpuquant(t, "", "bench", "--model", tiny(t), "--op-times"); err == nil {
		t.Error("--op-times on the CPU was accepted")
	}
}

func TestBenchOnEmulatedGPU(t *testing.T) {
	for _, scheme := range []string{"fp16", "absmax"} {
		o, _, err := gpuquant(t, "", "bench", "--model", tiny(t), "--device", "cudaemu", "--prompt-tokens", "9", "--new-tokens", "3",
			"--repeat", "1", "--scheme", scheme, "--kernel", "w8a8", "--json")
		if err != nil {
			t.Fatal(err)
		}
		m := jsonOut(t, o)
		if m["scheme"] != scheme || m["device"] != "cudaemu" || !(m["decode_tokens_per_s"].(float64) > 0) {
			t.Errorf("bench --scheme %s: %v", scheme, m)
		}
	}
}

// A GGUF (Q8_0 as absmax codes, Q4_0 as zero-point codes) runs on our GPU kernels with the CPU
// backend's perplexity.
func TestGGUFOnEmulatedGPU(t *testing.T) {
	text := textFile(t, sample)
	dir := t.TempDir()
	for _, typ := range []string{"q8_0", "q4_0"} {
		out := filepath.Join(dir, typ+".gguf")
		if _, errOut, err := gpuquant(t, "", "export", "--model", tiny(t), "--out", out, "--type", typ); err != nil {
			t.Fatalf("export: %v\n%s", err, errOut)
		}
		gp, cp := evalPPL(t, out, text, "--device", "cudaemu"), evalPPL(t, out, text)
		if math.Abs(gp-cp) > 1e-4*cp {
			t.Errorf("%s: perplexity %v on the device, %v on the CPU", typ, gp, cp)
		}
	}
}
