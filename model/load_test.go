package model

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var small = Config{NLayer: 2, NHead: 2, NEmbd: 8, NPositions: 16, VocabSize: 32, LayerNormE: 1e-5, TieEmbeddings: true}

// synthDir writes a small random checkpoint and returns its folder.
func synthDir(t *testing.T, c Config, dtype string) string {
	t.Helper()
	dir := t.TempDir()
	if err := Synth(dir, SynthOptions{Config: c, DType: dtype, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSynthLoads(t *testing.T) {
	for _, dt := range []string{"F32", "F16", "BF16"} {
		w, err := Load(synthDir(t, small, dt))
		if err != nil {
			t.Fatalf("%s: %v", dt, err)
		}
		if w.Head != nil || len(w.Blocks) != 2 {
			t.Fatalf("%s: head %v, %d blocks", dt, w.Head, len(w.Blocks))
		}
		if got := w.Blocks[1].FC.W.Shape(); got[0] != 32 || got[1] != 8 {
			t.Fatalf("%s: c_fc loaded as %v, want (OC, C) = [32 8]", dt, got)
		}
		if got := w.Blocks[0].Ln1.W.(*F32).Data[3]; got != 1 {
			t.Fatalf("%s: LayerNorm gain %v, want 1", dt, got)
		}
		w.Close()
	}
}

// TestSynthInit checks the Hugging Face initialisation statistics on a wider model.
func TestSynthInit(t *testing.T) {
	c := Config{NLayer: 4, NHead: 4, NEmbd: 256, NPositions: 64, VocabSize: 1000, LayerNormE: 1e-5, TieEmbeddings: true}
	w, err := Load(synthDir(t, c, "F32"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	std := func(v []float32) float64 {
		var s float64
		for _, x := range v {
			s += float64(x) * float64(x)
		}
		return sqrt(s / float64(len(v)))
	}
	for _, tc := range []struct {
		name string
		v    []float32
		want float64
	}{
		{"wte", w.WTE.(*F32).Data, 0.02},
		{"c_fc", w.Blocks[0].FC.W.(*F32).Data, 0.02},
		{"mlp.c_proj", w.Blocks[0].FCProj.W.(*F32).Data, 0.02 / sqrt(8)},
	} {
		if got := std(tc.v); got < 0.97*tc.want || got > 1.03*tc.want {
			t.Errorf("%s: std %.5f, want %.5f", tc.name, got, tc.want)
		}
	}
}

func sqrt(x float64) float64 {
	z := x
	for range 50 {
		z = (z + x/z) / 2
	}
	return z
}

// rewrite replaces dir/model.safetensors with what edit makes of its bytes.
func rewrite(t *testing.T, dir string, edit func([]byte) []byte) {
	t.Helper()
	p := filepath.Join(dir, "model.safetensors")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, edit(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// editHeader rewrites the JSON header of a safetensors image.
func editHeader(t *testing.T, edit func(h map[string]any)) func([]byte) []byte {
	return func(data []byte) []byte {
		n := binary.LittleEndian.Uint64(data)
		var h map[string]any
		if err := json.Unmarshal(data[8:8+n], &h); err != nil {
			t.Fatal(err)
		}
		edit(h)
		hdr, _ := json.Marshal(h)
		out := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
		return append(append(out, hdr...), data[8+n:]...)
	}
}

func entry(h map[string]any, name string) map[string]any { return h[name].(map[string]any) }

func TestLoadBadInput(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"missing config", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "config.json")) }, "config.json: no such file"},
		{"missing weights", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "model.safetensors")) }, "model.safetensors: no such file"},
		{"malformed config", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"n_layer": 2,`), 0o644)
		}, "config.json: malformed JSON"},
		{"truncated file", func(t *testing.T, dir string) { rewrite(t, dir, func(b []byte) []byte { return b[:len(b)-10] }) }, "past the end of the data"},
		{"tiny file", func(t *testing.T, dir string) { rewrite(t, dir, func(b []byte) []byte { return b[:5] }) }, "too short for a safetensors header"},
		{"header past end", func(t *testing.T, dir string) {
			rewrite(t, dir, func(b []byte) []byte { binary.LittleEndian.PutUint64(b, uint64(len(b))); return b })
		}, "runs past the end of the file"},
		{"malformed header", func(t *testing.T, dir string) {
			rewrite(t, dir, func(b []byte) []byte { b[8] = '['; return b })
		}, "malformed JSON header"},
		{"overlapping offsets", func(t *testing.T, dir string) {
			rewrite(t, dir, editHeader(t, func(h map[string]any) {
				e := entry(h, "h.0.ln_1.bias")
				offs := e["data_offsets"].([]any)
				e["data_offsets"] = []any{offs[0].(float64) - 4, offs[1].(float64) - 4}
			}))
		}, "overlap"},
		{"offsets out of range", func(t *testing.T, dir string) {
			rewrite(t, dir, editHeader(t, func(h map[string]any) {
				entry(h, "ln_f.bias")["data_offsets"] = []any{1e6, 1e6 + 32}
			}))
		}, "past the end of the data"},
		{"shape disagrees with config", func(t *testing.T, dir string) {
			rewrite(t, dir, editHeader(t, func(h map[string]any) { entry(h, "wpe.weight")["shape"] = []any{8, 16} }))
		}, `"wpe.weight" has shape [8 16], config.json implies [16 8]`},
		{"missing tensor", func(t *testing.T, dir string) {
			rewrite(t, dir, editHeader(t, func(h map[string]any) {
				h["h.9.unused"] = h["h.1.mlp.c_proj.bias"]
				delete(h, "h.1.mlp.c_proj.bias")
			}))
		}, `missing tensor "h.1.mlp.c_proj.bias"`},
		{"unknown dtype", func(t *testing.T, dir string) {
			rewrite(t, dir, editHeader(t, func(h map[string]any) { entry(h, "wte.weight")["dtype"] = "F8_E4M3X" }))
		}, `unknown dtype "F8_E4M3X"`},
		{"integer dtype", func(t *testing.T, dir string) {
			rewrite(t, dir, editHeader(t, func(h map[string]any) {
				e := entry(h, "ln_f.weight")
				e["dtype"], e["shape"] = "I32", []any{8}
			}))
		}, "dtype I32; GPT-2 weights must be F32, F16 or BF16"},
		{"NaN weight", func(t *testing.T, dir string) {
			rewrite(t, dir, func(b []byte) []byte {
				n := binary.LittleEndian.Uint64(b)
				binary.LittleEndian.PutUint32(b[8+n:], 0x7fc00000) // first value of the first tensor
				return b
			})
		}, "non-finite value"},
		{"not a folder", func(t *testing.T, dir string) {}, "is not a folder"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := synthDir(t, small, "F32")
			tc.setup(t, dir)
			if tc.name == "not a folder" {
				dir = filepath.Join(dir, "config.json")
			}
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if tc.name != "not a folder" && tc.name != "missing config" && tc.name != "malformed config" && !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestUntiedNeedsHead(t *testing.T) {
	c := small
	c.TieEmbeddings = false
	_, err := Load(synthDir(t, c, "F32"))
	if err == nil || !strings.Contains(err.Error(), `missing tensor "lm_head.weight"`) {
		t.Fatalf("error %v", err)
	}
}

// FuzzParseSafetensors feeds arbitrary images to the header parser: it must never panic, and
// whatever it accepts must have every tensor's data inside the image.
func FuzzParseSafetensors(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz-seeds", "*.safetensors"))
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseSafetensors(data)
		if err != nil {
			return
		}
		for _, tv := range st.Tensors() {
			v := tv.TensorView
			if uint64(len(v.Data())) != uint64(NumElements(ShapeOf(v)))*v.DType().Size() {
				t.Fatalf("tensor %q: %d bytes for shape %v", tv.Name, len(v.Data()), v.Shape())
			}
		}
	})
}
