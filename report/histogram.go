// Package report draws the figures of the weight-quantization report: the
// two-panel weight histograms of M. Labonne's "Introduction to Weight
// Quantization" (original weights vs absmax- and zero-point-dequantized
// weights).
//
// The package takes already-binned data (Hist) so it does not depend on how
// the binning is done.
package report

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Hist is counts of values in equal-width bins over [Lo, Hi).
type Hist struct {
	Lo, Hi float64
	Counts []int64
}

// Figure geometry: 10×8 inches at 100 dpi, i.e. 1000×800 pixels.
const (
	figWidth  = 10 * vg.Inch
	figHeight = 8 * vg.Inch
	figDPI    = 100
)

// Series colours (semi-transparent so overlapping bars stay visible).
var (
	colOriginal  = color.NRGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0x80} // blue
	colAbsmax    = color.NRGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0x99} // orange
	colZeroPoint = color.NRGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0x80} // green
)

// HistogramPNG writes the two-panel comparison to path (through a temp file
// in the same folder + rename). The top panel overlays the original and the
// absmax-dequantized histograms, the bottom panel the original and the
// zero-point-dequantized histograms; both share the x axis ("weight value")
// and the y scale (counts, SI-suffixed labels). title names the
// model/tensor selection and is drawn above both panels.
//
// The three histograms must be non-empty and have the same number of bins
// and the same [Lo, Hi) range; counts must be non-negative.
func HistogramPNG(path, title string, orig, absmax, zeropoint Hist) error {
	if err := validate(orig, absmax, zeropoint); err != nil {
		return err
	}
	c, err := render(title, orig, absmax, zeropoint)
	if err != nil {
		return err
	}
	return writePNGAtomic(path, c)
}

func validate(orig, absmax, zeropoint Hist) error {
	named := []struct {
		name string
		h    Hist
	}{{"original", orig}, {"absmax", absmax}, {"zero-point", zeropoint}}
	for _, n := range named {
		h := n.h
		if len(h.Counts) == 0 {
			return fmt.Errorf("report: %s histogram has no bins", n.name)
		}
		if math.IsNaN(h.Lo) || math.IsNaN(h.Hi) || math.IsInf(h.Lo, 0) || math.IsInf(h.Hi, 0) {
			return fmt.Errorf("report: %s histogram range [%g, %g) is not finite", n.name, h.Lo, h.Hi)
		}
		if !(h.Lo < h.Hi) {
			return fmt.Errorf("report: %s histogram range [%g, %g) is empty (need Lo < Hi)", n.name, h.Lo, h.Hi)
		}
		for i, v := range h.Counts {
			if v < 0 {
				return fmt.Errorf("report: %s histogram bin %d has negative count %d", n.name, i, v)
			}
		}
	}
	for _, n := range named[1:] {
		if len(n.h.Counts) != len(orig.Counts) {
			return fmt.Errorf("report: %s histogram has %d bins, original has %d", n.name, len(n.h.Counts), len(orig.Counts))
		}
		if n.h.Lo != orig.Lo || n.h.Hi != orig.Hi {
			return fmt.Errorf("report: %s histogram range [%g, %g) differs from original [%g, %g)",
				n.name, n.h.Lo, n.h.Hi, orig.Lo, orig.Hi)
		}
	}
	return nil
}

// bars turns precomputed counts into a gonum histogram plotter (no
// re-binning: one bar per given bin).
func bars(h Hist, fill color.Color) *plotter.Histogram {
	n := len(h.Counts)
	w := (h.Hi - h.Lo) / float64(n)
	bins := make([]plotter.HistogramBin, n)
	for i, c := range h.Counts {
		bins[i] = plotter.HistogramBin{
			Min:    h.Lo + float64(i)*w,
			Max:    h.Lo + float64(i+1)*w,
			Weight: float64(c),
		}
	}
	bins[n-1].Max = h.Hi // avoid rounding drift at the right edge
	return &plotter.Histogram{
		Bins:      bins,
		Width:     w,
		FillColor: fill,
		// No outline: with 100 narrow bins, outlines would dominate the fill.
		LineStyle: draw.LineStyle{Width: 0},
	}
}

func maxCount(hs ...Hist) int64 {
	var m int64
	for _, h := range hs {
		for _, c := range h.Counts {
			m = max(m, c)
		}
	}
	return m
}

// panel builds one of the two stacked plots.
func panel(name string, orig, deq Hist, deqLabel string, deqColor color.Color, ymax float64, bottom bool) *plot.Plot {
	p := plot.New()
	p.Title.Text = name
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Title.Padding = vg.Points(4)

	ho := bars(orig, colOriginal)
	hd := bars(deq, deqColor)
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil // drawn by vgrid so the top panel has it too
	p.Add(grid, vgrid{ticks: linearTicks{n: 8}, style: plotter.NewGrid().Vertical}, ho, hd)

	p.X.Min, p.X.Max = orig.Lo, orig.Hi
	p.Y.Min, p.Y.Max = 0, ymax
	p.X.Padding, p.Y.Padding = 0, 0

	p.Y.Label.Text = "count"
	p.Y.Tick.Marker = SITicks{N: 6}
	p.Y.Tick.Label.Font.Size = vg.Points(11)
	p.X.Tick.Label.Font.Size = vg.Points(11)
	p.X.Label.TextStyle.Font.Size = vg.Points(12)
	p.Y.Label.TextStyle.Font.Size = vg.Points(12)
	if bottom {
		p.X.Label.Text = "weight value"
		p.X.Tick.Marker = linearTicks{n: 8}
	} else {
		// Shared x axis: keep the tick marks, drop the labels.
		p.X.Tick.Marker = unlabelled{linearTicks{n: 8}}
	}

	p.Legend.Add("original", ho)
	p.Legend.Add(deqLabel, hd)
	// Upper left: weights are centred on 0, so the corners are empty.
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.Padding = vg.Points(3)
	p.Legend.XOffs = vg.Points(10)
	p.Legend.YOffs = -vg.Points(6)
	p.Legend.TextStyle.Font.Size = vg.Points(12)
	p.Legend.ThumbnailWidth = vg.Points(20)
	return p
}

