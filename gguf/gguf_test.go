package gguf

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/model/tokenizer"
	"github.com/gpuquant/gpuquant/quantize"
)

func tiny(t testing.TB) *model.Weights {
	t.Helper()
	dir := t.TempDir()
	if err := model.Synth(dir, model.SynthOptions{Config: model.Presets["tiny"], DType: "F32", Seed: 1}); err != nil {
		t.Fatal(err)
	}
	w, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func group32(scheme quantize.Scheme, bits int) quantize.Options {
	return quantize.Options{Scheme: scheme, Bits: bits, Granularity: quantize.Granularity{Kind: quantize.PerGroup, Size: 32}}
}

// Blocks written out by hand: d as IEEE half bits, then the codes.
func TestBlocksByHand(t *testing.T) {
	x := make([]float32, 32)
	for i := range x {
		x[i] = float32(i - 16) // −16 .. 15
	}
	// Q8_0: d = 16/127; q = round(x·127/16): −16 → −127, 15 → round(119.0625) = 119, 1 → 8 (7.9375).
	q := make([]int8, 32)
	d := quantizeQ8(x, q)
	if d != model.Float32ToHalf(16.0/127) || q[0] != -127 || q[31] != 119 || q[17] != 8 || q[16] != 0 {
		t.Fatalf("Q8_0: d %#x codes %v", d, q)
	}
	// Q4_0: the largest magnitude is −16, so d = −16/−8 = 2 and −16 gets code −8; 15 → ⌊7.5+8.5⌋−8 = 8,
	// capped at 7; 3 → ⌊1.5+8.5⌋−8 = 2 (halves round up).
	d = quantizeQ4(x, q)
	if d != model.Float32ToHalf(2) || q[0] != -8 || q[31] != 7 || q[19] != 2 || q[16] != 0 {
		t.Fatalf("Q4_0: d %#x codes %v", d, q)
	}
	blk := make([]byte, q4Block)
	putQ4Block(blk, d, q)
	// Byte j holds value j (low nibble) and value j+16 (high), each as q+8.
	if blk[2] != byte(q[0]+8)|byte(q[16]+8)<<4 || blk[17] != byte(q[15]+8)|byte(q[31]+8)<<4 {
		t.Fatalf("Q4_0 packing % x", blk)
	}
	got := make([]float32, 32)
	decodeBlocks(Q4_0, blk, got)
	for i := range got {
		if want := float32(q[i]) * 2; got[i] != want {
			t.Fatalf("Q4_0 value %d decodes to %v, want %v", i, got[i], want)
		}
	}
}

func export(t *testing.T, w *model.Weights, format TensorType) (string, *ExportReport) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.gguf")
	rep, err := Export(path, w, tokenizer.GPT2(), format)
	if err != nil {
		t.Fatal(err)
	}
	return path, rep
}

// F32 export and import give back every value bit for bit, and the tokenizer encodes alike.
func TestF32RoundTrip(t *testing.T) {
	w := tiny(t)
	path, rep := export(t, w, F32)
	if rep.Direct != 0 || len(rep.Requantized) != 0 {
		t.Errorf("F32 export report %+v", rep)
	}
	back, quant, tok, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if quant != nil || back.Config != w.Config {
		t.Fatalf("quant %v, config %+v want %+v", quant, back.Config, w.Config)
	}
	bp := back.Params()
	for i, p := range w.Params() {
		if !slices.Equal((*p.T).(*model.F32).Data, (*bp[i].T).(*model.F32).Data) {
			t.Fatalf("%s differs after the round trip", p.Name)
		}
	}
	text := "Hello, world!\n\nIt's 2026 — naïve café <|endoftext|> done."
	if a, b := tok.Encode(text), tokenizer.GPT2().Encode(text); !slices.Equal(a, b) {
		t.Fatalf("tokens %v, GPT-2's %v", a, b)
	}
}

