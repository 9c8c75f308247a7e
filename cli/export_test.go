package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// evalPPL is eval --json's perplexity of model on text (llama.cpp's windows of 32 tokens).
func evalPPL(t *testing.T, model, text string, extra ...string) float64 {
	t.Helper()
	out, errOut, err := gpuquant(t, "", append([]string{"eval", "--model", model, "--text", text, "--method", "llamacpp", "--max-length", "32", "--json"}, extra...)...)
	if err != nil {
		t.Fatalf("eval %s: %v\n%s", model, err, errOut)
	}
	return num(t, jsonOut(t, out), "perplexity")
}

func TestExportGGUF(t *testing.T) {
	dir := t.TempDir()
	text := textFile(t, strings.Repeat("The quick brown fox jumps over the lazy dog while the cat sleeps. ", 12))
	want := evalPPL(t, tiny(t), text)

	// F32: the same values, so the same perplexity, tokens and greedy text.
	f32 := filepath.Join(dir, "f32.gguf")
	if _, errOut, err := gpuquant(t, "", "export", "--model", tiny(t), "--out", f32); err != nil {
		t.Fatalf("export: %v\n%s", err, errOut)
	}
	if got := evalPPL(t, f32, text); got != want {
		t.Errorf("F32 GGUF perplexity %v, the folder's %v", got, want)
	}
	ids := func(m string) string {
		out, _, err := gpuquant(t, "some text, with ünïcode\n\nand <|endoftext|>", "tokenize", "--model", m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if a, b := ids(f32), ids(tiny(t)); a != b {
		t.Errorf("GGUF tokens %q, folder tokens %q", a, b)
	}
	gen := func(m string) string {
		out, _, err := gpuquant(t, "", "generate", "--model", m, "--greedy", "--max-new-tokens", "8", "--json")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(strings.Fields(jsonOut(t, out)["text"].(string)), " ")
	}
	if a, b := gen(f32), gen(tiny(t)); a != b {
		t.Errorf("GGUF generates %q, the folder %q", a, b)
	}

	// Our absmax group:32 codes as Q8_0 / Q4_0: every matrix copied, only the scales rounded to
	// half, so the perplexity moves by far less than quantizing does.
	for _, c := range []struct{ bits, typ string }{{"8", "Q8_0"}, {"4", "Q4_0"}} {
		qdir := filepath.Join(dir, "q"+c.bits)
		if _, errOut, err := gpuquant(t, "", "quantize", "--model", tiny(t), "--out", qdir, "--scheme", "absmax", "--bits", c.bits, "--granularity", "group:32"); err != nil {
			t.Fatalf("quantize: %v\n%s", err, errOut)
		}
		out := filepath.Join(dir, "q"+c.bits+".gguf")
		stdout, errOut, err := gpuquant(t, "", "export", "--model", qdir, "--out", out, "--json")
		if err != nil {
			t.Fatalf("export %s: %v\n%s", c.typ, err, errOut)
		}
		rep := jsonOut(t, stdout)
		if rep["Direct"] != float64(4*nLayer(t, tiny(t))+2) || rep["Requantized"] != nil || !strings.Contains(errOut, c.typ) {
			t.Errorf("%s export report %v (%s)", c.typ, rep, errOut)
		}
		// inspect lists the file's tensors as stored: every matrix in the export type.
		listing, _, err := gpuquant(t, "", "inspect", "--model", out, "--json")
		if err != nil {
			t.Fatal(err)
		}
		var quantized int
		for _, x := range jsonOut(t, listing)["tensors"].([]any) {
			if x.(map[string]any)["dtype"] == c.typ {
				quantized++
			}
		}
		if quantized != 4*nLayer(t, tiny(t))+2 {
			t.Errorf("inspect lists %d %s tensors in %s", quantized, c.typ, listing)
		}
		ours, theirs := evalPPL(t, qdir, text), evalPPL(t, out, text)
		if !near(theirs, ours, 1e-4) || !(theirs != want) {
			t.Errorf("%s GGUF perplexity %v, our %s checkpoint %v (fp32 %v)", c.typ, theirs, c.bits, ours, want)
		}
		if _, _, err := gpuquant(t, "", "eval", "--model", out, "--text", text, "--scheme", "absmax"); err == nil || !strings.Contains(err.Error(), "already quantized") {
			t.Errorf("re-quantizing a %s GGUF: %v", c.typ, err)
		}
	}

	// Another grid: no type in common unless asked for, then re-quantized with the error reported.
	zp := filepath.Join(dir, "zp")
	if _, _, err := gpuquant(t, "", "quantize", "--model", tiny(t), "--out", zp, "--scheme", "zeropoint"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := gpuquant(t, "", "export", "--model", zp, "--out", filepath.Join(dir, "zp.gguf")); err == nil || !strings.Contains(err.Error(), "--type") {
		t.Errorf("zero-point per channel exported without --type: %v", err)
	}
	stdout, _, err := gpuquant(t, "", "export", "--model", zp, "--out", filepath.Join(dir, "zp.gguf"), "--type", "q8_0")
	if err != nil || !strings.Contains(stdout, "re-quantized 10 matrices") {
		t.Errorf("re-quantized export: %v %q", err, stdout)
	}

	// The output never replaces a file unasked, nor lands in the source.
	for _, args := range [][]string{
		{"export", "--model", tiny(t), "--out", f32},
		{"export", "--model", tiny(t), "--out", filepath.Join(tiny(t), "x.gguf")},
		{"export", "--model", tiny(t), "--out", filepath.Join(dir, "y.gguf"), "--type", "q5_k"},
		{"export", "--model", tiny(t), "--out", filepath.Join(dir, "y.gguf"), "--format", "onnx"},
	} {
		if _, _, err := gpuquant(t, "", args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "*y.gguf*")); len(matches) != 0 {
		t.Errorf("a refused export left %v", matches)
	}
}
