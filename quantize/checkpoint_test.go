package quantize

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gpuquant/gpuquant/model"
)

// synthDir writes a small random F32 checkpoint with tokenizer files and loads it.
func synthDir(t *testing.T, c model.Config) (string, *model.Weights) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := model.Synth(src, model.SynthOptions{Config: c, DType: "F32", Seed: 5}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vocab.json", "merges.txt"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte(f+" contents\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w, err := model.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return src, w
}

func TestSaveOpenRoundTrip(t *testing.T) {
	untied := tinyConfig
	untied.TieEmbeddings = false
	for _, c := range []model.Config{tinyConfig, untied} {
		var src string
		var w *model.Weights
		if c.TieEmbeddings {
			src, w = synthDir(t, c)
		} else {
			// model.Synth writes no untied head: use in-memory weights and an empty source
			// folder, so that Save writes config.json from w.Config.
			src, w = t.TempDir(), synthWeights(t, c)
		}
		for _, opt := range []Options{
			{Scheme: Absmax, Bits: 8, Granularity: Granularity{Kind: PerChannel}},
			{Scheme: ZeroPoint, Bits: 4, Granularity: Granularity{PerGroup, 16}, Scope: ScopeAll},
			{Scheme: ZeroPoint, Bits: 8, Granularity: Granularity{Kind: PerTensor}, Preset: PresetArticle, Scope: ScopeLinear},
			{Scheme: Absmax, Bits: 4, Granularity: Granularity{Kind: PerTensor}, Scope: ScopeAll},
		} {
			qw, err := QuantizeWeights(w, opt)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "out")
			if err := Save(dir, src, qw, opt, false); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"config.json", "vocab.json", "merges.txt"} {
				a, _ := os.ReadFile(filepath.Join(src, f))
				b, err := os.ReadFile(filepath.Join(dir, f))
				if (err != nil || string(a) != string(b)) && c.TieEmbeddings {
					t.Errorf("%s not copied: %v", f, err)
				}
			}
			if cfg, err := model.LoadConfig(dir); err != nil || cfg != c {
				t.Errorf("config %+v, %v; want %+v", cfg, err, c)
			}
			if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); !os.IsNotExist(err) {
				t.Errorf("tokenizer.json appeared: %v", err)
			}
			back, bopt, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if bopt == nil || *bopt != opt.withDefaults() {
				t.Fatalf("options %+v, saved %+v", bopt, opt)
			}
			if (back.Head == nil) != c.TieEmbeddings {
				t.Errorf("tied head lost")
			}
			bp := back.Params()
			for i, p := range qw.Params() {
				switch a := (*p.T).(type) {
				case *Tensor:
					b, ok := (*bp[i].T).(*Tensor)
					if !ok {
						t.Fatalf("%s came back as %T", p.Name, *bp[i].T)
					}
					if string(a.Codes) != string(b.Codes) || string(model.F32Bytes(a.Scales)) != string(model.F32Bytes(b.Scales)) ||
						string(model.F32Bytes(a.Zeros)) != string(model.F32Bytes(b.Zeros)) || a.GroupSize != b.GroupSize ||
						!slices.Equal(a.Dims, b.Dims) || a.Scheme != b.Scheme || a.Bits != b.Bits {
						t.Fatalf("%s differs after the round trip", p.Name)
					}
					if string(model.F32Bytes(a.Dequantize().Data)) != string(model.F32Bytes(b.Dequantize().Data)) {
						t.Fatalf("%s dequantizes differently", p.Name)
					}
				case *model.F32:
					b := (*bp[i].T).(*model.F32)
					if string(model.F32Bytes(a.Data)) != string(model.F32Bytes(b.Data)) || !slices.Equal(a.Dims, b.Dims) {
						t.Fatalf("%s differs after the round trip", p.Name)
					}
				}
			}
			if _, err := QuantizeWeights(back, opt); err == nil || !strings.Contains(err.Error(), "already quantized") {
				t.Errorf("quantizing a quantized checkpoint: %v", err)
			}
		}
		if !c.TieEmbeddings {
			continue
		}
		// A plain checkpoint opens with model.Load and nil options.
		plain, popt, err := Open(src)
		if err != nil || popt != nil {
			t.Fatalf("Open(plain) = %v, %v", popt, err)
		}
		plain.Close()
	}
}