func render(title string, orig, absmax, zeropoint Hist) (img *vgimg.Canvas, err error) {
	// gonum/plot reports some problems by panicking; surface them as errors.
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("report: drawing histogram: %v", r)
		}
	}()
	ymax := float64(maxCount(orig, absmax, zeropoint))
	if ymax == 0 {
		ymax = 1
	}
	ymax *= 1.08 // headroom for the legend

	top := panel("Original vs absmax", orig, absmax, "absmax (dequantized)", colAbsmax, ymax, false)
	bot := panel("Original vs zero-point", orig, zeropoint, "zero-point (dequantized)", colZeroPoint, ymax, true)

	img = vgimg.NewWith(vgimg.UseWH(figWidth, figHeight), vgimg.UseDPI(figDPI))
	dc := draw.New(img)

	// Figure title above both panels, shrunk and wrapped to fit the width.
	titleSty := top.Title.TextStyle
	titleSty.Font.Weight = xfont.WeightBold
	titleSty.XAlign = draw.XCenter
	titleSty.YAlign = draw.YTop
	margin := vg.Points(10)
	titleH := vg.Length(0)
	if title != "" {
		var text string
		text, titleSty.Font.Size = fitTitle(titleSty, title, dc.Max.X-dc.Min.X-2*margin)
		titleH = titleSty.Height(text) + vg.Points(10)
		dc.FillText(titleSty, vg.Point{X: (dc.Min.X + dc.Max.X) / 2, Y: dc.Max.Y - margin}, text)
	}

	tiles := draw.Tiles{
		Rows:      2,
		Cols:      1,
		PadY:      vg.Points(14),
		PadTop:    margin + titleH,
		PadBottom: margin,
		PadLeft:   margin,
		PadRight:  vg.Points(18),
	}
	plots := [][]*plot.Plot{{top}, {bot}}
	canvases := plot.Align(plots, tiles, dc)
	top.Draw(canvases[0][0])
	bot.Draw(canvases[1][0])
	return img, nil
}

func writePNGAtomic(path string, c *vgimg.Canvas) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("report: create temp file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = (vgimg.PngCanvas{Canvas: c}).WriteTo(f); err != nil {
		return fmt.Errorf("report: encode PNG: %w", err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("report: chmod %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("report: close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("report: rename to %s: %w", path, err)
	}
	return nil
}

// unlabelled wraps a ticker and drops all labels (for the shared x axis of
// the top panel).
type unlabelled struct{ plot.Ticker }

func (u unlabelled) Ticks(min, max float64) []plot.Tick {
	ts := u.Ticker.Ticks(min, max)
	for i := range ts {
		ts[i].Label = ""
	}
	return ts
}

// fitTitle returns title word-wrapped to at most two lines of width at most
// maxW, using the largest of a few font sizes that allows it; failing that,
// it wraps at the smallest size (breaking over-long words) onto as many
// lines as needed.
func fitTitle(sty text.Style, title string, maxW vg.Length) (string, vg.Length) {
	title = strings.Join(strings.Fields(title), " ")
	sizes := []vg.Length{vg.Points(16), vg.Points(14), vg.Points(12)}
	for _, sz := range sizes {
		sty.Font.Size = sz
		if lines := wrap(sty, title, maxW); len(lines) <= 2 {
			return strings.Join(lines, "\n"), sz
		}
	}
	sty.Font.Size = vg.Points(11)
	return strings.Join(wrap(sty, title, maxW), "\n"), sty.Font.Size
}

// wrap greedily word-wraps s into lines no wider than maxW; words wider than
// maxW are broken between characters.
func wrap(sty text.Style, s string, maxW vg.Length) []string {
	var lines []string
	cur := ""
	for _, w := range strings.Fields(s) {
		cand := w
		if cur != "" {
			cand = cur + " " + w
		}
		if sty.Width(cand) <= maxW {
			cur = cand
			continue
		}
		if cur != "" {
			lines = append(lines, cur)
			cur = ""
		}
		for sty.Width(w) > maxW {
			r := []rune(w)
			n := len(r) - 1
			for n > 1 && sty.Width(string(r[:n])) > maxW {
				n--
			}
			lines = append(lines, string(r[:n]))
			w = string(r[n:])
		}
		cur = w
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

// vgrid draws vertical grid lines at the labelled ticks of a ticker,
// independently of the axis' own tick marker (the top panel's x ticks are
// unlabelled, so plotter.Grid would draw no vertical lines there).
type vgrid struct {
	ticks plot.Ticker
	style draw.LineStyle
}

func (g vgrid) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	for _, t := range g.ticks.Ticks(p.X.Min, p.X.Max) {
		if t.IsMinor() {
			continue
		}
		x := trX(t.Value)
		c.StrokeLine2(g.style, x, c.Min.Y, x, c.Max.Y)
	}
}
