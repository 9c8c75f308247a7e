package quantize

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/gpuquant/gpuquant/model"
	"github.com/nlpodyssey/safetensors"
)

// Checkpoint format identifiers (see the package documentation).
const (
	FormatName    = "gpuquant"
	FormatVersion = "1"
	LayoutOutIn   = "out_in"
)

// Suffixes of the tensors a quantized parameter is stored as.
const (
	SuffixCodes = ".qcodes"
	SuffixScale = ".qscale"
	SuffixZero  = ".qzero"
)

// tokenizerFiles are copied from the source folder when present.
var tokenizerFiles = []string{"vocab.json", "merges.txt", "tokenizer.json"}

// Save writes w, quantized with opt, as a gpuquant checkpoint folder dir: model.safetensors,
// plus config.json and the tokenizer files found in srcDir (config.json is written from
// w.Config when srcDir has none). The folder is built in a temporary sibling and renamed into
// place when complete. Save refuses to write into srcDir itself, and over an existing dir unless
// force, in which case the old folder is replaced only after the new one is complete.
func Save(dir, srcDir string, w *model.Weights, opt Options, force bool) error {
	if err := opt.Validate(); err != nil {
		return err
	}
	opt = opt.withDefaults()
	tensors, err := checkpointTensors(w, opt)
	if err != nil {
		return err
	}
	meta := map[string]string{
		"format":         FormatName,
		"format_version": FormatVersion,
		"scheme":         string(opt.Scheme),
		"bits":           strconv.Itoa(opt.Bits),
		"granularity":    opt.Granularity.String(),
		"scope":          opt.Scope,
		"preset":         opt.Preset,
		"layout":         LayoutOutIn,
	}
	err = model.WriteFolder(dir, force, []string{srcDir}, func(tmp string) error {
		if err := model.WriteSafetensors(filepath.Join(tmp, "model.safetensors"), tensors, meta); err != nil {
			return err
		}
		return copySidecars(tmp, srcDir, w.Config)
	})
	if err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	return nil
}

// checkpointTensors lists what Save writes: float32 tensors first (so that every one of them is
// 4-byte aligned in the file and Open can use it in place), then the codes.
func checkpointTensors(w *model.Weights, opt Options) ([]model.STensor, error) {
	var floats, codes []model.STensor
	for _, p := range w.Params() {
		switch t := (*p.T).(type) {
		case *model.F32:
			floats = append(floats, f32Tensor(p.Name, t.Dims, t.Data))
		case *Tensor:
			if err := t.Validate(); err != nil {
				return nil, fmt.Errorf("quantize: save %s: %w", p.Name, err)
			}
			if t.Scheme != opt.Scheme || t.Bits != opt.Bits {
				return nil, fmt.Errorf("quantize: save %s: tensor is %s int%d but the options say %s int%d", p.Name, t.Scheme, t.Bits, opt.Scheme, opt.Bits)
			}
			if want, err := opt.Granularity.GroupSize(p.Name, t.Dims); err != nil || want != t.GroupSize {
				return nil, fmt.Errorf("quantize: save %s: group size %d does not match granularity %s", p.Name, t.GroupSize, opt.Granularity)
			}
			floats = append(floats, f32Tensor(p.Name+SuffixScale, []int{len(t.Scales)}, t.Scales))
			if t.Zeros != nil {
				floats = append(floats, f32Tensor(p.Name+SuffixZero, []int{len(t.Zeros)}, t.Zeros))
			}
			ct := model.STensor{Name: p.Name + SuffixCodes, DType: "I8", Shape: t.Dims}
			if t.Bits == 4 {
				ct.DType, ct.Shape = "U8", []int{len(t.Codes)}
			}
			c := t.Codes
			ct.Fill = func(w io.Writer) error { _, err := w.Write(c); return err }
			codes = append(codes, ct)
		default:
			return nil, fmt.Errorf("quantize: save %s: cannot save a %T (want float32 or quantized host tensors)", p.Name, t)
		}
	}
	return append(floats, codes...), nil
}

func f32Tensor(name string, dims []int, data []float32) model.STensor {
	return model.STensor{Name: name, DType: "F32", Shape: dims, Fill: func(w io.Writer) error {
		_, err := w.Write(model.F32Bytes(data))
		return err
	}}
}

