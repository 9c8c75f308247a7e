package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// gpuquant runs the CLI in-process and returns stdout, stderr and the error.
func gpuquant(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := New(strings.NewReader(stdin), &out, &errOut).Run(append([]string{"gpuquant"}, args...))
	return out.String(), errOut.String(), err
}

// tinyDir is a random 2-layer GPT-2 with the real vocabulary, written by TestMain for all tests
// and removed after them.
var tinyDir string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gpuquant-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	tinyDir = filepath.Join(dir, "tiny")
	var out, errOut bytes.Buffer
	args := []string{"gpuquant", "synth", "--preset", "tiny", "--n-positions", "64", "--dtype", "f16", "--out", tinyDir}
	if err := New(strings.NewReader(""), &out, &errOut).Run(args); err != nil {
		fmt.Fprintf(os.Stderr, "synth for the tests: %v\n%s", err, errOut.String())
		return 1
	}
	return m.Run()
}

// tiny is the shared test model's folder.
func tiny(*testing.T) string { return tinyDir }

func jsonOut(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, s)
	}
	return m
}

func textFile(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "text.txt")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const sample = "The tower is 324 metres (1,063 ft) tall, about the same height as an 81-storey building.\r\nIt was the tallest man-made structure in the world for 41 years.\r\n"

// ---- Independent sources for the JSON fields: the tokenize and inspect commands, config.json,
// and a scoring by hand that uses the model package only for the forward pass.

// tokenIDs is what `gpuquant tokenize` makes of text.
func tokenIDs(t *testing.T, text string) []int32 {
	t.Helper()
	out, _, err := gpuquant(t, text, "tokenize", "--model", tiny(t), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ IDs []int32 }
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	return v.IDs
}

// nLayer is n_layer from the checkpoint's config.json.
func nLayer(t *testing.T, dir string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		NLayer int `json:"n_layer"`
	}
	if err := json.Unmarshal(data, &c); err != nil || c.NLayer < 1 {
		t.Fatalf("config.json: n_layer %d, %v", c.NLayer, err)
	}
	return c.NLayer
}

// tensorShape is one tensor of `gpuquant inspect --json`, shape as on disk.
type tensorShape struct {
	Name  string
	Shape []int
}

func inspectTensors(t *testing.T, dir string) []tensorShape {
	t.Helper()
	out, _, err := gpuquant(t, "", "inspect", "--model", dir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Tensors []tensorShape }
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v.Tensors) == 0 {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}
	return v.Tensors
}

func numel(shape []int) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
	}
	return n
}

// schemeBytes is the size a scheme implies for the checkpoint, worked out from inspect's shapes:
// 4 bytes a value in float32 (scheme fp32, and the vectors of every scheme); every matrix (scope
// weights) as bits/8 bytes a value plus a float32 scale, and for zeropoint a float32 zero-point,
// per group: one per tensor, one per output channel (a row of C inputs; Conv1D weights are stored
// (C, OC) on disk), or one per N values for group:N.
func schemeBytes(t *testing.T, tensors []tensorShape, scheme string, bits int, gran string) int64 {
	t.Helper()
	var total int64
	for _, ts := range tensors {
		n := numel(ts.Shape)
		if scheme == "fp32" || len(ts.Shape) != 2 {
			total += 4 * n
			continue
		}
		c := int64(ts.Shape[1])
		for _, suffix := range []string{"attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"} {
			if strings.HasSuffix(ts.Name, suffix) {
				c = int64(ts.Shape[0])
			}
		}
		var groups int64
		switch {
		case gran == "tensor":
			groups = 1
		case gran == "channel":
			groups = n / c
		case strings.HasPrefix(gran, "group:"):
			var g int64
			fmt.Sscan(strings.TrimPrefix(gran, "group:"), &g)
			groups = n / g
		default:
			t.Fatalf("granularity %q", gran)
		}
		perGroup := int64(4)
		if scheme == "zeropoint" {
			perGroup = 8
		}
		total += (n*int64(bits)+7)/8 + perGroup*groups
	}
	return total
}

