package gguf

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/model/tokenizer"
	"github.com/gpuquant/gpuquant/quantize"
)

// llamaEval is llama.cpp's own evaluation of a GGUF (scripts/llama/llamaeval.c).
type llamaEval struct {
	IDs          []int32 `json:"ids"`
	TokensScored int     `json:"tokens_scored"`
	NLLSum       float64 `json:"nll_sum"`
	Perplexity   float64 `json:"perplexity"`
	Windows      int     `json:"windows"`
}

// sharpened is the tiny preset with its weights scaled up, so that logits and attention are far
// from uniform: at the synthesizer's N(0, 0.02) a wrong layout would hardly move the perplexity.
func sharpened(t *testing.T) *model.Weights {
	w := tiny(t).Copy()
	for _, p := range w.Params() {
		f := (*p.T).(*model.F32)
		k := float32(2)
		switch p.Name {
		case "wte.weight":
			k = 10
		case "wpe.weight":
			k = 5
		}
		if len(f.Dims) == 1 {
			continue
		}
		v := make([]float32, len(f.Data))
		for i, x := range f.Data {
			v[i] = k * x
		}
		*p.T = model.NewF32(v, f.Dims...)
	}
	return w
}

// TestLlamaCppAgrees exports a model as F32, Q8_0 and Q4_0 GGUF and has llama.cpp (its prebuilt
// CPU library, through llamaeval) tokenize and score a text: the token ids must equal ours and
// the perplexity on the same windows match ours on the same file, within 1e-4 relative for F32
// (the float kernels differ: llama.cpp rounds GELU's input to half) and 1e-3 for Q8_0 and Q4_0
// (llama.cpp also quantizes the activations to 8 bits for its integer dot products; we keep
// them float32). LLAMAEVAL names the harness (make test-llama builds it); without it the test
// is skipped.
func TestLlamaCppAgrees(t *testing.T) {
	bin := os.Getenv("LLAMAEVAL")
	if bin == "" {
		t.Skip("LLAMAEVAL not set: run make test-llama (fetches llama.cpp's prebuilt CPU library from npm)")
	}
	readme, err := os.ReadFile("testdata/text.txt") // a frozen copy of our README: English, code, tables
	if err != nil {
		t.Fatal(err)
	}
	// llamaeval tokenizes with parse_special off, so "<|endoftext|>" would be text there and the
	// special token here.
	readme = []byte(strings.ReplaceAll(string(readme), tokenizer.EOTText, ""))
	text := filepath.Join(t.TempDir(), "text.txt")
	if err := os.WriteFile(text, readme, 0o644); err != nil {
		t.Fatal(err)
	}
	src := sharpened(t)
	const L = 64
	for _, c := range []struct {
		format TensorType
		quant  *quantize.Options
		rel    float64
	}{
		{F32, nil, 1e-4},
		{Q8_0, &quantize.Options{Scheme: quantize.Absmax, Bits: 8, Granularity: quantize.Granularity{Kind: quantize.PerGroup, Size: 32}}, 1e-3},
		{Q4_0, &quantize.Options{Scheme: quantize.Absmax, Bits: 4, Granularity: quantize.Granularity{Kind: quantize.PerGroup, Size: 32}}, 1e-3},
	} {
		w := src
		if c.quant != nil {
			if w, err = quantize.QuantizeWeights(src, *c.quant); err != nil {
				t.Fatal(err)
			}
		}
		path := filepath.Join(t.TempDir(), "m.gguf")
		if _, err := Export(path, w, tokenizer.GPT2(), c.format); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, path, text, "--max-length", "64").Output()
		if err != nil {
			t.Fatalf("%s: llamaeval: %v\n%s", c.format, err, stderrOf(err))
		}
		var theirs llamaEval
		if err := json.Unmarshal(out, &theirs); err != nil {
			t.Fatal(err)
		}
		back, _, tok, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		ids := tok.Encode(strings.ReplaceAll(string(readme), "\r\n", "\n"))
		if !slices.Equal(ids, theirs.IDs) {
			t.Fatalf("%s: our %d token ids differ from llama.cpp's %d", c.format, len(ids), len(theirs.IDs))
		}
		be := cpu.New()
		up, err := be.Upload(back, quantize.Spec{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := model.NewSession(be, up, 0)
		if err != nil {
			t.Fatal(err)
		}
		ours, err := model.Perplexity(s, ids, model.PerplexityOptions{MaxLength: L, Method: model.MethodLlamaCpp})
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		rel := math.Abs(ours.Perplexity-theirs.Perplexity) / theirs.Perplexity
		t.Logf("%s: perplexity ours %.6f, llama.cpp %.6f (relative %.2g) over %d tokens in %d windows", c.format, ours.Perplexity, theirs.Perplexity, rel, ours.Tokens, ours.Windows)
		if ours.Tokens != theirs.TokensScored || ours.Windows != theirs.Windows || !(rel <= c.rel) {
			t.Errorf("%s: ours %d tokens in %d windows, perplexity %v; llama.cpp %d in %d, %v (relative %.2g > %.0g)",
				c.format, ours.Tokens, ours.Windows, ours.Perplexity, theirs.TokensScored, theirs.Windows, theirs.Perplexity, rel, c.rel)
		}
	}
}

// TestLlamaCppFilesLoad reads GGUFs that llama.cpp's own quantizer (llama_model_quantize, as
// llama-quantize calls it) made from our F32 export: Q4_0 blocks with negative scales become our
// mirrored zero-point codes; our perplexity on them must match llama.cpp's within 1e-3.
func TestLlamaCppFilesLoad(t *testing.T) {
	bin := os.Getenv("LLAMAEVAL")
	if bin == "" {
		t.Skip("LLAMAEVAL not set: run make test-llama (fetches llama.cpp's prebuilt CPU library from npm)")
	}
	dir := t.TempDir()
	text := filepath.Join(dir, "text.txt")
	words := strings.Repeat("Quantization maps real weights onto a few integer levels and one scale per block. ", 40)
	if err := os.WriteFile(text, []byte(words), 0o644); err != nil {
		t.Fatal(err)
	}
	f32 := filepath.Join(dir, "f32.gguf")
	if _, err := Export(f32, sharpened(t), tokenizer.GPT2(), F32); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		typ  string
		want quantize.Options
	}{
		{"q8_0", quantize.Options{Scheme: quantize.Absmax, Bits: 8, Granularity: quantize.Granularity{Kind: quantize.PerGroup, Size: 32}}},
		{"q4_0", quantize.Options{Scheme: quantize.ZeroPoint, Bits: 4, Granularity: quantize.Granularity{Kind: quantize.PerGroup, Size: 32}}},
	} {
		path := filepath.Join(dir, c.typ+".gguf")
		if out, err := exec.Command(bin, "--quantize", c.typ, f32, path).CombinedOutput(); err != nil {
			t.Fatalf("llama_model_quantize %s: %v\n%s", c.typ, err, out)
		}
		out, err := exec.Command(bin, path, text, "--max-length", "64").Output()
		if err != nil {
			t.Fatalf("%s: llamaeval: %v\n%s", c.typ, err, stderrOf(err))
		}
		var theirs llamaEval
		if err := json.Unmarshal(out, &theirs); err != nil {
			t.Fatal(err)
		}
		w, quant, tok, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if quant == nil || *quant != c.want {
			t.Errorf("%s: loaded as %v, want %v", c.typ, quant, c.want)
		}
		ids := tok.Encode(words)
		be := cpu.New()
		up, err := be.Upload(w, quantize.Spec{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := model.NewSession(be, up, 0)
		if err != nil {
			t.Fatal(err)
		}
		ours, err := model.Perplexity(s, ids, model.PerplexityOptions{MaxLength: 64, Method: model.MethodLlamaCpp})
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		rel := math.Abs(ours.Perplexity-theirs.Perplexity) / theirs.Perplexity
		t.Logf("llama.cpp's %s: perplexity ours %.6f, llama.cpp %.6f (relative %.2g)", c.typ, ours.Perplexity, theirs.Perplexity, rel)
		if !slices.Equal(ids, theirs.IDs) || ours.Tokens != theirs.TokensScored || !(rel <= 1e-3) {
			t.Errorf("%s: %d tokens scored, perplexity %v; llama.cpp %d, %v (relative %.2g > 1e-3)", c.typ, ours.Tokens, ours.Perplexity, theirs.TokensScored, theirs.Perplexity, rel)
		}
	}
}

func stderrOf(err error) string {
	if e, ok := err.(*exec.ExitError); ok {
		return string(e.Stderr)
	}
	return ""
}
