package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// gpuquant runs the CLI in-process and returns stdout, stderr and the error.
func gpuquant(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := New(strings.NewReader(stdin), &out, &errOut).Run(append([]string{"gpuquant"}, args...))
	return out.String(), errOut.String(), err
}

var (
	tinyOnce sync.Once
	tinyDir  string
)

// tiny is a random 2-layer GPT-2 with the real vocabulary, written once for all tests.
func tiny(t *testing.T) string {
	tinyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gpuquant-cli")
		if err != nil {
			t.Fatal(err)
		}
		tinyDir = filepath.Join(dir, "tiny")
		if _, _, err := gpuquant(t, "", "synth", "--preset", "tiny", "--n-positions", "64", "--dtype", "f16", "--out", tinyDir); err != nil {
			t.Fatal(err)
		}
	})
	if tinyDir == "" {
		t.Fatal("synth failed")
	}
	return tinyDir
}

func jsonOut(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, s)
	}
	return m
}

func textFile(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "text.txt")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const sample = "The tower is 324 metres (1,063 ft) tall, about the same height as an 81-storey building.\r\nIt was the tallest man-made structure in the world for 41 years.\r\n"

func TestEvalJSON(t *testing.T) {
	dir := tiny(t)
	out, _, err := gpuquant(t, "", "eval", "--model", dir, "--text", textFile(t, sample), "--max-length", "32", "--json")
	if err != nil {
		t.Fatal(err)
	}
	m := jsonOut(t, out)
	for _, k := range []string{"perplexity", "nll_mean", "tokens_scored", "model_bytes", "scheme"} {
		if _, ok := m[k]; !ok {
			t.Errorf("eval --json lacks %q", k)
		}
	}
	if p := m["perplexity"].(float64); !(p > 1) {
		t.Errorf("perplexity %v", p)
	}
}

