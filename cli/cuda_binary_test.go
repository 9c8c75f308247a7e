package cli

// The cuda-tagged gpuquant binary end to end, through the CUDA driver API, on the emulated driver
// (`make test-cuda-emu` sets GPUQUANT_CUDA_BIN to the bundle's gpuquant and LD_LIBRARY_PATH to
// build/cudaemu-driver): every command with --device cuda:0 against the same command on the CPU,
// in this process, and the errors of cards that cannot run it. Skipped without GPUQUANT_CUDA_BIN.

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cudaBinary runs the cuda-tagged binary with extra environment variables (the emulated card's).
func cudaBinary(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	bin := os.Getenv("GPUQUANT_CUDA_BIN")
	if bin == "" {
		t.Skip("GPUQUANT_CUDA_BIN is not set (make test-cuda-emu runs this test)")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

// jsonText is v as JSON, to compare decoded values whole.
func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCUDABinaryMatchesCPU(t *testing.T) {
	dir, text := tiny(t), textFile(t, sample)
	both := func(args ...string) (gpu, cpu map[string]any) {
		t.Helper()
		g, err := cudaBinary(t, nil, append(args, "--device", "cuda:0")...)
		if err != nil {
			t.Fatalf("gpuquant-cuda %s: %v\n%s", strings.Join(args, " "), err, g)
		}
		c, _, err := gpuquant(t, "", append(args, "--device", "cpu")...)
		if err != nil {
			t.Fatal(err)
		}
		return jsonOut(t, g), jsonOut(t, c)
	}
	near := func(what string, g, c any, rel float64) {
		t.Helper()
		gv, gok := g.(float64)
		cv, cok := c.(float64)
		if !gok || !cok || !(gv > 0) || math.Abs(gv-cv) > rel*cv {
			t.Errorf("%s: %v on cuda:0, %v on the CPU (bound %g relative)", what, g, c, rel)
		}
	}
	for _, s := range [][]string{{"--scheme", "fp32"}, {"--scheme", "absmax"}, {"--scheme", "zeropoint", "--bits", "4", "--granularity", "group:32"}} {
		g, c := both(append([]string{"eval", "--model", dir, "--text", text, "--max-length", "32", "--json"}, s...)...)
		near("eval perplexity "+strings.Join(s, " "), g["perplexity"], c["perplexity"], 1e-5)
	}
	g, c := both("generate", "--model", dir, "--max-new-tokens", "8", "--greedy", "--json")
	if jsonText(g["token_ids"]) != jsonText(c["token_ids"]) || jsonText(g["token_ids"]) == "[]" {
		t.Errorf("greedy tokens: %v on cuda:0, %v on the CPU", g["token_ids"], c["token_ids"])
	}
	g, c = both("bench", "--model", dir, "--scheme", "absmax", "--prompt-tokens", "8", "--new-tokens", "3", "--repeat", "1", "--json")
	if g["model_bytes"] != c["model_bytes"] || g["cuda_graphs"] != true || !strings.Contains(jsonText(g["device_name"]), "cudaemu") {
		t.Errorf("bench: model_bytes %v vs %v, cuda_graphs %v, device %v", g["model_bytes"], c["model_bytes"], g["cuda_graphs"], g["device_name"])
	}
	near("bench decode tokens/s (> 0)", g["decode_tokens_per_s"], g["decode_tokens_per_s"], 0)
	g, c = both("inspect", "--model", dir, "--scheme", "zeropoint", "--bits", "4", "--granularity", "group:32", "--json")
	gt, ct := g["tensors"].([]any), c["tensors"].([]any)
	if len(gt) == 0 || len(gt) != len(ct) {
		t.Fatalf("inspect --scheme: %d tensors on cuda:0, %d on the CPU", len(gt), len(ct))
	}
	for i := range ct {
		// Identical codes: the same maximum error; the MSE up to the order of its parallel sum.
		ge, ce := gt[i].(map[string]any), ct[i].(map[string]any)
		if ge["Name"] != ce["Name"] || ge["MaxAbsErr"] != ce["MaxAbsErr"] || ge["N"] != ce["N"] {
			t.Errorf("inspect --scheme: %v on cuda:0, %v on the CPU", ge, ce)
		}
		near("inspect MSE of "+jsonText(ce["Name"]), ge["MSE"], ce["MSE"], 1e-9)
	}
	// quantize: the checkpoint written from the device's codes is the CPU's, byte for byte.
	out := t.TempDir()
	if o, err := cudaBinary(t, nil, "quantize", "--model", dir, "--scheme", "absmax", "--bits", "4", "--granularity", "group:32", "--device", "cuda:0", "--out", filepath.Join(out, "gpu")); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	if _, _, err := gpuquant(t, "", "quantize", "--model", dir, "--scheme", "absmax", "--bits", "4", "--granularity", "group:32", "--out", filepath.Join(out, "cpu")); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(out, "gpu", "model.safetensors"))
	b, _ := os.ReadFile(filepath.Join(out, "cpu", "model.safetensors"))
	if len(a) == 0 || string(a) != string(b) {
		t.Errorf("quantize --device cuda:0 wrote %d bytes that differ from the CPU's %d", len(a), len(b))
	}
	// run: the whole comparison; the report's numbers as TestRunOnEmulatedGPU requires them.
	rep := func(device string) []any {
		o := filepath.Join(t.TempDir(), "report")
		args := []string{"run", "--model", dir, "--device", device, "--max-new-tokens", "3", "--seed", "3", "--text", text, "--out", o}
		var err error
		var msg string
		if device == "cpu" {
			_, msg, err = gpuquant(t, "", args...)
		} else {
			msg, err = cudaBinary(t, nil, args...)
		}
		if err != nil {
			t.Fatalf("run on %s: %v\n%s", device, err, msg)
		}
		data, err := os.ReadFile(filepath.Join(o, "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		return jsonOut(t, string(data))["models"].([]any)
	}
	gr, cr := rep("cuda:0"), rep("cpu")
	if len(gr) != len(cr) {
		t.Fatalf("run: %d models on cuda:0, %d on the CPU", len(gr), len(cr))
	}
	for i := range cr {
		gm, cm := gr[i].(map[string]any), cr[i].(map[string]any)
		if gm["model_bytes"] != cm["model_bytes"] {
			t.Errorf("run %v: %v bytes on cuda:0, %v on the CPU", cm["name"], gm["model_bytes"], cm["model_bytes"])
		}
		near("run perplexity of "+jsonText(cm["name"]), gm["perplexity"], cm["perplexity"], 1e-3)
	}
}

func TestCUDABinaryRefusesCards(t *testing.T) {
	dir := tiny(t)
	bench := []string{"bench", "--model", dir, "--device", "cuda:0", "--prompt-tokens", "4", "--new-tokens", "1", "--repeat", "1"}
	for _, c := range []struct {
		env  []string
		args []string
		want string // "" : must succeed
	}{
		{nil, []string{"bench", "--model", dir, "--device", "cuda:1"}, "device cuda:1: no such CUDA device: this machine has 1 CUDA device (cuda:0)"},
		{[]string{"CUDAEMU_DEVICES=2"}, append(bench[:4:4], "cuda:1", "--prompt-tokens", "4", "--new-tokens", "1", "--repeat", "1"), ""},
		{[]string{"CUDAEMU_CC=7.5"}, bench, "compute capability below 8.0"},
		{[]string{"CUDAEMU_CC=8.0"}, bench, ""},
		{[]string{"CUDAEMU_MEM=4M"}, bench, "need 12.7 MiB of device memory, but cuda:0 has 4.0 MiB free of 4.0 MiB"},
		{[]string{"CUDAEMU_DEVICES=0"}, bench, "gpuquant: no usable NVIDIA GPU: cuInit failed with CUDA_ERROR_NO_DEVICE"},
	} {
		out, err := cudaBinary(t, c.env, c.args...)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v %v: %v\n%s", c.env, c.args, err, out)
		case c.want != "" && (err == nil || !strings.Contains(out, c.want)):
			t.Errorf("%v %v: err %v, want an error containing %q; output:\n%s", c.env, c.args, err, c.want, out)
		case c.want != "" && strings.Contains(out, "panic"):
			t.Errorf("%v %v panicked:\n%s", c.env, c.args, out)
		}
	}
}