// copySidecars copies config.json and the tokenizer files present in srcDir into dst.
func copySidecars(dst, srcDir string, cfg model.Config) error {
	for _, name := range append([]string{"config.json"}, tokenizerFiles...) {
		data, err := os.ReadFile(filepath.Join(srcDir, name))
		if errors.Is(err, fs.ErrNotExist) {
			if name == "config.json" {
				if err := model.WriteConfig(dst, cfg); err != nil {
					return fmt.Errorf("quantize: %w", err)
				}
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("quantize: %w", err)
		}
		if err := model.WriteFileAtomic(filepath.Join(dst, name), data); err != nil {
			return fmt.Errorf("quantize: %w", err)
		}
	}
	return nil
}

// readMetadata returns the __metadata__ of a safetensors file, reading only its header.
func readMetadata(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var n [8]byte
	if _, err := io.ReadFull(f, n[:]); err != nil {
		return nil, fmt.Errorf("%s: truncated: too short for a safetensors header", path)
	}
	size := binary.LittleEndian.Uint64(n[:])
	if fi, err := f.Stat(); err == nil && size > uint64(fi.Size())-8 {
		return nil, fmt.Errorf("%s: header length %d runs past the end of the file (%d bytes)", path, size, fi.Size())
	}
	hdr := make([]byte, size)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var h struct {
		Meta map[string]string `json:"__metadata__"`
	}
	if err := json.Unmarshal(hdr, &h); err != nil {
		return nil, fmt.Errorf("%s: malformed JSON header: %w", path, err)
	}
	return h.Meta, nil
}

// OpenQuantizing is Open for a folder that is to be quantized with opt: a plain checkpoint is
// quantized while it loads (LoadQuantized: never the whole float model in memory); a quantized
// one is returned as Open returns it, its own options describing it.
func OpenQuantizing(dir string, opt Options) (*model.Weights, *Options, error) {
	if meta, err := readMetadata(filepath.Join(dir, "model.safetensors")); err == nil && meta["format"] == FormatName {
		return Open(dir)
	}
	w, err := LoadQuantized(dir, opt)
	return w, nil, err
}

// Open loads a checkpoint folder. A plain Hugging Face folder is loaded with model.Load and
// comes back with nil Options. A gpuquant folder comes back quantized, with the Options it was
// saved with; every tensor is checked (shape, dtype, codes against scales, finite scales) and an
// unknown format_version is refused.
//
// A gpuquant model.safetensors is read into memory once, and codes and float32 tensors are used
// in place in that buffer (no per-tensor copies). It is ordinary Go memory rather than a memory
// map, because a mapping could not be handed to the returned Weights to unmap on Close: the
// buffer is freed by the garbage collector when the last tensor using it is, and Close is a no-op.
func Open(dir string) (*model.Weights, *Options, error) {
	path := filepath.Join(dir, "model.safetensors")
	meta, err := readMetadata(path)
	if err != nil || meta["format"] != FormatName {
		// A plain checkpoint, or an unreadable one: the loader says what is wrong with it.
		w, err := model.Load(dir)
		return w, nil, err
	}
	if v := meta["format_version"]; v != FormatVersion {
		return nil, nil, fmt.Errorf("quantize: %s: unknown gpuquant format_version %q (this build reads version %s)", path, v, FormatVersion)
	}
	opt, err := optionsFromMetadata(meta)
	if err != nil {
		return nil, nil, fmt.Errorf("quantize: %s: %w", path, err)
	}
	cfg, err := model.LoadConfig(dir)
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("quantize: %w", err)
	}
	st, err := model.ParseSafetensors(data)
	if err != nil {
		return nil, nil, fmt.Errorf("quantize: %s: %w", path, err)
	}
	views, err := model.Views(st)
	if err != nil {
		return nil, nil, fmt.Errorf("quantize: %s: %w", path, err)
	}
	w, err := fromViews(cfg, views, opt)
	if err != nil {
		return nil, nil, fmt.Errorf("quantize: %s: %w", path, err)
	}
	return w, &opt, nil
}

func optionsFromMetadata(meta map[string]string) (Options, error) {
	if l := meta["layout"]; l != LayoutOutIn {
		return Options{}, fmt.Errorf("unknown layout %q (want %s)", l, LayoutOutIn)
	}
	bits, err := strconv.Atoi(meta["bits"])
	if err != nil {
		return Options{}, fmt.Errorf("bad bits %q in the metadata", meta["bits"])
	}
	g, err := ParseGranularity(meta["granularity"])
	if err != nil {
		return Options{}, err
	}
	opt := Options{Scheme: Scheme(meta["scheme"]), Bits: bits, Granularity: g, Preset: meta["preset"], Scope: meta["scope"]}
	if err := opt.Validate(); err != nil {
		return Options{}, err
	}
	return opt.withDefaults(), nil
}

func fromViews(cfg model.Config, views map[string]safetensors.TensorView, opt Options) (*model.Weights, error) {
	w := &model.Weights{Config: cfg, Blocks: make([]model.Block, cfg.NLayer)}
	if cfg.TieEmbeddings {
		for _, s := range []string{"", SuffixCodes, SuffixScale, SuffixZero} {
			delete(views, "lm_head.weight"+s) // ignored when tied, as model.Load does
		}
	} else {
		w.Head = &model.F32{}
	}
	for _, p := range w.Params() {
		t, err := paramFromViews(cfg, p.Name, views, opt)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", p.Name, err)
		}
		*p.T = t
	}
	for name := range views {
		return nil, fmt.Errorf("unexpected tensor %q: not a GPT-2 parameter for n_layer=%d", name, cfg.NLayer)
	}
	return w, nil
}

