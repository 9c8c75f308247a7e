package report

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// gaussHist returns counts of n samples of N(mu, sigma²) binned over
// [lo, hi) in bins equal-width bins (expected counts, computed with erf).
func gaussHist(lo, hi float64, bins int, n, mu, sigma float64) Hist {
	h := Hist{Lo: lo, Hi: hi, Counts: make([]int64, bins)}
	w := (hi - lo) / float64(bins)
	cdf := func(x float64) float64 { return 0.5 * (1 + math.Erf((x-mu)/(sigma*math.Sqrt2))) }
	for i := range h.Counts {
		a, b := lo+float64(i)*w, lo+float64(i+1)*w
		h.Counts[i] = int64(math.Round(n * (cdf(b) - cdf(a))))
	}
	return h
}

// spiky mimics dequantized weights: the mass of some bins is moved into
// their neighbours (values snap to a coarse grid).
func spiky(h Hist, period int) Hist {
	out := Hist{Lo: h.Lo, Hi: h.Hi, Counts: append([]int64(nil), h.Counts...)}
	for i := 1; i+1 < len(out.Counts); i += period {
		half := out.Counts[i] / 2
		out.Counts[i-1] += half
		out.Counts[i+1] += out.Counts[i] - half
		out.Counts[i] = 0
	}
	return out
}

func synthetic() (orig, absmax, zp Hist) {
	orig = gaussHist(-1, 1, 100, 7e6, 0, 0.12)
	absmax = spiky(orig, 3)
	zp = spiky(gaussHist(-1, 1, 100, 7e6, 0.005, 0.12), 4)
	return
}

func TestHistogramPNG(t *testing.T) {
	orig, absmax, zp := synthetic()
	path := filepath.Join(t.TempDir(), "hist.png")
	if err := HistogramPNG(path, "gpt2 · all linear weights (transformer.h.*.{attn,mlp}.*)", orig, absmax, zp); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("REPORT_KEEP_PNG"); keep != "" {
		if err := os.WriteFile(keep, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1000 || b.Dy() != 800 {
		t.Fatalf("image size %dx%d, want 1000x800", b.Dx(), b.Dy())
	}
	colors := map[[4]uint32]bool{}
	nonWhite := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			colors[[4]uint32{r >> 8, g >> 8, bl >> 8, a >> 8}] = true
			if r>>8 < 250 || g>>8 < 250 || bl>>8 < 250 {
				nonWhite++
			}
		}
	}
	if len(colors) < 20 {
		t.Errorf("only %d distinct colours: image looks blank", len(colors))
	}
	if total := (b.Dx() / 2) * (b.Dy() / 2); nonWhite < total/50 {
		t.Errorf("only %d of %d sampled pixels are non-white", nonWhite, total)
	}
	// No temp files left behind.
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("directory has %d entries, want only hist.png", len(ents))
	}
}

func TestHistogramPNGAllZero(t *testing.T) {
	z := Hist{Lo: -1, Hi: 1, Counts: make([]int64, 100)}
	if err := HistogramPNG(filepath.Join(t.TempDir(), "z.png"), "", z, z, z); err != nil {
		t.Fatal(err)
	}
}

func TestHistogramPNGErrors(t *testing.T) {
	orig, absmax, zp := synthetic()
	short := Hist{Lo: -1, Hi: 1, Counts: make([]int64, 50)}
	shifted := Hist{Lo: -2, Hi: 2, Counts: make([]int64, 100)}
	neg := Hist{Lo: -1, Hi: 1, Counts: make([]int64, 100)}
	neg.Counts[7] = -3
	dir := t.TempDir()
	cases := []struct {
		name       string
		o, a, z    Hist
		wantSubstr string
	}{
		{"empty orig", Hist{Lo: -1, Hi: 1}, absmax, zp, "original histogram has no bins"},
		{"empty zp", orig, absmax, Hist{Lo: -1, Hi: 1}, "zero-point histogram has no bins"},
		{"bin count", orig, short, zp, "absmax histogram has 50 bins, original has 100"},
		{"range", orig, absmax, shifted, "zero-point histogram range [-2, 2) differs from original [-1, 1)"},
		{"inverted", Hist{Lo: 1, Hi: -1, Counts: orig.Counts}, absmax, zp, "need Lo < Hi"},
		{"nan", Hist{Lo: math.NaN(), Hi: 1, Counts: orig.Counts}, absmax, zp, "not finite"},
		{"negative", orig, neg, zp, "absmax histogram bin 7 has negative count -3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name+".png")
			err := HistogramPNG(path, "t", c.o, c.a, c.z)
			if err == nil {
				t.Fatal("want error, got nil")
			}
			if !strings.Contains(err.Error(), c.wantSubstr) {
				t.Fatalf("error %q does not contain %q", err, c.wantSubstr)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("file written despite error (stat: %v)", err)
			}
		})
	}
}