// Our absmax group:32 codes go into Q8_0 and Q4_0 unchanged; loading them back gives the same
// codes (Q8_0) or the same values (Q4_0, as zero-point codes) with the half-rounded scale.
func TestQuantizedCodesExportDirectly(t *testing.T) {
	w := tiny(t)
	for _, c := range []struct {
		bits   int
		format TensorType
	}{{8, Q8_0}, {4, Q4_0}} {
		q, err := quantize.QuantizeWeights(w, group32(quantize.Absmax, c.bits))
		if err != nil {
			t.Fatal(err)
		}
		path, rep := export(t, q, c.format)
		matrices := 4*w.Config.NLayer + 2
		if rep.Direct != matrices || len(rep.Requantized) != 0 || !(rep.HalfScaleMaxRel > 0 && rep.HalfScaleMaxRel <= 1.0/2048) {
			t.Errorf("%s: report %+v (want %d direct, half-scale change in (0, 2^-11])", c.format, rep, matrices)
		}
		back, quant, _, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		want := group32(quantize.Absmax, 8)
		if c.format == Q4_0 {
			want = group32(quantize.ZeroPoint, 4)
		}
		if quant == nil || *quant != want {
			t.Errorf("%s: loaded as %v, want %v", c.format, quant, want)
		}
		bp := back.Params()
		for i, p := range q.Params() {
			src, ok := (*p.T).(*quantize.Tensor)
			if !ok {
				continue
			}
			got := (*bp[i].T).(*quantize.Tensor)
			for j := range src.Len() {
				if c.format == Q8_0 && got.Code(j) != src.Code(j) {
					t.Fatalf("%s %s: code %d is %d, exported %d", c.format, p.Name, j, got.Code(j), src.Code(j))
				}
			}
			a, b := src.Dequantize().Data, got.Dequantize().Data
			for j := range a {
				if e := math.Abs(float64(a[j] - b[j])); e > 1.0/1024*math.Abs(float64(a[j]))+1e-9 {
					t.Fatalf("%s %s: value %d is %v, ours %v", c.format, p.Name, j, b[j], a[j])
				}
			}
		}
	}
}

// Weights on another grid are quantized afresh, and the error is reported.
func TestRequantizationReported(t *testing.T) {
	w := tiny(t)
	q, err := quantize.QuantizeWeights(w, quantize.Options{Scheme: quantize.ZeroPoint, Bits: 8, Granularity: quantize.Granularity{Kind: quantize.PerChannel}})
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []*model.Weights{w, q} {
		_, rep := export(t, src, Q8_0)
		if rep.Direct != 0 || len(rep.Requantized) != 4*w.Config.NLayer+2 {
			t.Fatalf("report %+v", rep)
		}
		for _, e := range rep.Requantized {
			// Q8_0's step is max|x|/127 per block of 32, so |error| ≤ half of it; the synthesized
			// weights are N(0, 0.02), well under 1 in magnitude.
			if !(e.MaxAbsErr > 0 && e.MaxAbsErr < 0.5/127 && e.RMS < e.MaxAbsErr) {
				t.Errorf("%s: %+v", e.Name, e)
			}
		}
	}
}

func TestTokenizerRebuilt(t *testing.T) {
	g := tokenizer.GPT2()
	tokens := make([]string, g.VocabSize())
	for i := range tokens {
		tokens[i] = g.Token(int32(i))
	}
	tok, err := tokenizer.New(tokens, g.Merges(), []int32{50256}, "test")
	if err != nil {
		t.Fatal(err)
	}
	text := "  leading spaces, numbers 123456 and\ttabs\r\n<|endoftext|>after"
	if a, b := tok.Encode(text), g.Encode(text); !slices.Equal(a, b) {
		t.Fatalf("rebuilt %v, GPT-2 %v", a, b)
	}
	if _, err := tokenizer.New(tokens, []string{"Ġ"}, nil, "test"); err == nil {
		t.Error("a malformed merge was accepted")
	}
}

func writeBytes(b []byte) func(io.Writer) error {
	return func(w io.Writer) error { _, err := w.Write(b); return err }
}

