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
