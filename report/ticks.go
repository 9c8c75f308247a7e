package report

import (
	"math"
	"strconv"

	"gonum.org/v1/plot"
)

// SITicks is a plot.Ticker that places about N labelled ticks at "nice"
// values (1, 2, 2.5, 5 × 10^k steps) plus unlabelled minor ticks, and labels
// them with SI suffixes ("400k", "2.5M") instead of gonum/plot's fixed-point
// labels ("5000000.00"). It is meant for counts: ticks are integers (the
// step is at least 1). N <= 0 means 6.
type SITicks struct{ N int }

var _ plot.Ticker = SITicks{}

// Ticks implements plot.Ticker.
func (t SITicks) Ticks(min, max float64) []plot.Tick {
	return niceTicks(min, max, t.N, 1, SILabel)
}

// linearTicks is a plot.Ticker like SITicks with plain decimal labels
// ("-0.75", "0.5").
type linearTicks struct{ n int }

func (t linearTicks) Ticks(min, max float64) []plot.Tick {
	return niceTicks(min, max, t.n, 0, func(v float64) string {
		return strconv.FormatFloat(v, 'f', -1, 64)
	})
}

// niceTicks returns labelled ticks every step over [lo, hi], where step is
// the 1/2/2.5/5 × 10^k value closest (in log scale) to (hi-lo)/n, plus
// unlabelled minor ticks between them. With minStep > 0, steps (major and
// minor) are at least minStep (use 1 for integer-valued axes).
func niceTicks(lo, hi float64, n int, minStep float64, format func(float64) string) []plot.Tick {
	if n <= 0 {
		n = 6
	}
	if !(hi > lo) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return []plot.Tick{{Value: lo, Label: format(lo)}}
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	best, bestDist, minorDiv := 0.0, math.Inf(1), 0
	for _, c := range []struct {
		m   float64
		div int
	}{{1, 2}, {2, 4}, {2.5, 5}, {5, 5}, {10, 2}} {
		if minStep > 0 && notMultiple(c.m*mag, minStep) {
			continue
		}
		if d := math.Abs(math.Log(c.m * mag / raw)); d < bestDist {
			best, bestDist, minorDiv = c.m*mag, d, c.div
		}
	}
	step := best
	if step == 0 { // every candidate was finer than minStep
		step, minorDiv = minStep, 1
	}
	minor := step / float64(minorDiv)
	if minStep > 0 && notMultiple(minor, minStep) {
		minor, minorDiv = step, 1
	}
	eps := step * 1e-9
	// Round tick values to the step's precision to drop float noise.
	digits := max(0, 1-int(math.Floor(math.Log10(step)))) + 1
	round := func(v float64) float64 {
		p := math.Pow(10, float64(digits))
		return math.Round(v*p) / p
	}
	var ts []plot.Tick
	first := math.Ceil((lo - eps) / minor)
	for i := first; i*minor <= hi+eps; i++ {
		v := round(i * minor)
		if math.Mod(i, float64(minorDiv)) == 0 {
			ts = append(ts, plot.Tick{Value: v, Label: format(v)})
		} else {
			ts = append(ts, plot.Tick{Value: v})
		}
	}
	return ts
}

var siPrefixes = []struct {
	scale  float64
	suffix string
}{
	{1e18, "E"},
	{1e15, "P"},
	{1e12, "T"},
	{1e9, "G"},
	{1e6, "M"},
	{1e3, "k"},
}

// SILabel formats v compactly with an SI suffix, keeping up to three
// decimals of the scaled mantissa: 0 → "0", 1500 → "1.5k",
// 2_500_000 → "2.5M", 3e9 → "3G", 250 → "250", -1500 → "-1.5k".
func SILabel(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	a := math.Abs(v)
	// Round to 3 decimals first so that e.g. 999_999.9 reads "1M" rather
	// than "1000k", and tick values with float noise print cleanly.
	for _, p := range siPrefixes {
		m := math.Round(a/p.scale*1000) / 1000
		if m >= 1 {
			return sign(v) + strconv.FormatFloat(m, 'f', -1, 64) + p.suffix
		}
	}
	m := math.Round(a*1000) / 1000
	if m == 0 {
		return "0"
	}
	return sign(v) + strconv.FormatFloat(m, 'f', -1, 64)
}

func sign(v float64) string {
	if v < 0 {
		return "-"
	}
	return ""
}

// notMultiple reports whether v is not (close to) an integer multiple of m.
func notMultiple(v, m float64) bool {
	q := v / m
	return q < 1-1e-9 || math.Abs(q-math.Round(q)) > 1e-9
}