// smallFile is a valid two-tensor GGUF image for the bad-input tests.
func smallFile(t testing.TB) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.gguf")
	kv := []KV{{"general.architecture", "gpt2"}, {"a.list", Array{TypeInt32, []int32{1, 2, 3}}}, {"a.name", "x"}}
	ts := []Tensor{
		{Name: "v", Dims: []int64{3}, Type: F32, Fill: writeBytes(model.F32Bytes([]float32{1, 2, 3}))},
		{Name: "q", Dims: []int64{32, 2}, Type: Q8_0, Fill: writeBytes(quantizeBlocks(make([]float32, 64), Q8_0))},
	}
	if err := Write(path, kv, ts); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseBadInput(t *testing.T) {
	data := smallFile(t)
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != 2 || f.Get("a.name") != "x" || !slices.Equal(f.Get("a.list").(Array).Values.([]int32), []int32{1, 2, 3}) {
		t.Fatalf("parsed %+v", f)
	}
	last := f.Tensors[len(f.Tensors)-1].Data
	end := len(data) - (cap(last) - len(last)) // the alignment padding after the last tensor is optional
	for n := range end {
		if _, err := Parse(data[:n]); err == nil {
			t.Fatalf("a file cut to %d of %d bytes parsed", n, len(data))
		}
	}
	// The "q" tensor info: name, dimension count, 2 dimensions, type, offset.
	qType := bytes.Index(data, []byte("\x01\x00\x00\x00\x00\x00\x00\x00q")) + 9 + 4 + 16
	put32 := func(off int, v uint32) []byte {
		b := bytes.Clone(data)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	put64 := func(off int, v uint64) []byte {
		b := bytes.Clone(data)
		binary.LittleEndian.PutUint64(b[off:], v)
		return b
	}
	// Offsets: magic 0, version 4, tensor count 8, metadata count 16, first key's length 24.
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"magic":           {append([]byte("GGUX"), data[4:]...), "not a GGUF file"},
		"tensor count":    {put64(8, 1<<60), "tensor count"},
		"metadata count":  {put64(16, 1<<60), "metadata count"},
		"key length":      {put64(24, 1<<40), "truncated"},
		"version":         {append(append([]byte("GGUF"), 9, 0, 0, 0), data[8:]...), "version 9"},
		"tensor type":     {put32(qType, 99), "unsupported tensor type"},
		"dimensions":      {put32(qType-20, 7), "7 dimensions"},
		"row blocks":      {put64(qType-16, 33), "not whole blocks"},
		"offset":          {put64(qType+4, 3), "alignment"},
		"duplicate names": {bytes.Replace(data, []byte("\x01\x00\x00\x00\x00\x00\x00\x00q"), []byte("\x01\x00\x00\x00\x00\x00\x00\x00v"), 1), "twice"},
	} {
		_, err := Parse(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (want an error containing %q)", name, err, c.want)
		}
	}
}

// Load refuses files that are GGUF but not a GPT-2 we can run, naming the field.
func TestLoadBadInput(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.gguf")
	if err := os.WriteFile(path, smallFile(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := Load(path); err == nil || !strings.Contains(err.Error(), "gpt2.context_length") {
		t.Errorf("a GGUF without hyperparameters: %v", err)
	}
	llama := filepath.Join(dir, "llama.gguf")
	if err := Write(llama, []KV{{"general.architecture", "llama"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := Load(llama); err == nil || !strings.Contains(err.Error(), "general.architecture") {
		t.Errorf("a llama GGUF: %v", err)
	}
	if _, _, _, err := Load(filepath.Join(dir, "missing.gguf")); err == nil {
		t.Error("a missing file loaded")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(smallFile(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		for _, ti := range file.Tensors { // every accepted tensor lies inside the image
			if int64(len(ti.Data)) != ti.Type.DataBytes(ti.Elements()) {
				t.Fatalf("tensor %q: %d bytes for %d values of %s", ti.Name, len(ti.Data), ti.Elements(), ti.Type)
			}
		}
	})
}
