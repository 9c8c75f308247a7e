package quantize_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// quantGolden is testdata/golden/quant/<fixture>.json, written by
// scripts/reference_gpt2.py quant (PyTorch float32 quantizers, float64 forward).
type quantGolden struct {
	Fixture     string   `json:"fixture"`
	Scope       string   `json:"scope"`
	Tensors     []string `json:"tensors"`
	CodesTensor string   `json:"codes_tensor"`
	MaxLength   int      `json:"max_length"`
	Stride      int      `json:"stride"`
	PPLFloat32  goldPPL  `json:"perplexity_float32"`
	Configs     []struct {
		Scheme      string            `json:"scheme"`
		Granularity string            `json:"granularity"`
		Preset      string            `json:"preset"`
		Bits        int               `json:"bits"`
		CodesSHA    string            `json:"codes_sha256"`
		ScalesSHA   string            `json:"scales_sha256"`
		TensorSHA   map[string]string `json:"tensor_codes_sha256"`
		MaxAbsError float64           `json:"max_abs_error"`
		Perplexity  goldPPL           `json:"perplexity"`
		CodesBase64 string            `json:"codes_b64"`
	} `json:"configs"`
}

type goldPPL struct {
	Count      int     `json:"count"`
	NLLSum     float64 `json:"nll_sum"`
	Perplexity float64 `json:"perplexity"`
}

// TestGoldenPyTorch checks codes, scales, dequantization error and the quantized model's
// perplexity against PyTorch for every scheme × granularity × preset × bits on the fixtures.
func TestGoldenPyTorch(t *testing.T) {
	for _, fixture := range []string{"f16-tied", "f32-prefix", "bf16-tied"} {
		t.Run(fixture, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "testdata", "golden", "quant", fixture+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var g quantGolden
			if err := json.Unmarshal(data, &g); err != nil {
				t.Fatal(err)
			}
			var ids struct {
				PPL struct {
					IDs []int32 `json:"ids"`
				} `json:"perplexity"`
			}
			dir := filepath.Join("..", "testdata", "golden", fixture)
			data, err = os.ReadFile(filepath.Join(dir, "golden.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &ids); err != nil {
				t.Fatal(err)
			}
			w, err := model.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			var worstRel float64
			defer func() {
				t.Logf("%d configurations: perplexity within %.2g relative of PyTorch's", len(g.Configs), worstRel)
			}()
			for _, c := range g.Configs {
				gran, err := quantize.ParseGranularity(c.Granularity)
				if err != nil {
					t.Fatal(err)
				}
				opt := quantize.Options{Scheme: quantize.Scheme(c.Scheme), Bits: c.Bits, Granularity: gran, Preset: c.Preset, Scope: g.Scope}
				t.Run(opt.String(), func(t *testing.T) {
					qw, err := quantize.QuantizeWeights(w, opt)
					if err != nil {
						t.Fatal(err)
					}
					checkGoldenConfig(t, w, qw, g, c.CodesSHA, c.ScalesSHA, c.TensorSHA, c.CodesBase64, c.MaxAbsError)
					ppl := perplexity(t, qw, ids.PPL.IDs, g.MaxLength, g.Stride)
					for path, r := range ppl {
						rel := math.Abs(r.Perplexity-c.Perplexity.Perplexity) / c.Perplexity.Perplexity
						worstRel = max(worstRel, rel)
						if r.Tokens != c.Perplexity.Count || rel > 1e-4 {
							t.Errorf("%s: perplexity %.10g over %d tokens; PyTorch %.10g over %d (rel %.2g)", path, r.Perplexity, r.Tokens, c.Perplexity.Perplexity, c.Perplexity.Count, rel)
						}
					}
				})
			}
		})
	}
}

func checkGoldenConfig(t *testing.T, w, qw *model.Weights, g quantGolden, codesSHA, scalesSHA string, tensorSHA map[string]string, codesB64 string, maxErr float64) {
	t.Helper()
	all, scales := sha256.New(), sha256.New()
	var names []string
	var worst float64
	for i, p := range qw.Params() {
		q, ok := (*p.T).(*quantize.Tensor)
		if !ok {
			continue
		}
		names = append(names, p.Name)
		codes := make([]byte, q.Len())
		for e := range codes {
			codes[e] = byte(q.Code(e))
		}
		all.Write(codes)
		scales.Write(model.F32Bytes(q.Scales))
		scales.Write(model.F32Bytes(q.Zeros))
		if sum := sha256.Sum256(codes); hex.EncodeToString(sum[:]) != tensorSHA[p.Name] {
			t.Errorf("%s: codes differ from PyTorch's", p.Name)
		}
		if p.Name == g.CodesTensor {
			want, _ := base64.StdEncoding.DecodeString(codesB64)
			diff := 0
			for e := range codes {
				if e >= len(want) || codes[e] != want[e] {
					if diff < 5 {
						t.Errorf("%s: code %d is %d, PyTorch %d", p.Name, e, int8(codes[e]), int8(want[e]))
					}
					diff++
				}
			}
			if diff > 0 {
				t.Errorf("%s: %d of %d codes differ", p.Name, diff, len(codes))
			}
		}
		orig := (*w.Params()[i].T).(*model.F32)
		worst = max(worst, quantize.Compare(p.Name, orig, q).MaxAbsErr)
	}
	if len(names) != len(g.Tensors) {
		t.Errorf("quantized %v, PyTorch %v", names, g.Tensors)
	}
	if hex.EncodeToString(all.Sum(nil)) != codesSHA {
		t.Errorf("codes of all tensors differ from PyTorch's")
	}
	if hex.EncodeToString(scales.Sum(nil)) != scalesSHA {
		t.Errorf("scales or zero-points differ from PyTorch's")
	}
	if math.Abs(worst-maxErr) > 1e-12*maxErr {
		t.Errorf("max dequantization error %.17g, PyTorch %.17g", worst, maxErr)
	}
}

// perplexity runs the CPU backend over the dequantized weights and over the quantized weights
// (its integer kernels, weight-only).
func perplexity(t *testing.T, qw *model.Weights, ids []int32, maxLength, stride int) map[string]model.PerplexityResult {
	t.Helper()
	deq := qw.Copy()
	for _, p := range deq.Params() {
		if q, ok := (*p.T).(*quantize.Tensor); ok {
			*p.T = q.Dequantize()
		}
	}
	be := cpu.New()
	up, err := be.Upload(qw, quantize.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string]*model.Weights{"dequantized": deq, "quantized": up}
	out := map[string]model.PerplexityResult{}
	for path, w := range runs {
		s, err := model.NewSession(be, w, 0)
		if err != nil {
			t.Fatal(err)
		}
		r, err := model.Perplexity(s, ids, model.PerplexityOptions{MaxLength: maxLength, Stride: stride})
		if err != nil {
			t.Fatal(err)
		}
		out[path] = r
	}
	return out
}