func paramFromViews(cfg model.Config, name string, views map[string]safetensors.TensorView, opt Options) (model.Tensor, error) {
	want := model.ExpectedShape(cfg, name)
	n := model.NumElements(want)
	if v, ok := views[name]; ok {
		delete(views, name)
		if _, dup := views[name+SuffixCodes]; dup {
			return nil, fmt.Errorf("stored both as float32 and quantized")
		}
		data, err := f32Data(v, want)
		if err != nil {
			return nil, err
		}
		return model.NewF32(data, want...), nil
	}
	cv, ok := views[name+SuffixCodes]
	if !ok {
		return nil, fmt.Errorf("missing (neither %q nor %q is in the file; config.json says n_layer=%d)", name, name+SuffixCodes, cfg.NLayer)
	}
	delete(views, name+SuffixCodes)
	t := &Tensor{Dims: want, Scheme: opt.Scheme, Bits: opt.Bits, Codes: cv.Data()}
	wantDT, wantShape := "I8", want
	if opt.Bits == 4 {
		wantDT, wantShape = "U8", []int{(n + 1) / 2}
	}
	if got := cv.DType().String(); got != wantDT {
		return nil, fmt.Errorf("codes have dtype %s, want %s for %d bits", got, wantDT, opt.Bits)
	}
	if got := model.ShapeOf(cv); !slices.Equal(got, wantShape) {
		return nil, fmt.Errorf("codes have shape %v, want %v", got, wantShape)
	}
	sv, ok := views[name+SuffixScale]
	if !ok {
		return nil, fmt.Errorf("codes without scales (%q is missing)", name+SuffixScale)
	}
	delete(views, name+SuffixScale)
	var err error
	if t.Scales, err = f32Data(sv, nil); err != nil {
		return nil, fmt.Errorf("scales: %w", err)
	}
	zv, hasZero := views[name+SuffixZero]
	delete(views, name+SuffixZero)
	switch {
	case hasZero && opt.Scheme == Absmax:
		return nil, fmt.Errorf("absmax tensor carries zero-points (%q)", name+SuffixZero)
	case !hasZero && opt.Scheme == ZeroPoint:
		return nil, fmt.Errorf("zero-point tensor without zero-points (%q is missing)", name+SuffixZero)
	case hasZero:
		if t.Zeros, err = f32Data(zv, nil); err != nil {
			return nil, fmt.Errorf("zero-points: %w", err)
		}
	}
	if len(t.Scales) == 0 || n%len(t.Scales) != 0 {
		return nil, fmt.Errorf("%d scales do not divide its %d values into equal groups", len(t.Scales), n)
	}
	t.GroupSize = n / len(t.Scales)
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if gs, err := opt.Granularity.GroupSize(name, want); err != nil || gs != t.GroupSize {
		return nil, fmt.Errorf("%d scales for %d values (groups of %d), but granularity %s means groups of %d", len(t.Scales), n, t.GroupSize, opt.Granularity, gs)
	}
	for g, s := range t.Scales {
		if !(s > 0 && s <= math.MaxFloat32) {
			return nil, fmt.Errorf("scale %d is %v (want a positive finite number)", g, s)
		}
	}
	for g, z := range t.Zeros {
		if !(math.Abs(float64(z)) <= math.MaxFloat32) || z != float32(math.Round(float64(z))) {
			return nil, fmt.Errorf("zero-point %d is %v (want a finite integer)", g, z)
		}
	}
	return t, nil
}

// f32Data returns the float32 values of an F32 view (in place when aligned), checking the shape
// when want is not nil and that every value is finite.
func f32Data(v safetensors.TensorView, want []int) ([]float32, error) {
	if v.DType() != safetensors.F32 {
		return nil, fmt.Errorf("dtype %s, want F32", v.DType())
	}
	got := model.ShapeOf(v)
	if want != nil && !slices.Equal(got, want) {
		return nil, fmt.Errorf("shape %v, want %v (out_in layout)", got, want)
	}
	if want == nil && len(got) != 1 {
		return nil, fmt.Errorf("shape %v, want a vector", got)
	}
	raw := v.Data()
	data, ok := model.F32View(raw)
	if !ok {
		data = make([]float32, len(raw)/4)
		for i := range data {
			data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	}
	for i, x := range data {
		if !(x >= -math.MaxFloat32 && x <= math.MaxFloat32) {
			return nil, fmt.Errorf("non-finite value %v at flat index %d", x, i)
		}
	}
	return data, nil
}
