package quantize

import (
	"fmt"
	"strconv"
	"strings"
)

// Granularity is how many values share one scale (and zero-point).
type Granularity struct {
	Kind string // "tensor", "channel" (one group per output row) or "group" (Size consecutive values of a row)
	Size int    // the group size, for Kind "group" only
}

// Granularity kinds.
const (
	PerTensor  = "tensor"
	PerChannel = "channel"
	PerGroup   = "group"
)

// ParseGranularity reads "tensor", "channel" or "group:N" (N > 0).
func ParseGranularity(s string) (Granularity, error) {
	switch s {
	case PerTensor, PerChannel:
		return Granularity{Kind: s}, nil
	}
	if n, ok := strings.CutPrefix(s, PerGroup+":"); ok {
		size, err := strconv.Atoi(n)
		if err != nil || size <= 0 {
			return Granularity{}, fmt.Errorf("quantize: bad group size %q in granularity %q (want a positive integer, as in group:64)", n, s)
		}
		return Granularity{Kind: PerGroup, Size: size}, nil
	}
	return Granularity{}, fmt.Errorf("quantize: unknown granularity %q (want tensor, channel or group:N)", s)
}

// String is the form ParseGranularity reads: "tensor", "channel" or "group:64".
func (g Granularity) String() string {
	if g.Kind == PerGroup {
		return fmt.Sprintf("%s:%d", PerGroup, g.Size)
	}
	return g.Kind
}

func (g Granularity) validate() error {
	switch g.Kind {
	case PerTensor, PerChannel:
		if g.Size != 0 {
			return fmt.Errorf("granularity %q takes no size (got %d)", g.Kind, g.Size)
		}
		return nil
	case PerGroup:
		if g.Size <= 0 {
			return fmt.Errorf("group size %d must be positive", g.Size)
		}
		return nil
	case "":
		return fmt.Errorf("granularity not set (want tensor, channel or group:N)")
	}
	return fmt.Errorf("unknown granularity %q (want tensor, channel or group:N)", g.Kind)
}

// GroupSize is the number of consecutive row-major values sharing a scale in a tensor of the
// given shape; name is used in errors.
func (g Granularity) GroupSize(name string, dims []int) (int, error) {
	n := 1
	for _, d := range dims {
		n *= d
	}
	row := n
	if len(dims) > 0 {
		row = dims[len(dims)-1]
	}
	if n == 0 {
		return 0, fmt.Errorf("cannot quantize an empty tensor (shape %v)", dims)
	}
	switch g.Kind {
	case PerTensor:
		return n, nil
	case PerChannel:
		return row, nil
	case PerGroup:
		if row%g.Size != 0 {
			of := ""
			if name != "" {
				of = " of " + name
			}
			return 0, fmt.Errorf("group size %d does not divide row length %d%s", g.Size, row, of)
		}
		return g.Size, nil
	}
	return 0, g.validate()
}

// Presets.
const (
	// PresetStandard uses the full code range: absmax scale qmax/max|x| (127 or 7), zero-point
	// scale (2^bits − 1)/range.
	PresetStandard = "standard"
	// PresetArticle reproduces the tutorial's int8 constants: absmax scale 100/max|x|, zero-point
	// scale 200/range. At 4 bits it is the same as standard.
	PresetArticle = "article"
)

// Scopes.
const (
	// ScopeWeights quantizes every 2-D matrix: wte, wpe, the four projections of every block and
	// an untied head. It is the default.
	ScopeWeights = "weights"
	// ScopeAll quantizes every parameter, LayerNorm gains and biases included.
	ScopeAll = "all"
	// ScopeLinear quantizes only the four projection matrices of each block (model.KindLinear).
	ScopeLinear = "linear"
)

// Options choose a quantization.
type Options struct {
	Scheme      Scheme
	Bits        int // 8 or 4
	Granularity Granularity
	Preset      string // PresetStandard (default, "") or PresetArticle
	Scope       string // ScopeWeights (default, ""), ScopeAll or ScopeLinear
}

// ParseScheme reads "absmax" or "zeropoint" (also "zero-point").
func ParseScheme(s string) (Scheme, error) {
	switch s {
	case string(Absmax):
		return Absmax, nil
	case string(ZeroPoint), "zero-point":
		return ZeroPoint, nil
	}
	return "", fmt.Errorf("quantize: unknown scheme %q (want absmax or zeropoint)", s)
}

// withDefaults fills in the default preset and scope.
func (o Options) withDefaults() Options {
	if o.Preset == "" {
		o.Preset = PresetStandard
	}
	if o.Scope == "" {
		o.Scope = ScopeWeights
	}
	return o
}

// Validate reports unsupported bits, a bad granularity and unknown schemes, presets and scopes.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.Scheme != Absmax && o.Scheme != ZeroPoint:
		return fmt.Errorf("quantize: unknown scheme %q (want absmax or zeropoint)", o.Scheme)
	case o.Bits != 8 && o.Bits != 4:
		return fmt.Errorf("quantize: unsupported bits %d (want 8 or 4)", o.Bits)
	case o.Preset != PresetStandard && o.Preset != PresetArticle:
		return fmt.Errorf("quantize: unknown preset %q (want standard or article)", o.Preset)
	case o.Scope != ScopeWeights && o.Scope != ScopeAll && o.Scope != ScopeLinear:
		return fmt.Errorf("quantize: unknown scope %q (want weights, all or linear)", o.Scope)
	}
	if err := o.Granularity.validate(); err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	return nil
}

// String names the quantization for file names and reports: scheme-intBITS-granularity, then
// "-article" for the article preset and "-all"/"-linear" for a non-default scope, as in
// "absmax-int8-channel" or "zeropoint-int4-group64-linear".
func (o Options) String() string {
	o = o.withDefaults()
	g := o.Granularity.Kind
	if g == PerGroup {
		g = fmt.Sprintf("group%d", o.Granularity.Size)
	}
	s := fmt.Sprintf("%s-int%d-%s", o.Scheme, o.Bits, g)
	if o.Preset != PresetStandard {
		s += "-" + o.Preset
	}
	if o.Scope != ScopeWeights {
		s += "-" + o.Scope
	}
	return s
}