// loadTiny is the test model as float32 weights, read by the model package.
func loadTiny(t *testing.T) *model.Weights {
	t.Helper()
	w, err := model.Load(tiny(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func quantized(t *testing.T, w *model.Weights, opt quantize.Options) *model.Weights {
	t.Helper()
	q, err := quantize.QuantizeWeights(w, opt)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// handScore is a perplexity (and comparison) worked out in the test.
type handScore struct {
	tokens, windows int
	nllSum, klSum   float64 // KL(reference ‖ model), summed over the scored positions
	agree           int     // positions where both argmaxes agree
}

// hfWindow is where the hf method (windows of L tokens advancing by S < L) scores target t: in
// the first window k·S that ends past t, i.e. k = 0 for t < L, else k = ⌊(t−L)/S⌋ + 1.
func hfWindow(L, S int) func(t, n int) (int, bool) {
	return func(t, n int) (int, bool) {
		if t < L {
			return 0, true
		}
		return ((t-L)/S + 1) * S, true
	}
}

// llamaWindow is where the llamacpp method scores target t: in the whole window ⌊t/L⌋·L, if t
// lies in its second half after position L/2 (every scored token sees L/2 tokens of context).
func llamaWindow(L int) func(t, n int) (int, bool) {
	return func(t, n int) (int, bool) {
		b := t / L * L
		return b, b+L <= n && t-b >= L/2+1
	}
}

// scoreByHand scores ids with w on ops: each target t placed by window (its window's begin b) is
// predicted by row t−1−b of the logits of a forward over ids[b : min(b+L, n)] from an empty cache,
// with the log-softmax, NLL and KL computed here in float64. With ref (on refOps) it also compares
// the two distributions at every scored position.
func scoreByHand(t *testing.T, ids []int32, L int, window func(t, n int) (int, bool), ops model.Ops, w *model.Weights, refOps model.Ops, ref *model.Weights) handScore {
	t.Helper()
	forward := func(ops model.Ops, w *model.Weights) func(b int) []float32 {
		// The CPU backend runs host float32 and quantized tensors as they are: no upload.
		s, err := model.NewSession(ops, w, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return func(b int) []float32 {
			s.Reset()
			logits, err := s.Forward(ids[b:min(b+L, len(ids))], true)
			if err != nil {
				t.Fatal(err)
			}
			rows := make([]float32, logits.Rows()*logits.Cols())
			ops.Read(rows, logits)
			return rows
		}
	}
	fw := forward(ops, w)
	var fr func(int) []float32
	if ref != nil {
		fr = forward(refOps, ref)
	}
	V := w.Config.VocabSize
	var h handScore
	cur := -1
	var got, want []float32
	type rowScore struct {
		nll, kl float64
		agree   bool
	}
	var rows []rowScore
	var wg sync.WaitGroup
	for tt := 1; tt < len(ids); tt++ {
		b, ok := window(tt, len(ids))
		if !ok {
			continue
		}
		if b != cur {
			wg.Wait() // the rows of the last window are read
			cur, got = b, fw(b)
			if ref != nil {
				want = fr(b)
			}
			h.windows++
		}
		r, i := tt-1-b, len(rows)
		rows = append(rows, rowScore{})
		wg.Add(1)
		go func(g, f []float32, target int32) { // rows are independent: score them in parallel
			defer wg.Done()
			lg, _ := logSoftmax(g)
			rs := rowScore{nll: -lg[target]}
			if f != nil {
				lf, pf := logSoftmax(f)
				for i := range lf {
					rs.kl += pf[i] * (lf[i] - lg[i])
				}
				rs.agree = argmax(lg) == argmax(lf)
			}
			rows[i] = rs
		}(got[r*V:(r+1)*V], rowOf(want, r, V), ids[tt])
	}
	wg.Wait()
	for _, rs := range rows { // summed in order, as the tool does
		h.nllSum += rs.nll
		h.klSum += rs.kl
		if rs.agree {
			h.agree++
		}
		h.tokens++
	}
	return h
}

func rowOf(x []float32, r, V int) []float32 {
	if x == nil {
		return nil
	}
	return x[r*V : (r+1)*V]
}

// logSoftmax is log softmax(x) and softmax(x), in float64.
func logSoftmax(x []float32) (logp, p []float64) {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, float64(v))
	}
	p = make([]float64, len(x))
	var s float64
	for i, v := range x {
		p[i] = math.Exp(float64(v) - m)
		s += p[i]
	}
	lse := m + math.Log(s)
	logp = make([]float64, len(x))
	for i, v := range x {
		logp[i] = float64(v) - lse
		p[i] /= s
	}
	return logp, p
}

func argmax(x []float64) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// near reports whether got is within rel of want, relatively (absolutely near 0).
func near(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*max(math.Abs(want), 1e-300)
}

func num(t *testing.T, m map[string]any, k string) float64 {
	t.Helper()
	v, ok := m[k].(float64)
	if !ok {
		t.Fatalf("%s = %#v, not a number", k, m[k])
	}
	return v
}

// keysAre fails unless m has exactly the keys want: a field added without a test fails here.
func keysAre(t *testing.T, what string, m map[string]any, want ...string) {
	t.Helper()
	var got []string
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s fields %v, want %v", what, got, want)
	}
}

// checkScheme checks the five scheme fields.
func checkScheme(t *testing.T, what string, m map[string]any, scheme string, bits int, gran, scope, preset string) {
	t.Helper()
	if m["scheme"] != scheme || m["bits"] != float64(bits) || m["granularity"] != gran || m["scope"] != scope || m["preset"] != preset {
		t.Errorf("%s: scheme fields %v %v %v %v %v, want %s %d %q %q %q", what, m["scheme"], m["bits"], m["granularity"], m["scope"], m["preset"], scheme, bits, gran, scope, preset)
	}
}

// checkKernels checks a Linear-call count: calls kernels whose names start with prefix and
// nothing else (names in extra, e.g. w8a8's outlier columns, may be there too and are not counted).
func checkKernels(t *testing.T, what string, v any, prefix string, calls int, extra ...string) {
	t.Helper()
	k, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: kernels %#v", what, v)
	}
	n := 0
	for name, c := range k {
		if slices.Contains(extra, name) {
			continue
		}
		if !strings.HasPrefix(name, prefix) {
			t.Errorf("%s: kernel %s ran, want only %s*", what, name, prefix)
		}
		n += int(c.(float64))
	}
	if n != calls {
		t.Errorf("%s: %d Linear calls (%v), want %d", what, n, k, calls)
	}
}

// evalWant is what an eval --json must report.
type evalWant struct {
	text     string // the --text file
	tokens   int    // from the tokenize command
	method   string
	hand     handScore
	bytes    int64
	scheme   []any // scheme, bits, granularity, scope, preset
	kernel   string
	compared bool
}

// checkEval checks every field of eval --json.
func checkEval(t *testing.T, what string, m map[string]any, w evalWant) {
	t.Helper()
	keys := []string{"model", "device", "text", "perplexity", "nll_mean", "nll_sum", "tokens_scored", "tokens", "windows",
		"method", "model_bytes", "seconds", "kernels", "scheme", "bits", "granularity", "scope", "preset"}
	if w.compared {
		keys = append(keys, "kld_mean", "top1_agreement")
	}
	keysAre(t, what, m, keys...)
	if m["model"] != tiny(t) || m["device"] != "cpu" || m["text"] != w.text || m["method"] != w.method {
		t.Errorf("%s: model %v, device %v, text %v, method %v", what, m["model"], m["device"], m["text"], m["method"])
	}
	checkScheme(t, what, m, w.scheme[0].(string), w.scheme[1].(int), w.scheme[2].(string), w.scheme[3].(string), w.scheme[4].(string))
	if num(t, m, "tokens") != float64(w.tokens) || num(t, m, "tokens_scored") != float64(w.hand.tokens) || num(t, m, "windows") != float64(w.hand.windows) {
		t.Errorf("%s: %v tokens, %v scored in %v windows; want %d, %d in %d", what, m["tokens"], m["tokens_scored"], m["windows"], w.tokens, w.hand.tokens, w.hand.windows)
	}
	// The backend's NLL sums float32 exponentials; the hand scoring is float64 throughout.
	sum, mean, ppl := num(t, m, "nll_sum"), num(t, m, "nll_mean"), num(t, m, "perplexity")
	if !near(sum, w.hand.nllSum, 1e-6) {
		t.Errorf("%s: nll_sum %.12g, by hand %.12g", what, sum, w.hand.nllSum)
	}
	if !near(mean, sum/float64(w.hand.tokens), 1e-12) || !near(ppl, math.Exp(mean), 1e-12) || !(ppl > 1) {
		t.Errorf("%s: nll_mean %v (sum/tokens %v), perplexity %v (exp %v)", what, mean, sum/float64(w.hand.tokens), ppl, math.Exp(mean))
	}
	if num(t, m, "model_bytes") != float64(w.bytes) {
		t.Errorf("%s: model_bytes %v, the scheme implies %d", what, m["model_bytes"], w.bytes)
	}
	if s := num(t, m, "seconds"); !(s > 0 && s < 600) {
		t.Errorf("%s: seconds %v", what, s)
	}
	// One Linear call per projection of each block, and the head, for every window.
	calls := w.hand.windows * (4*nLayer(t, tiny(t)) + 1)
	if w.kernel == "w8a8-" {
		checkKernels(t, what, m["kernels"], w.kernel, calls, "w8a8-outliers-f32")
	} else {
		checkKernels(t, what, m["kernels"], w.kernel, calls)
	}
	if !w.compared {
		return
	}
	kl, top1 := num(t, m, "kld_mean"), num(t, m, "top1_agreement")
	if !near(kl, w.hand.klSum/float64(w.hand.tokens), 1e-9) || !(kl >= 0) {
		t.Errorf("%s: kld_mean %.12g, by hand %.12g", what, kl, w.hand.klSum/float64(w.hand.tokens))
	}
	if want := float64(w.hand.agree) / float64(w.hand.tokens); !near(top1, want, 1e-12) || top1 < 0 || top1 > 1 {
		t.Errorf("%s: top1_agreement %v, by hand %d/%d", what, top1, w.hand.agree, w.hand.tokens)
	}
}

func TestEvalJSON(t *testing.T) {
	dir := tiny(t)
	text := textFile(t, sample)
	out, _, err := gpuquant(t, "", "eval", "--model", dir, "--text", text, "--max-length", "32", "--json")
	if err != nil {
		t.Fatal(err)
	}
	m := jsonOut(t, out)
	for _, k := range []string{"perplexity", "nll_mean", "tokens_scored", "model_bytes", "scheme"} {
		if _, ok := m[k]; !ok {
			t.Errorf("eval --json lacks %q", k)
		}
	}
	if p := m["perplexity"].(float64); !(p > 1) {
		t.Errorf("perplexity %v", p)
	}
	ids := tokenIDs(t, sample) // tokenize reads CRLF as LF, as eval does
	hand := scoreByHand(t, ids, 32, hfWindow(32, 16), cpu.New(), loadTiny(t), nil, nil)
	if hand.tokens != len(ids)-1 {
		t.Fatalf("hand scoring: %d of %d tokens (hf scores all but the first)", hand.tokens, len(ids))
	}
	checkEval(t, "eval --json", m, evalWant{text: text, tokens: len(ids), method: "hf", hand: hand,
		bytes: schemeBytes(t, inspectTensors(t, dir), "fp32", 32, ""), scheme: []any{"fp32", 32, "", "", ""}, kernel: "f32-"})
}

func TestGenerateReproducible(t *testing.T) {
	dir := tiny(t)
	run := func(args ...string) map[string]any {
		out, _, err := gpuquant(t, "", append([]string{"generate", "--model", dir, "--max-new-tokens", "8", "--json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return jsonOut(t, out)
	}
	a, b := run("--seed", "9", "--top-p", "0.9"), run("--seed", "9", "--top-p", "0.9")
	if a["text"] != b["text"] || len(a["token_ids"].([]any)) != 8 {
		t.Fatalf("same seed, different text: %q vs %q", a["text"], b["text"])
	}
	g1, g2 := run("--greedy"), run("--greedy")
	if g1["text"] != g2["text"] {
		t.Fatal("greedy decoding is not deterministic")
	}
}

func TestTokenize(t *testing.T) {
	out, _, err := gpuquant(t, "Hello world", "tokenize", "--model", tiny(t), "--json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(strings.Fields(out), ""), `"ids":[15496,995]`) {
		t.Fatalf("tokenize printed %s", out)
	}
}

func TestInspect(t *testing.T) {
	out, _, err := gpuquant(t, "", "inspect", "--model", tiny(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "h.1.mlp.c_fc.weight") || !strings.Contains(out, "F16") {
		t.Fatalf("inspect printed:\n%s", out)
	}
}

func TestBadInput(t *testing.T) {
	dir := tiny(t)
	empty := textFile(t, "")
	bad := filepath.Join(t.TempDir(), "bad.txt")
	os.WriteFile(bad, []byte{0xff, 0xfe, 'a'}, 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--model", dir, "--text", empty}, "is empty"},
		{[]string{"eval", "--model", dir, "--text", bad}, "not valid UTF-8"},
		{[]string{"eval", "--model", dir, "--text", textFile(t, sample), "--device", "tpu:0"}, `unknown device "tpu:0"`},
		{[]string{"eval", "--model", dir, "--text", textFile(t, sample), "--device", "cuda:0"}, "built without CUDA"},
		{[]string{"eval", "--model", dir, "--text", textFile(t, sample), "--max-length", "1000"}, "max-length 1000 must be between 2 and the context (64)"},
		{[]string{"eval", "--model", dir, "--text", empty, "stray", "--json"}, `unexpected argument "stray"`},
		{[]string{"eval", "--model", filepath.Join(dir, "nope"), "--text", empty}, "is empty"},
		{[]string{"generate", "--model", dir, "--prompt", strings.Repeat("word ", 70)}, "exceeds the context of 64 positions"},
		{[]string{"generate", "--model", filepath.Join(dir, "nope")}, "no such file"},
		{[]string{"synth", "--out", dir}, "already exists"},
	} {
		_, _, err := gpuquant(t, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestQuantizedCheckpoint: a checkpoint written by `quantize` gives the same results as
// quantizing in memory, and the command protects existing folders and the source.
func TestQuantizedCheckpoint(t *testing.T) {
	dir := tiny(t)
	text := textFile(t, sample)
	out := filepath.Join(t.TempDir(), "q")
	scheme := []string{"--scheme", "zeropoint", "--bits", "4", "--granularity", "group:32"}
	if _, _, err := gpuquant(t, "", append([]string{"quantize", "--model", dir, "--out", out}, scheme...)...); err != nil {
		t.Fatal(err)
	}
	eval := func(args ...string) map[string]any {
		o, _, err := gpuquant(t, "", append([]string{"eval", "--text", text, "--json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return jsonOut(t, o)
	}
	mem, disk := eval(append([]string{"--model", dir}, scheme...)...), eval("--model", out)
	if mem["perplexity"] != disk["perplexity"] || disk["scheme"] != "zeropoint" || disk["bits"].(float64) != 4 {
		t.Fatalf("in memory %v (%v), from disk %v (%v %v)", mem["perplexity"], mem["model_bytes"], disk["perplexity"], disk["scheme"], disk["bits"])
	}
	if mem["model_bytes"] != disk["model_bytes"] {
		t.Errorf("model bytes %v in memory, %v from disk", mem["model_bytes"], disk["model_bytes"])
	}
	if want := schemeBytes(t, inspectTensors(t, dir), "zeropoint", 4, "group:32"); disk["model_bytes"] != float64(want) {
		t.Errorf("zeropoint int4 group:32: model_bytes %v, the format implies %d (codes, scales, zero-points)", disk["model_bytes"], want)
	}
	checkScheme(t, "from disk", disk, "zeropoint", 4, "group:32", "weights", "standard")
	checkScheme(t, "in memory", mem, "zeropoint", 4, "group:32", "weights", "standard")
	for _, k := range []string{"nll_sum", "nll_mean", "tokens", "tokens_scored", "windows"} {
		if mem[k] != disk[k] {
			t.Errorf("%s %v in memory, %v from disk", k, mem[k], disk[k])
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append([]string{"quantize", "--model", dir, "--out", out}, scheme...), "already exists"},
		{append([]string{"quantize", "--model", dir, "--out", dir, "--force"}, scheme...), "source folder"},
		{append([]string{"quantize", "--model", out, "--out", out + "2"}, scheme...), "already quantized"},
		{[]string{"eval", "--model", out, "--text", text, "--scheme", "absmax"}, "already quantized"},
		{[]string{"eval", "--model", out, "--text", text, "--compare-to", "fp32"}, "needs the original checkpoint"},
		{[]string{"eval", "--model", dir, "--text", text, "--scheme", "absmax", "--granularity", "group:48"}, "does not divide"},
		{[]string{"eval", "--model", dir, "--text", text, "--scheme", "absmax", "--bits", "3"}, "bits"},
		{[]string{"eval", "--model", dir, "--text", text, "--scheme", "absmax", "--kernel", "fast"}, "unknown kernel"},
	} {
		if _, _, err := gpuquant(t, "", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, _, err := gpuquant(t, "", "quantize", "--model", dir, "--out", out, "--force", "--scheme", "absmax"); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if eval("--model", out)["scheme"] != "absmax" {
		t.Error("--force did not replace the folder")
	}
}

func TestEvalCompare(t *testing.T) {
	dir := tiny(t)
	raw := strings.Repeat(sample, 3)
	text := textFile(t, raw)
	run := func(args ...string) map[string]any {
		o, _, err := gpuquant(t, "", append([]string{"eval", "--model", dir, "--text", text, "--max-length", "32", "--compare-to", "fp32", "--json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return jsonOut(t, o)
	}
	ids, tensors, w := tokenIDs(t, raw), inspectTensors(t, dir), loadTiny(t)
	hf := hfWindow(32, 16)
	want := func(hand handScore, bytes int64, kernel string, scheme ...any) evalWant {
		return evalWant{text: text, tokens: len(ids), method: "hf", hand: hand, bytes: bytes, scheme: scheme, kernel: kernel, compared: true}
	}

	same := run()
	if same["kld_mean"].(float64) != 0 || same["top1_agreement"].(float64) != 1 {
		t.Errorf("fp32 against itself: kld %v, top-1 %v (want exactly 0 and 1: the same logits)", same["kld_mean"], same["top1_agreement"])
	}
	hand := scoreByHand(t, ids, 32, hf, cpu.New(), w, cpu.New(), w)
	if hand.klSum != 0 || hand.agree != hand.tokens || hand.tokens != len(ids)-1 {
		t.Fatalf("hand scoring of fp32 against itself: %+v", hand)
	}
	checkEval(t, "fp32 vs fp32", same, want(hand, schemeBytes(t, tensors, "fp32", 32, ""), "f32-", "fp32", 32, "", "", ""))

	q := run("--scheme", "absmax", "--bits", "4", "--granularity", "tensor")
	if !(q["kld_mean"].(float64) > 1e-6) || q["top1_agreement"].(float64) > 1 {
		t.Errorf("int4 per-tensor against fp32: kld %v, top-1 %v", q["kld_mean"], q["top1_agreement"])
	}
	opt4 := quantize.Options{Scheme: quantize.Absmax, Bits: 4, Granularity: quantize.Granularity{Kind: quantize.PerTensor}}
	checkEval(t, "int4 per-tensor vs fp32", q, want(scoreByHand(t, ids, 32, hf, cpu.New(), quantized(t, w, opt4), cpu.New(), w),
		schemeBytes(t, tensors, "absmax", 4, "tensor"), "q4-", "absmax", 4, "tensor", "weights", "standard"))

	// int8 per channel: close to fp32 but not identical (about 1e-6 nats on this model), and far
	// closer than int4 per tensor (about 1e-3).
	q8 := run("--scheme", "absmax")
	if kl := q8["kld_mean"].(float64); !(kl > 0 && kl < 1e-4 && kl < q["kld_mean"].(float64)/10) || !(q8["top1_agreement"].(float64) >= 0.9) {
		t.Errorf("int8 per-channel against fp32: kld %v (int4 per tensor %v), top-1 %v", kl, q["kld_mean"], q8["top1_agreement"])
	}
	opt8 := quantize.Options{Scheme: quantize.Absmax, Bits: 8, Granularity: quantize.Granularity{Kind: quantize.PerChannel}}
	checkEval(t, "int8 per-channel vs fp32", q8, want(scoreByHand(t, ids, 32, hf, cpu.New(), quantized(t, w, opt8), cpu.New(), w),
		schemeBytes(t, tensors, "absmax", 8, "channel"), "q8-", "absmax", 8, "channel", "weights", "standard"))

	w8 := run("--scheme", "absmax", "--kernel", "w8a8", "--outlier-threshold", "6")
	if k := w8["kernels"].(map[string]any); k["w8a8-vnni"] == nil && k["w8a8-avx2"] == nil && k["w8a8-go"] == nil {
		t.Errorf("--kernel w8a8 ran %v", k)
	}
	w8ops, err := cpu.NewWith(cpu.Options{Kernel: "w8a8", OutlierThreshold: 6})
	if err != nil {
		t.Fatal(err)
	}
	checkEval(t, "w8a8 vs fp32", w8, want(scoreByHand(t, ids, 32, hf, w8ops, quantized(t, w, opt8), cpu.New(), w),
		schemeBytes(t, tensors, "absmax", 8, "channel"), "w8a8-", "absmax", 8, "channel", "weights", "standard"))

	ll := run("--method", "llamacpp")
	if ll["tokens_scored"].(float64) >= same["tokens_scored"].(float64) {
		t.Errorf("llamacpp scored %v tokens, hf %v", ll["tokens_scored"], same["tokens_scored"])
	}
	// Whole windows of 32 only, each scoring its last 32 − 16 − 1 = 15 tokens.
	llHand := scoreByHand(t, ids, 32, llamaWindow(32), cpu.New(), w, cpu.New(), w)
	if llHand.windows != len(ids)/32 || llHand.tokens != 15*(len(ids)/32) {
		t.Fatalf("hand llamacpp scoring: %d tokens in %d windows for %d tokens", llHand.tokens, llHand.windows, len(ids))
	}
	wl := want(llHand, schemeBytes(t, tensors, "fp32", 32, ""), "f32-", "fp32", 32, "", "", "")
	wl.method = "llamacpp"
	checkEval(t, "llamacpp", ll, wl)
}

func TestRunWritesReport(t *testing.T) {
	out := filepath.Join(t.TempDir(), "report")
	stdout, _, err := gpuquant(t, "", "run", "--model", tiny(t), "--max-new-tokens", "4", "--seed", "3", "--out", out, "--tensor", "h.0.")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fp32", "absmax", "zeropoint"} {
		if !strings.Contains(stdout, name) {
			t.Errorf("table lacks %s:\n%s", name, stdout)
		}
	}
	for _, f := range []string{"report.json", "report.md", "histograms.png"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	data, _ := os.ReadFile(filepath.Join(out, "report.json"))
	rep := jsonOut(t, string(data))
	models := rep["models"].([]any)
	fp, abs := models[0].(map[string]any), models[1].(map[string]any)
	if r := abs["size_ratio"].(float64); r > 0.3 || r < 0.25 {
		t.Errorf("absmax size ratio %v, want about 0.25 + scales", r)
	}
	if fp["model_bytes"].(float64) <= abs["model_bytes"].(float64) {
		t.Error("quantized model is not smaller")
	}
	checkReport(t, rep, "The way forward for AI is", 3, 4)

	// --json prints the report it writes.
	out2 := filepath.Join(t.TempDir(), "report")
	stdout, _, err = gpuquant(t, "", "run", "--model", tiny(t), "--max-new-tokens", "2", "--seed", "5", "--prompt", "Hello", "--out", out2, "--json")
	if err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(filepath.Join(out2, "report.json"))
	if printed, written := jsonOut(t, stdout), jsonOut(t, string(data)); !reflect.DeepEqual(printed, written) {
		t.Errorf("run --json printed\n%s\nbut wrote\n%s", stdout, data)
	} else {
		checkReport(t, printed, "Hello", 5, 2)
	}

	if _, _, err := gpuquant(t, "", "run", "--model", tiny(t), "--max-new-tokens", "2", "--out", out, "--tensor", "nope"); err == nil {
		t.Error("--tensor matching nothing was accepted")
	}
}

// checkReport checks every field of a CPU run report with the default scheme flags (8 bits per
// channel) and text (the fp32 model's own continuation): sizes from inspect's shapes, generations
// against the generate command with the same seed, perplexities and weight errors worked out here.
func checkReport(t *testing.T, rep map[string]any, prompt string, seed, newTokens int) {
	t.Helper()
	dir := tiny(t)
	keysAre(t, "report", rep, "model", "device", "prompt", "seed", "perplexity_text", "perplexity_tokens", "models", "peak_rss_bytes")
	if rep["model"] != dir || rep["device"] != "cpu" || rep["prompt"] != prompt || rep["seed"] != float64(seed) || rep["perplexity_text"] != "the fp32 model's generated text" {
		t.Errorf("report: model %v, device %v, prompt %v, seed %v, text %v", rep["model"], rep["device"], rep["prompt"], rep["seed"], rep["perplexity_text"])
	}
	models := rep["models"].([]any)
	if len(models) != 3 {
		t.Fatalf("%d models", len(models))
	}
	tensors, w := inspectTensors(t, dir), loadTiny(t)
	fp32Bytes := schemeBytes(t, tensors, "fp32", 32, "")
	if p := num(t, rep, "peak_rss_bytes"); !(p >= float64(fp32Bytes) && p < 1<<40) {
		t.Errorf("peak_rss_bytes %v, below the fp32 weights' %d", p, fp32Bytes)
	}
	// The perplexity text: the prompt and the fp32 model's continuation, in one window of all of
	// it (n_positions 64 is longer), advancing by half.
	fpGen := models[0].(map[string]any)["generation"].(map[string]any)
	ids := tokenIDs(t, prompt+fpGen["text"].(string))
	if num(t, rep, "perplexity_tokens") != float64(len(ids)) {
		t.Errorf("perplexity_tokens %v, tokenize says %d", rep["perplexity_tokens"], len(ids))
	}
	L := min(64, len(ids))
	for i, name := range []string{"fp32", "absmax", "zeropoint"} {
		row := models[i].(map[string]any)
		keys := []string{"name", "scheme", "model_bytes", "size_ratio", "quantize_seconds", "generation", "perplexity", "nll_mean",
			"tokens_scored", "score_tokens_per_s", "rss_bytes", "kernels"}
		weights, kernel, bits, gran, scope, preset := w, "f32-", 32, "", "", ""
		if name != "fp32" {
			keys = append(keys, "weight_error")
			opt := quantize.Options{Scheme: quantize.Scheme(name), Bits: 8, Granularity: quantize.Granularity{Kind: quantize.PerChannel}}
			weights, kernel, bits, gran, scope, preset = quantized(t, w, opt), "q8-", 8, "channel", "weights", "standard"
		}
		keysAre(t, name, row, keys...)
		if row["name"] != name {
			t.Errorf("model %d is %v, want %s", i, row["name"], name)
		}
		checkScheme(t, name, row["scheme"].(map[string]any), name, bits, gran, scope, preset)
		bytes := schemeBytes(t, tensors, name, bits, gran)
		if num(t, row, "model_bytes") != float64(bytes) || !near(num(t, row, "size_ratio"), float64(bytes)/float64(fp32Bytes), 1e-12) {
			t.Errorf("%s: model_bytes %v, size_ratio %v; the format implies %d, %v", name, row["model_bytes"], row["size_ratio"], bytes, float64(bytes)/float64(fp32Bytes))
		}
		if q, r := num(t, row, "quantize_seconds"), num(t, row, "rss_bytes"); !(q >= 0 && q < 600) || !(r > 0) {
			t.Errorf("%s: quantize_seconds %v, rss_bytes %v", name, q, r)
		}
		checkGeneration(t, name, row["generation"].(map[string]any), prompt, seed, newTokens)

		hand := scoreByHand(t, ids, L, hfWindow(L, max(L/2, 1)), cpu.New(), weights, nil, nil)
		if hand.tokens != len(ids)-1 {
			t.Fatalf("hand scoring: %d of %d tokens", hand.tokens, len(ids))
		}
		nll, ppl := num(t, row, "nll_mean"), num(t, row, "perplexity")
		if num(t, row, "tokens_scored") != float64(hand.tokens) || !near(nll, hand.nllSum/float64(hand.tokens), 1e-6) || !near(ppl, math.Exp(nll), 1e-12) {
			t.Errorf("%s: %v tokens scored, nll_mean %v, perplexity %v; by hand %d, %v, exp(nll_mean) %v", name, row["tokens_scored"], nll, ppl, hand.tokens, hand.nllSum/float64(hand.tokens), math.Exp(nll))
		}
		if s := num(t, row, "score_tokens_per_s"); !(s > 0) {
			t.Errorf("%s: score_tokens_per_s %v", name, s)
		}
		// The shared backend's calls while this model scored: its windows' projections and head.
		checkKernels(t, name, row["kernels"], kernel, hand.windows*(4*nLayer(t, dir)+1))
		if name != "fp32" {
			checkWeightError(t, name, row["weight_error"].(map[string]any), w, weights)
		}
	}
}

// checkGeneration checks a run row's continuation against `gpuquant generate` with the same
// scheme, prompt and seed.
func checkGeneration(t *testing.T, scheme string, g map[string]any, prompt string, seed, newTokens int) {
	t.Helper()
	keysAre(t, scheme+" generation", g, "prompt_ids", "token_ids", "text", "seconds", "tokens_per_s")
	o, _, err := gpuquant(t, "", "generate", "--model", tiny(t), "--scheme", scheme, "--prompt", prompt, "--seed", fmt.Sprint(seed),
		"--max-new-tokens", fmt.Sprint(newTokens), "--json")
	if err != nil {
		t.Fatal(err)
	}
	gen := jsonOut(t, o)
	if !reflect.DeepEqual(g["token_ids"], gen["token_ids"]) || g["text"] != gen["text"] || len(g["token_ids"].([]any)) != newTokens {
		t.Errorf("%s: run generated %v %q, generate %v %q", scheme, g["token_ids"], g["text"], gen["token_ids"], gen["text"])
	}
	var want []any
	for _, id := range tokenIDs(t, prompt) {
		want = append(want, float64(id))
	}
	if !reflect.DeepEqual(g["prompt_ids"], want) {
		t.Errorf("%s: prompt_ids %v, tokenize says %v", scheme, g["prompt_ids"], want)
	}
	if s, r := num(t, g, "seconds"), num(t, g, "tokens_per_s"); !(s > 0) || !near(r*s, float64(newTokens), 1e-9) {
		t.Errorf("%s: %v tokens/s over %v s, want %d tokens", scheme, r, s, newTokens)
	}
}

// checkWeightError checks a report's weight error of q against w with the sums done here over
// every quantized (2-D) tensor: values, MSE, SQNR, max |error|; the range used and outliers
// against `gpuquant inspect` of the same scheme.
func checkWeightError(t *testing.T, scheme string, e map[string]any, w, q *model.Weights) {
	t.Helper()
	keysAre(t, scheme+" weight_error", e, "Name", "N", "MSE", "SQNRdB", "MaxAbsErr", "RangeUsed", "Outliers")
	var n int64
	var signal, noise, maxErr float64
	qp := q.Params()
	for i, p := range w.Params() {
		x := (*p.T).(*model.F32)
		if len(x.Dims) != 2 {
			continue
		}
		d := (*qp[i].T).(*quantize.Tensor).Dequantize()
		for j, v := range x.Data {
			diff := float64(v) - float64(d.Data[j])
			signal += float64(v) * float64(v)
			noise += diff * diff
			maxErr = max(maxErr, math.Abs(diff))
		}
		n += int64(len(x.Data))
	}
	if num(t, e, "N") != float64(n) || !near(num(t, e, "MSE"), noise/float64(n), 1e-9) ||
		!near(num(t, e, "SQNRdB"), 10*math.Log10(signal/noise), 1e-9) || !near(num(t, e, "MaxAbsErr"), maxErr, 1e-9) {
		t.Errorf("%s: weight error %v; by hand N %d, MSE %v, SQNR %v dB, max %v", scheme, e, n, noise/float64(n), 10*math.Log10(signal/noise), maxErr)
	}
	// 8 bits per channel: about 6 dB a bit less the Gaussian's peak factor; most of the codes used.
	if sq, r := num(t, e, "SQNRdB"), num(t, e, "RangeUsed"); !(sq > 30 && sq < 60) || !(r > 0.5 && r <= 1) {
		t.Errorf("%s: SQNR %v dB, range used %v", scheme, sq, r)
	}
	o, _, err := gpuquant(t, "", "inspect", "--model", tiny(t), "--scheme", scheme, "--json")
	if err != nil {
		t.Fatal(err)
	}
	// The same statistics; the float sums may differ in the last bits with the parallel order.
	total := jsonOut(t, o)["total"].(map[string]any)
	for k, v := range e {
		if f, ok := v.(float64); ok && !near(f, num(t, total, k), 1e-12) || !ok && v != total[k] {
			t.Errorf("%s: run's weight error %s = %v, inspect's %v", scheme, k, v, total[k])
		}
	}
}

func TestBenchJSON(t *testing.T) {
	o, _, err := gpuquant(t, "", "bench", "--model", tiny(t), "--prompt-tokens", "16", "--new-tokens", "4", "--repeat", "3", "--scheme", "absmax", "--json")
	if err != nil {
		t.Fatal(err)
	}
	m := jsonOut(t, o)
	keysAre(t, "bench --json", m, "model", "device", "model_bytes", "prefill_tokens_per_s", "decode_tokens_per_s", "prompt_tokens",
		"new_tokens", "repeat", "prefill_seconds", "decode_seconds", "kernel", "kernels", "peak_rss_bytes", "scheme", "bits", "granularity", "scope", "preset")
	for _, k := range []string{"prefill_tokens_per_s", "decode_tokens_per_s", "model_bytes", "peak_rss_bytes"} {
		if v := num(t, m, k); !(v > 0) {
			t.Errorf("bench --json: %s = %v", k, v)
		}
	}
	if m["kernel"] != "auto" || m["model"] != tiny(t) || m["device"] != "cpu" {
		t.Errorf("bench --json: kernel %v, model %v, device %v", m["kernel"], m["model"], m["device"])
	}
	checkScheme(t, "bench", m, "absmax", 8, "channel", "weights", "standard")
	if num(t, m, "prompt_tokens") != 16 || num(t, m, "new_tokens") != 4 || num(t, m, "repeat") != 3 {
		t.Errorf("bench --json: %v prompt, %v new tokens, repeat %v", m["prompt_tokens"], m["new_tokens"], m["repeat"])
	}
	bytes := schemeBytes(t, inspectTensors(t, tiny(t)), "absmax", 8, "channel")
	if num(t, m, "model_bytes") != float64(bytes) {
		t.Errorf("model_bytes %v, the format implies %d", m["model_bytes"], bytes)
	}
	if p := num(t, m, "peak_rss_bytes"); !(p >= float64(bytes) && p < 1<<40) {
		t.Errorf("peak_rss_bytes %v", p)
	}
	// Three timed runs (the warm-up dropped); the rates are the tokens over the medians.
	for _, c := range []struct {
		rate, secs string
		tokens     float64
	}{{"prefill_tokens_per_s", "prefill_seconds", 16}, {"decode_tokens_per_s", "decode_seconds", 4}} {
		var secs []float64
		for _, v := range m[c.secs].([]any) {
			if s := v.(float64); s > 0 {
				secs = append(secs, s)
			}
		}
		if len(secs) != 3 {
			t.Fatalf("%s %v: want 3 positive times", c.secs, m[c.secs])
		}
		slices.Sort(secs)
		if r := num(t, m, c.rate); !near(r*secs[1], c.tokens, 1e-9) {
			t.Errorf("%s %v × median %s %v = %v, want %v tokens", c.rate, r, c.secs, secs[1], r*secs[1], c.tokens)
		}
	}
	// Four runs (warm-up and three timed), each a prefill and 4 decode steps of 4·n_layer + 1
	// Linear calls, all int8.
	checkKernels(t, "bench", m["kernels"], "q8-", 4*(1+4)*(4*nLayer(t, tiny(t))+1))
}

// TestStreamedTextIsComplete: the streamed continuation equals the JSON text for the same seed,
// even when tokens split UTF-8 characters.
func TestStreamedTextIsComplete(t *testing.T) {
	dir := tiny(t)
	for seed := range 4 {
		args := []string{"generate", "--model", dir, "--prompt", "Hi", "--max-new-tokens", "40", "--top-k", "0", "--seed", string(rune('0' + seed))}
		streamed, _, err := gpuquant(t, "", args...)
		if err != nil {
			t.Fatal(err)
		}
		js, _, err := gpuquant(t, "", append(args, "--json")...)
		if err != nil {
			t.Fatal(err)
		}
		if want := "Hi" + jsonOut(t, js)["text"].(string) + "\n"; streamed != want {
			t.Fatalf("seed %d: streamed %q, JSON text %q", seed, streamed, want)
		}
	}
}

func TestEdgeArguments(t *testing.T) {
	dir := tiny(t)
	text := textFile(t, sample)
	o, _, err := gpuquant(t, "", "generate", "--model", dir, "--max-new-tokens", "0", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if ids, ok := jsonOut(t, o)["token_ids"].([]any); !ok || len(ids) != 0 {
		t.Errorf("--max-new-tokens 0: token_ids %v, want []", jsonOut(t, o)["token_ids"])
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"generate", "--model", dir, "--max-new-tokens", "-5"}, "negative"},
		{[]string{"generate", "--model", dir, "--temperature", "0"}, "temperature"},
		{[]string{"eval", "--model", dir, "--text", text, "--max-tokens", "-1"}, "negative"},
		{[]string{"eval", "--model", dir, "--text", text, "--device", "cuda:x"}, "unknown device"},
		{[]string{"eval", "--model", dir, "--text", text, "--bits", "4"}, "needs --scheme"},
		{[]string{"inspect", "--model", dir, "--granularity", "tensor"}, "needs --scheme"},
		{[]string{"eval", "--model", dir, "--text", text, "--method", "llamacpp", "--stride", "8"}, "does not apply"},
	} {
		if _, _, err := gpuquant(t, "", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	// The tutorial's scope quantizes LayerNorms and biases too; the backend runs them in float32.
	o, _, err = gpuquant(t, "", "eval", "--model", dir, "--text", text, "--scheme", "absmax", "--scope", "all", "--json")
	if err != nil {
		t.Fatalf("--scope all: %v", err)
	}
	all := jsonOut(t, o)
	if p := all["perplexity"].(float64); !(p > 1) {
		t.Errorf("--scope all perplexity %v", p)
	}
	if !near(num(t, all, "perplexity"), math.Exp(num(t, all, "nll_mean")), 1e-12) {
		t.Errorf("--scope all: perplexity %v, exp(nll_mean) %v", all["perplexity"], math.Exp(num(t, all, "nll_mean")))
	}
	checkScheme(t, "--scope all", all, "absmax", 8, "channel", "all", "standard")
	// Every tensor quantized, but the vectors are expanded back to float32 to run: the size of the
	// weights scope.
	if want := schemeBytes(t, inspectTensors(t, dir), "absmax", 8, "channel"); num(t, all, "model_bytes") != float64(want) {
		t.Errorf("--scope all: model_bytes %v, want %d", all["model_bytes"], want)
	}
}

// TestOutputFolderSafety: outputs never overlap the source and replace only what gpuquant wrote.
func TestOutputFolderSafety(t *testing.T) {
	parent := t.TempDir()
	src := filepath.Join(parent, "src")
	if _, _, err := gpuquant(t, "", "synth", "--preset", "tiny", "--n-layer", "1", "--n-positions", "16", "--out", src); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"quantize", "--model", src, "--out", parent, "--force", "--scheme", "absmax"},
		{"quantize", "--model", src, "--out", filepath.Join(src, "q"), "--scheme", "absmax"},
		{"run", "--model", src, "--out", src, "--force", "--max-new-tokens", "1"},
		{"run", "--model", src, "--out", filepath.Join(src, "report"), "--max-new-tokens", "1"},
	} {
		if _, _, err := gpuquant(t, "", args...); err == nil || !strings.Contains(err.Error(), "overlaps the source") {
			t.Errorf("%v: error %v", args, err)
		}
	}
	if _, err := os.Stat(filepath.Join(src, "model.safetensors")); err != nil {
		t.Fatalf("source damaged: %v", err)
	}
	out := filepath.Join(parent, "report")
	run := func(extra ...string) error {
		_, _, err := gpuquant(t, "", append([]string{"run", "--model", src, "--out", out, "--max-new-tokens", "1"}, extra...)...)
		return err
	}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	if err := run(); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second run without --force: %v", err)
	}
	if err := run("--force"); err != nil {
		t.Errorf("second run with --force: %v", err)
	}
	other := filepath.Join(parent, "documents")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "thesis.txt"), []byte("mine"), 0o644)
	if _, _, err := gpuquant(t, "", "synth", "--preset", "tiny", "--out", other, "--force"); err == nil || !strings.Contains(err.Error(), "refusing to replace") {
		t.Errorf("synth --force over a folder of other files: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(other, "thesis.txt")); string(data) != "mine" {
		t.Error("a user's folder was replaced")
	}
}