func TestSaveRefusals(t *testing.T) {
	src, w := synthDir(t, tinyConfig)
	opt := Options{Scheme: Absmax, Bits: 8, Granularity: Granularity{Kind: PerChannel}}
	qw, err := QuantizeWeights(w, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, force := range []bool{false, true} {
		if err := Save(src, src, qw, opt, force); err == nil || !strings.Contains(err.Error(), "source folder") {
			t.Errorf("Save into the source folder (force %v): %v", force, err)
		}
		if err := Save(src+"/.", src, qw, opt, force); err == nil {
			t.Errorf("Save into the source folder via another path accepted")
		}
	}
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A folder that is not one gpuquant or Hugging Face wrote is never replaced, even with force.
	other := filepath.Join(t.TempDir(), "home")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "notes.txt"), nil, 0o644)
	if err := Save(other, src, qw, opt, true); err == nil || !strings.Contains(err.Error(), "refusing to replace") {
		t.Errorf("forced Save over a folder of other files: %v", err)
	}
	// Nor may the output contain the source (replacing it would delete the source).
	if err := Save(filepath.Dir(src), src, qw, opt, true); err == nil || !strings.Contains(err.Error(), "source folder") {
		t.Errorf("Save over the source's parent: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), nil, 0o644) // an earlier model folder
	marker := filepath.Join(dir, "keep")
	os.WriteFile(marker, nil, 0o644)
	if err := Save(dir, src, qw, opt, false); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Save over an existing folder: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("existing folder touched: %v", err)
	}
	// A failing save (options that do not match the tensors) leaves the old folder alone.
	bad := Options{Scheme: ZeroPoint, Bits: 8, Granularity: Granularity{Kind: PerChannel}}
	if err := Save(dir, src, qw, bad, true); err == nil {
		t.Errorf("Save with mismatched options accepted")
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("failed forced save removed the old folder: %v", err)
	}
	if err := Save(dir, src, qw, opt, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("forced save kept the old folder's files")
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("left-overs next to the output: %v", entries)
	}
	if _, _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
}

// rewriteHeader edits the JSON header of dir/model.safetensors in place (the data section is
// unchanged), padding it to keep 8-byte alignment.
func rewriteHeader(t *testing.T, dir string, edit func(h map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, "model.safetensors")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(data)
	var h map[string]any
	if err := json.Unmarshal(data[8:8+n], &h); err != nil {
		t.Fatal(err)
	}
	edit(h)
	hdr, _ := json.Marshal(h)
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	out = append(append(out, hdr...), data[8+n:]...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenCorrupted(t *testing.T) {
	src, w := synthDir(t, tinyConfig)
	opt := Options{Scheme: ZeroPoint, Bits: 8, Granularity: Granularity{PerGroup, 16}}
	qw, err := QuantizeWeights(w, opt)
	if err != nil {
		t.Fatal(err)
	}
	save := func() string {
		dir := filepath.Join(t.TempDir(), "q")
		if err := Save(dir, src, qw, opt, false); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	// Scale count not matching the codes, written by hand: the file is rebuilt with one scale
	// fewer for h.0.mlp.c_fc.weight.
	dir := save()
	st, m, err := model.OpenSafetensors(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	var ts []model.STensor
	for _, nv := range st.Tensors() {
		raw := append([]byte(nil), nv.TensorView.Data()...)
		shape := model.ShapeOf(nv.TensorView)
		if nv.Name == "h.0.mlp.c_fc.weight.qscale" {
			raw, shape = raw[:len(raw)-4], []int{shape[0] - 1}
		}
		ts = append(ts, model.STensor{Name: nv.Name, DType: nv.TensorView.DType().String(), Shape: shape,
			Fill: func(w2 io.Writer) error { _, err := w2.Write(raw); return err }})
	}
	m.Close()
	meta, _ := readMetadata(filepath.Join(dir, "model.safetensors"))
	if err := model.WriteSafetensors(filepath.Join(dir, "model.safetensors"), ts, meta); err != nil {
		t.Fatal(err)
	}
	_, _, err = Open(dir)
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), `"h.0.mlp.c_fc.weight"`) || !strings.Contains(err.Error(), "model.safetensors") || !strings.Contains(err.Error(), "scales") {
		t.Errorf("scale count mismatch: %v", err)
	}

	// Unknown format_version.
	dir = save()
	rewriteHeader(t, dir, func(h map[string]any) { h["__metadata__"].(map[string]any)["format_version"] = "7" })
	if _, _, err := Open(dir); err == nil || !strings.Contains(err.Error(), `format_version "7"`) {
		t.Errorf("format_version 7: %v", err)
	}

	// Codes with the wrong dtype, and a missing zero-point tensor.
	dir = save()
	rewriteHeader(t, dir, func(h map[string]any) { h["wpe.weight.qcodes"].(map[string]any)["dtype"] = "U8" })
	if _, _, err := Open(dir); err == nil || !strings.Contains(err.Error(), `"wpe.weight"`) {
		t.Errorf("wrong codes dtype: %v", err)
	}
	dir = save()
	rewriteHeader(t, dir, func(h map[string]any) {
		h["__metadata__"].(map[string]any)["scheme"] = "absmax"
	})
	if _, _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "zero-points") {
		t.Errorf("zero-points under absmax: %v", err)
	}
}