func TestHistogramPNGBadDir(t *testing.T) {
	orig, absmax, zp := synthetic()
	err := HistogramPNG(filepath.Join(t.TempDir(), "missing", "h.png"), "t", orig, absmax, zp)
	if err == nil || !strings.Contains(err.Error(), "create temp file") {
		t.Fatalf("want create temp file error, got %v", err)
	}
}

func TestSILabel(t *testing.T) {
	cases := []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{1, "1"},
		{250, "250"},
		{999, "999"},
		{1000, "1k"},
		{1500, "1.5k"},
		{400_000, "400k"},
		{999_999.9, "1M"},
		{2_500_000, "2.5M"},
		{5_000_000, "5M"},
		{1_250_000, "1.25M"},
		{3e9, "3G"},
		{2e12, "2T"},
		{-1500, "-1.5k"},
		{0.5, "0.5"},
		{2.9999999999e6, "3M"},
	}
	for _, c := range cases {
		if got := SILabel(c.v); got != c.want {
			t.Errorf("SILabel(%g) = %q, want %q", c.v, got, c.want)
		}
	}
}

func TestSITicks(t *testing.T) {
	ts := SITicks{}.Ticks(0, 5.4e6)
	labelled := 0
	for _, tk := range ts {
		if tk.Label == "" {
			continue
		}
		labelled++
		if strings.Contains(tk.Label, ".00") || len(tk.Label) > 6 {
			t.Errorf("tick %g has label %q", tk.Value, tk.Label)
		}
		if tk.Label != SILabel(tk.Value) {
			t.Errorf("tick %g label %q, want %q", tk.Value, tk.Label, SILabel(tk.Value))
		}
	}
	if labelled < 2 {
		t.Errorf("only %d labelled ticks in %v", labelled, ts)
	}
	// Counts: small ranges must still give integer ticks.
	for _, hi := range []float64{1.08, 3, 7.5, 15, 27, 130} {
		for _, tk := range (SITicks{}).Ticks(0, hi) {
			if tk.Value != math.Trunc(tk.Value) {
				t.Errorf("SITicks(0, %g) has non-integer tick %g", hi, tk.Value)
			}
		}
	}
}

func TestLinearTicks(t *testing.T) {
	var labels []string
	for _, tk := range (linearTicks{n: 8}).Ticks(-1, 1) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	want := "-1 -0.75 -0.5 -0.25 0 0.25 0.5 0.75 1"
	if got := strings.Join(labels, " "); got != want {
		t.Errorf("x labels %q, want %q", got, want)
	}
}

func TestFitTitle(t *testing.T) {
	p := plot.New()
	sty := p.Title.TextStyle
	maxW := 9 * vg.Inch
	short, sz := fitTitle(sty, "gpt2 · all weights", maxW)
	if short != "gpt2 · all weights" || sz != vg.Points(16) {
		t.Errorf("short title: %q at %v", short, sz)
	}
	long := strings.Repeat("model.layers.*.mlp.gate_proj.weight ", 12)
	got, sz := fitTitle(sty, long, maxW)
	sty.Font.Size = sz
	for _, line := range strings.Split(got, "\n") {
		if w := sty.Width(line); w > maxW {
			t.Errorf("line %q is %v wide, max %v", line, w, maxW)
		}
	}
	if strings.Join(strings.Fields(got), " ") != strings.TrimSpace(long) {
		t.Errorf("wrapped title lost words: %q", got)
	}
}