func TestGenerateReproducible(t *testing.T) {
	dir := tiny(t)
	run := func(args ...string) map[string]any {
		out, _, err := gpuquant(t, "", append([]string{"generate", "--model", dir, "--max-new-tokens", "8", "--json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return jsonOut(t, out)
	}
	a, b := run("--seed", "9", "--top-p", "0.9"), run("--seed", "9", "--top-p", "0.9")
	if a["text"] != b["text"] || len(a["token_ids"].([]any)) != 8 {
		t.Fatalf("same seed, different text: %q vs %q", a["text"], b["text"])
	}
	g1, g2 := run("--greedy"), run("--greedy")
	if g1["text"] != g2["text"] {
		t.Fatal("greedy decoding is not deterministic")
	}
}

func TestTokenize(t *testing.T) {
	out, _, err := gpuquant(t, "Hello world", "tokenize", "--model", tiny(t), "--json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(strings.Fields(out), ""), `"ids":[15496,995]`) {
		t.Fatalf("tokenize printed %s", out)
	}
}

func TestInspect(t *testing.T) {
	out, _, err := gpuquant(t, "", "inspect", "--model", tiny(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "h.1.mlp.c_fc.weight") || !strings.Contains(out, "F16") {
		t.Fatalf("inspect printed:\n%s", out)
	}
}

func TestBadInput(t *testing.T) {
	dir := tiny(t)
	empty := textFile(t, "")
	bad := filepath.Join(t.TempDir(), "bad.txt")
	os.WriteFile(bad, []byte{0xff, 0xfe, 'a'}, 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--model", dir, "--text", empty}, "is empty"},
		{[]string{"eval", "--model", dir, "--text", bad}, "not valid UTF-8"},
		{[]string{"eval", "--model", dir, "--text", textFile(t, sample), "--device", "tpu:0"}, `unknown device "tpu:0"`},
		{[]string{"eval", "--model", dir, "--text", textFile(t, sample), "--device", "cuda:0"}, "built without CUDA"},
		{[]string{"eval", "--model", dir, "--text", textFile(t, sample), "--max-length", "1000"}, "max-length 1000 must be between 2 and the context (64)"},
		{[]string{"eval", "--model", dir, "--text", empty, "stray", "--json"}, `unexpected argument "stray"`},
		{[]string{"eval", "--model", filepath.Join(dir, "nope"), "--text", empty}, "is empty"},
		{[]string{"generate", "--model", dir, "--prompt", strings.Repeat("word ", 70)}, "exceeds the context of 64 positions"},
		{[]string{"generate", "--model", filepath.Join(dir, "nope")}, "no such file"},
		{[]string{"synth", "--out", dir}, "already exists"},
	} {
		_, _, err := gpuquant(t, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestQuantizedCheckpoint: a checkpoint written by `quantize` gives the same results as
// quantizing in memory, and the command protects existing folders and the source.
func TestQuantizedCheckpoint(t *testing.T) {
	dir := tiny(t)
	text := textFile(t, sample)
	out := filepath.Join(t.TempDir(), "q")
	scheme := []string{"--scheme", "zeropoint", "--bits", "4", "--granularity", "group:32"}
	if _, _, err := gpuquant(t, "", append([]string{"quantize", "--model", dir, "--out", out}, scheme...)...); err != nil {
		t.Fatal(err)
	}
	eval := func(args ...string) map[string]any {
		o, _, err := gpuquant(t, "", append([]string{"eval", "--text", text, "--json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return jsonOut(t, o)
	}
	mem, disk := eval(append([]string{"--model", dir}, scheme...)...), eval("--model", out)
	if mem["perplexity"] != disk["perplexity"] || disk["scheme"] != "zeropoint" || disk["bits"].(float64) != 4 {
		t.Fatalf("in memory %v (%v), from disk %v (%v %v)", mem["perplexity"], mem["model_bytes"], disk["perplexity"], disk["scheme"], disk["bits"])
	}
	if mem["model_bytes"] != disk["model_bytes"] {
		t.Errorf("model bytes %v in memory, %v from disk", mem["model_bytes"], disk["model_bytes"])
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append([]string{"quantize", "--model", dir, "--out", out}, scheme...), "already exists"},
		{append([]string{"quantize", "--model", dir, "--out", dir, "--force"}, scheme...), "source folder"},
		{append([]string{"quantize", "--model", out, "--out", out + "2"}, scheme...), "already quantized"},
		{[]string{"eval", "--model", out, "--text", text, "--scheme", "absmax"}, "already quantized"},
		{[]string{"eval", "--model", out, "--text", text, "--compare-to", "fp32"}, "needs the original checkpoint"},
		{[]string{"eval", "--model", dir, "--text", text, "--scheme", "absmax", "--granularity", "group:48"}, "does not divide"},
		{[]string{"eval", "--model", dir, "--text", text, "--scheme", "absmax", "--bits", "3"}, "bits"},
		{[]string{"eval", "--model", dir, "--text", text, "--scheme", "absmax", "--kernel", "fast"}, "unknown kernel"},
	} {
		if _, _, err := gpuquant(t, "", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, _, err := gpuquant(t, "", "quantize", "--model", dir, "--out", out, "--force", "--scheme", "absmax"); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if eval("--model", out)["scheme"] != "absmax" {
		t.Error("--force did not replace the folder")
	}
}

func TestEvalCompare(t *testing.T) {
	dir := tiny(t)
	text := textFile(t, strings.Repeat(sample, 3))
	run := func(args ...string) map[string]any {
		o, _, err := gpuquant(t, "", append([]string{"eval", "--model", dir, "--text", text, "--max-length", "32", "--compare-to", "fp32", "--json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return jsonOut(t, o)
	}
	same := run()
	if same["kld_mean"].(float64) > 1e-9 || same["top1_agreement"].(float64) != 1 {
		t.Errorf("fp32 against itself: kld %v, top-1 %v", same["kld_mean"], same["top1_agreement"])
	}
	q := run("--scheme", "absmax", "--bits", "4", "--granularity", "tensor")
	if !(q["kld_mean"].(float64) > 1e-6) || q["top1_agreement"].(float64) > 1 {
		t.Errorf("int4 per-tensor against fp32: kld %v, top-1 %v", q["kld_mean"], q["top1_agreement"])
	}
	w8 := run("--scheme", "absmax", "--kernel", "w8a8", "--outlier-threshold", "6")
	if k := w8["kernels"].(map[string]any); k["w8a8-vnni"] == nil && k["w8a8-avx2"] == nil && k["w8a8-go"] == nil {
		t.Errorf("--kernel w8a8 ran %v", k)
	}
	ll := run("--method", "llamacpp")
	if ll["tokens_scored"].(float64) >= same["tokens_scored"].(float64) {
		t.Errorf("llamacpp scored %v tokens, hf %v", ll["tokens_scored"], same["tokens_scored"])
	}
}

func TestRunWritesReport(t *testing.T) {
	out := filepath.Join(t.TempDir(), "report")
	stdout, _, err := gpuquant(t, "", "run", "--model", tiny(t), "--max-new-tokens", "4", "--seed", "3", "--out", out, "--tensor", "h.0.")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fp32", "absmax", "zeropoint"} {
		if !strings.Contains(stdout, name) {
			t.Errorf("table lacks %s:\n%s", name, stdout)
		}
	}
	for _, f := range []string{"report.json", "report.md", "histograms.png"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	data, _ := os.ReadFile(filepath.Join(out, "report.json"))
	rep := jsonOut(t, string(data))
	models := rep["models"].([]any)
	fp, abs := models[0].(map[string]any), models[1].(map[string]any)
	if r := abs["size_ratio"].(float64); r > 0.3 || r < 0.25 {
		t.Errorf("absmax size ratio %v, want about 0.25 + scales", r)
	}
	if fp["model_bytes"].(float64) <= abs["model_bytes"].(float64) {
		t.Error("quantized model is not smaller")
	}
	if _, _, err := gpuquant(t, "", "run", "--model", tiny(t), "--max-new-tokens", "2", "--out", out, "--tensor", "nope"); err == nil {
		t.Error("--tensor matching nothing was accepted")
	}
}

func TestBenchJSON(t *testing.T) {
	o, _, err := gpuquant(t, "", "bench", "--model", tiny(t), "--prompt-tokens", "16", "--new-tokens", "4", "--repeat", "1", "--scheme", "absmax", "--json")
	if err != nil {
		t.Fatal(err)
	}
	m := jsonOut(t, o)
	for _, k := range []string{"prefill_tokens_per_s", "decode_tokens_per_s", "model_bytes", "kernel", "peak_rss_bytes"} {
		if v, ok := m[k]; !ok || v == 0.0 {
			t.Errorf("bench --json: %s = %v", k, v)
		}
	}
}

// TestStreamedTextIsComplete: the streamed continuation equals the JSON text for the same seed,
// even when tokens split UTF-8 characters.
func TestStreamedTextIsComplete(t *testing.T) {
	dir := tiny(t)
	for seed := range 4 {
		args := []string{"generate", "--model", dir, "--prompt", "Hi", "--max-new-tokens", "40", "--top-k", "0", "--seed", string(rune('0' + seed))}
		streamed, _, err := gpuquant(t, "", args...)
		if err != nil {
			t.Fatal(err)
		}
		js, _, err := gpuquant(t, "", append(args, "--json")...)
		if err != nil {
			t.Fatal(err)
		}
		if want := "Hi" + jsonOut(t, js)["text"].(string) + "\n"; streamed != want {
			t.Fatalf("seed %d: streamed %q, JSON text %q", seed, streamed, want)
		}
	}
}

func TestEdgeArguments(t *testing.T) {
	dir := tiny(t)
	text := textFile(t, sample)
	o, _, err := gpuquant(t, "", "generate", "--model", dir, "--max-new-tokens", "0", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if ids, ok := jsonOut(t, o)["token_ids"].([]any); !ok || len(ids) != 0 {
		t.Errorf("--max-new-tokens 0: token_ids %v, want []", jsonOut(t, o)["token_ids"])
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"generate", "--model", dir, "--max-new-tokens", "-5"}, "negative"},
		{[]string{"generate", "--model", dir, "--temperature", "0"}, "temperature"},
		{[]string{"eval", "--model", dir, "--text", text, "--max-tokens", "-1"}, "negative"},
		{[]string{"eval", "--model", dir, "--text", text, "--device", "cuda:x"}, "unknown device"},
		{[]string{"eval", "--model", dir, "--text", text, "--bits", "4"}, "needs --scheme"},
		{[]string{"inspect", "--model", dir, "--granularity", "tensor"}, "needs --scheme"},
		{[]string{"eval", "--model", dir, "--text", text, "--method", "llamacpp", "--stride", "8"}, "does not apply"},
	} {
		if _, _, err := gpuquant(t, "", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	// The tutorial's scope quantizes LayerNorms and biases too; the backend runs them in float32.
	o, _, err = gpuquant(t, "", "eval", "--model", dir, "--text", text, "--scheme", "absmax", "--scope", "all", "--json")
	if err != nil {
		t.Fatalf("--scope all: %v", err)
	}
	if p := jsonOut(t, o)["perplexity"].(float64); !(p > 1) {
		t.Errorf("--scope all perplexity %v", p)
	}
}

// TestOutputFolderSafety: outputs never overlap the source and replace only what gpuquant wrote.
func TestOutputFolderSafety(t *testing.T) {
	parent := t.TempDir()
	src := filepath.Join(parent, "src")
	if _, _, err := gpuquant(t, "", "synth", "--preset", "tiny", "--n-layer", "1", "--n-positions", "16", "--out", src); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"quantize", "--model", src, "--out", parent, "--force", "--scheme", "absmax"},
		{"quantize", "--model", src, "--out", filepath.Join(src, "q"), "--scheme", "absmax"},
		{"run", "--model", src, "--out", src, "--force", "--max-new-tokens", "1"},
		{"run", "--model", src, "--out", filepath.Join(src, "report"), "--max-new-tokens", "1"},
	} {
		if _, _, err := gpuquant(t, "", args...); err == nil || !strings.Contains(err.Error(), "overlaps the source") {
			t.Errorf("%v: error %v", args, err)
		}
	}
	if _, err := os.Stat(filepath.Join(src, "model.safetensors")); err != nil {
		t.Fatalf("source damaged: %v", err)
	}
	out := filepath.Join(parent, "report")
	run := func(extra ...string) error {
		_, _, err := gpuquant(t, "", append([]string{"run", "--model", src, "--out", out, "--max-new-tokens", "1"}, extra...)...)
		return err
	}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	if err := run(); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second run without --force: %v", err)
	}
	if err := run("--force"); err != nil {
		t.Errorf("second run with --force: %v", err)
	}
	other := filepath.Join(parent, "documents")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "thesis.txt"), []byte("mine"), 0o644)
	if _, _, err := gpuquant(t, "", "synth", "--preset", "tiny", "--out", other, "--force"); err == nil || !strings.Contains(err.Error(), "refusing to replace") {
		t.Errorf("synth --force over a folder of other files: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(other, "thesis.txt")); string(data) != "mine" {
		t.Error("a user's folder was replaced")
	}
}
