package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	tiktoken "github.com/tiktoken-go/tokenizer"
)

var adversarial = []string{
	"", "a", " ", "  ", "\n", "hello world", "Hello, world!",
	"2000", " 2000", "1234567890123", " 1234567890123", "in 2000 and 1999.",
	"XVIII", "MCMXCIV", " XVIII", "!!!", "?!?!", " ?!?!", "...", "—", " — ",
	"a\u00a0b", "a \u00a0b", "a\u00a0 b", "\u00a0\u00a0x", "x\u00a0", "\u2003em\u3000space",
	"\r\n", "a\r\nb", "a\r\n\r\nb", "\r\n\r\n", " \r\n ",
	"👍🏽", "🤖", " 🤖🤖", "a👍🏽b", "日本語のテキスト", " 日本語", "中文，标点。",
	"\n\n", "\n\nHello", "\n\n Hello", "  hello", "   hello", "  leading", "trailing   ", "trailing \n",
	"\tx", "\t\tx", " \tx", "\t x", "a\t\tb", "tab\t", "\n \n x", " \n", "\n ", "x \n\n y",
	"I'm can't they'll We'VE", "'s'S 're've'm'll'd 't", "''s", " 's", "don't", "rock'n'roll",
	"mixed: Ελληνικά русский עברית العربية हिन्दी ไทย", "café naïve", "cafe\u0301 nai\u0308ve",
	"x\u0301\u0301", " \u0301", "①②③ ½ Ⅻ ٣٤٥", "$12.50", "user@example.com", "https://x.org/a?b=c",
	"    def f(x):\n        return x  # comment\n", "a  b   c    d", "  \n  \n  ",
	"\u0085x\u0085 y", "\u2028line\u2029para", "\v\fvt", "\x00\x01ctl\x7f", "\x1c\x1dsep",
	"Ġthe ĠĊ", "\ufeffbom", "ﬁ ligature", "ǅ title", "ᾈ", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	strings.Repeat("ab", 100), strings.Repeat("1", 77), strings.Repeat("=", 60), strings.Repeat(" ", 70) + "x",
}

var (
	oracleOnce sync.Once
	oracle     tiktoken.Codec
	oracleErr  error
)

// tiktokenIDs encodes s with tiktoken-go's r50k_base (GPT-2's encoding). It
// treats "<|endoftext|>" as ordinary text.
func tiktokenIDs(t testing.TB, s string) []int32 {
	t.Helper()
	oracleOnce.Do(func() { oracle, oracleErr = tiktoken.Get(tiktoken.R50kBase) })
	if oracleErr != nil {
		t.Fatal(oracleErr)
	}
	ids, _, err := oracle.Encode(s)
	if err != nil {
		t.Fatalf("tiktoken %q: %v", s, err)
	}
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}

func wikiText(t testing.TB) string {
	t.Helper()
	cands := []string{os.Getenv("WIKITEXT_TEST_RAW"),
		"../../shared/data/wikitext-2-raw/wiki.test.raw",
		"/work/shared/data/wikitext-2-raw/wiki.test.raw"}
	for _, p := range cands {
		if p == "" {
			continue
		}
		if b, err := os.ReadFile(p); err == nil {
			return string(b)
		}
	}
	t.Skip("WikiText-2 wiki.test.raw not found (set WIKITEXT_TEST_RAW)")
	return ""
}

func checkRoundTrip(t *testing.T, tk *Tokenizer, s string, ids []int32) {
	t.Helper()
	got, err := tk.Decode(ids)
	if err != nil {
		t.Fatalf("Decode(Encode(%q)): %v", s, err)
	}
	if got != s {
		t.Fatalf("Decode(Encode(%q)) = %q", s, got)
	}
}

func showIDs(tk *Tokenizer, ids []int32) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d:%q", id, tk.Token(id))
	}
	return strings.Join(parts, " ")
}

// tiktokenBugs are inputs where tiktoken-go v0.10.0 is wrong (its regexp2
// pattern silently drops U+007F DEL); the ids here are GPT-2's (checked with
// the gpt-3-encoder port of encoder.py, see TestNodeOracle).
var tiktokenBugs = map[string][]int32{
	"\x00\x01ctl\x7f": {188, 189, 34168, 221},
}

func TestAdversarialVsTiktoken(t *testing.T) {
	tk := GPT2()
	for _, s := range adversarial {
		got := tk.Encode(s)
		want, ok := tiktokenBugs[s]
		if !ok {
			want = tiktokenIDs(t, s)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Encode(%q)\n got  %s\n want %s", s, showIDs(tk, got), showIDs(tk, want))
		}
		checkRoundTrip(t, tk, s, got)
	}
}

func TestKnownIDs(t *testing.T) {
	tk := GPT2()
	for _, c := range []struct {
		s   string
		ids []int32
	}{
		{"Hello world", []int32{15496, 995}},
		{" 2000", []int32{4751}},
		{"<|endoftext|>", []int32{EOT}},
	} {
		if got := tk.Encode(c.s); !slices.Equal(got, c.ids) {
			t.Errorf("Encode(%q) = %v, want %v", c.s, got, c.ids)
		}
	}
	if tk.VocabSize() != 50257 {
		t.Errorf("VocabSize = %d", tk.VocabSize())
	}
	if got := tk.Token(995); got != "Ġworld" {
		t.Errorf("Token(995) = %q", got)
	}
	if got := tk.Token(EOT); got != "<|endoftext|>" {
		t.Errorf("Token(EOT) = %q", got)
	}
	if tk.Token(-1) != "" || tk.Token(50257) != "" {
		t.Error("Token out of range should be empty")
	}
}

func TestPieces(t *testing.T) {
	for _, c := range []struct {
		s    string
		want []string
	}{
		{"\n\nHello", []string{"\n", "\n", "Hello"}},
		{"\n\n\nHello", []string{"\n\n", "\n", "Hello"}},
		{"  hello", []string{" ", " hello"}},
		{"a\u00a0b", []string{"a", "\u00a0", "b"}},
		{"a \u00a0b", []string{"a", " ", "\u00a0", "b"}},
		{"a\r\nb", []string{"a", "\r", "\n", "b"}},
		{"x\t\t y", []string{"x", "\t\t", " y"}},
		{"trailing   ", []string{"trailing", "   "}},
		{"I'm We'VE", []string{"I", "'m", " We", "'", "VE"}},
		{" 's", []string{" '", "s"}},
		{"a\xffb\xe2\x82", []string{"a", "\xff", "b", "\xe2\x82"}},
	} {
		var got []string
		for i := 0; i < len(c.s); {
			j := nextPiece(c.s, i)
			got = append(got, c.s[i:j])
			i = j
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("pieces(%q) = %q, want %q", c.s, got, c.want)
		}
	}
}

func TestSpecialToken(t *testing.T) {
	tk := GPT2()
	for _, s := range []string{
		"<|endoftext|>", "a<|endoftext|>b", "Hello<|endoftext|> world", "x <|endoftext|><|endoftext|>\n\nNext",
		"<|endoftext|", "<|endoftext|>  ", "  <|endoftext|>",
	} {
		// Hugging Face semantics: split the special token out first and
		// encode the segments between independently.
		var want []int32
		for k, seg := range strings.Split(s, EOTText) {
			if k > 0 {
				want = append(want, EOT)
			}
			want = append(want, tiktokenIDs(t, seg)...)
		}
		got := tk.Encode(s)
		if !slices.Equal(got, want) {
			t.Errorf("Encode(%q)\n got  %s\n want %s", s, showIDs(tk, got), showIDs(tk, want))
		}
		checkRoundTrip(t, tk, s, got)
	}
	if s, err := tk.Decode([]int32{EOT}); err != nil || s != EOTText {
		t.Errorf("Decode([EOT]) = %q, %v", s, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	tk := GPT2()
	for _, id := range []int32{-1, 50257, 1 << 30} {
		if _, err := tk.Decode([]int32{15496, id}); err == nil {
			t.Errorf("Decode with id %d: no error", id)
		}
	}
	if s, err := tk.Decode(nil); err != nil || s != "" {
		t.Errorf("Decode(nil) = %q, %v", s, err)
	}
}

func TestInvalidUTF8(t *testing.T) {
	tk := GPT2()
	rng := rand.New(rand.NewSource(1))
	inputs := []string{"\xff", "a\xffb", "\xe2\x82", "é\xe9", "\xed\xa0\x80", "\xc0\xaf", " \xff\xfe", "\xf0\x9f\x91"}
	for range 200 {
		b := make([]byte, rng.Intn(20))
		for i := range b {
			b[i] = byte(rng.Intn(256))
		}
		inputs = append(inputs, string(b))
	}
	for _, s := range inputs {
		ids := tk.Encode(s)
		checkRoundTrip(t, tk, s, ids)
	}
	// Invalid bytes behave like an "other" character such as U+FFFD: the
	// segmentation of "a\xffb" matches that of "a\ufffdb".
	if got, want := len(tk.Encode(" \xff!")), len(tk.Encode(" \x01!")); got != want {
		t.Errorf("invalid byte not grouped as other: %d vs %d tokens", got, want)
	}
}

// TestBPEScanVsHeap checks that the two BPE implementations agree.
func TestBPEScanVsHeap(t *testing.T) {
	tk := GPT2()
	st := tk.getState()
	words := slices.Clone(adversarial)
	text := wikiTextOrEmpty()
	for i := 0; i < len(text) && len(words) < 20000; {
		j := nextPiece(text, i)
		words = append(words, text[i:j])
		i = j
	}
	for _, w := range words {
		if w == "" {
			continue
		}
		a := slices.Clone(tk.bpeScan(st, w))
		b := tk.bpeHeap(st, w)
		if !slices.Equal(a, b) {
			t.Fatalf("bpe(%q): scan %v heap %v", w, a, b)
		}
	}
}

func wikiTextOrEmpty() string {
	for _, p := range []string{os.Getenv("WIKITEXT_TEST_RAW"), "../../shared/data/wikitext-2-raw/wiki.test.raw", "/work/shared/data/wikitext-2-raw/wiki.test.raw"} {
		if b, err := os.ReadFile(p); p != "" && err == nil {
			return string(b)
		}
	}
	return ""
}

func TestWikiTextVsTiktoken(t *testing.T) {
	tk := GPT2()
	raw := wikiText(t)
	norm := strings.ReplaceAll(raw, "\r\n", "\n")
	// Whole file as one string, normalised and raw.
	for name, s := range map[string]string{"LF": norm, "CRLF": raw} {
		got := tk.Encode(s)
		want := tiktokenIDs(t, s)
		if !slices.Equal(got, want) {
			i := 0
			for i < len(got) && i < len(want) && got[i] == want[i] {
				i++
			}
			t.Errorf("%s whole file: %d vs %d tokens, first difference at token %d: got %s want %s", name, len(got), len(want), i,
				showIDs(tk, got[i:min(i+5, len(got))]), showIDs(tk, want[i:min(i+5, len(want))]))
		}
		checkRoundTrip(t, tk, s, got)
		t.Logf("%s: %d bytes -> %d tokens", name, len(s), len(got))
	}
	// Line by line.
	bad := 0
	for _, line := range strings.SplitAfter(norm, "\n") {
		got := tk.Encode(line)
		want := tiktokenIDs(t, line)
		if !slices.Equal(got, want) {
			bad++
			if bad <= 5 {
				t.Errorf("line %q\n got  %s\n want %s", line, showIDs(tk, got), showIDs(tk, want))
			}
		}
		checkRoundTrip(t, tk, line, got)
	}
	if bad > 0 {
		t.Errorf("%d lines differ", bad)
	}
}

func TestNodeOracle(t *testing.T) {
	dir := os.Getenv("GPT3_ENCODER_DIR")
	node, err := exec.LookPath("node")
	if dir == "" || err != nil {
		t.Skip("set GPT3_ENCODER_DIR to the gpt-3-encoder npm package directory and have node on PATH to run")
	}
	inputs := []string{}
	for _, s := range adversarial {
		// JavaScript's \s differs from Unicode White_Space at U+0085 and U+FEFF.
		if !strings.ContainsAny(s, "\u0085\ufeff") {
			inputs = append(inputs, s)
		}
	}
	if text := wikiTextOrEmpty(); text != "" {
		inputs = append(inputs, strings.SplitAfter(strings.ReplaceAll(text, "\r\n", "\n"), "\n")...)
	}
	in, _ := json.Marshal(inputs)
	cmd := exec.Command(node, "testdata/oracle.js")
	cmd.Env = append(os.Environ(), "GPT3_ENCODER_DIR="+dir)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node oracle: %v", err)
	}
	var want [][]int32
	if err := json.Unmarshal(out, &want); err != nil || len(want) != len(inputs) {
		t.Fatalf("node oracle output: %v (%d results for %d inputs)", err, len(want), len(inputs))
	}
	tk := GPT2()
	bad := 0
	for i, s := range inputs {
		if got := tk.Encode(s); !slices.Equal(got, want[i]) {
			bad++
			if bad <= 5 {
				t.Errorf("Encode(%q)\n got  %s\n node %s", s, showIDs(tk, got), showIDs(tk, want[i]))
			}
		}
	}
	t.Logf("%d inputs compared, %d differ", len(inputs), bad)
}

// hfJSON builds a minimal Hugging Face tokenizer.json from the embedded files.
func hfJSON(t *testing.T, pairMerges bool) []byte {
	var vocab map[string]int64
	if err := json.Unmarshal(gpt2Vocab, &vocab); err != nil {
		t.Fatal(err)
	}
	var merges []any
	for i, line := range strings.Split(strings.TrimRight(string(gpt2Merges), "\n"), "\n") {
		if i == 0 {
			continue
		}
		if pairMerges {
			a, b, _ := strings.Cut(line, " ")
			merges = append(merges, []string{a, b})
		} else {
			merges = append(merges, line)
		}
	}
	doc := map[string]any{
		"version": "1.0",
		"added_tokens": []any{map[string]any{"id": EOT, "content": EOTText, "single_word": false,
			"lstrip": false, "rstrip": false, "normalized": true, "special": true}},
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"model":         map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "vocab": vocab, "merges": merges},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoad(t *testing.T) {
	ref := GPT2()
	text := strings.Join(adversarial, "|") + " x<|endoftext|>y " + wikiTextOrEmpty()[:min(200000, len(wikiTextOrEmpty()))]
	want := ref.Encode(text)

	check := func(name, dir string) {
		tk, err := Load(dir)
		if err != nil {
			t.Fatalf("%s: Load: %v", name, err)
		}
		if got := tk.Encode(text); !slices.Equal(got, want) {
			t.Errorf("%s: Encode differs from GPT2()", name)
		}
		if tk.VocabSize() != ref.VocabSize() {
			t.Errorf("%s: VocabSize %d", name, tk.VocabSize())
		}
		if s, err := tk.Decode(want); err != nil || s != text {
			t.Errorf("%s: Decode round trip failed: %v", name, err)
		}
	}

	dir := t.TempDir()
	if err := WriteGPT2Files(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vocab.json", "merges.txt"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		emb := map[string][]byte{"vocab.json": gpt2Vocab, "merges.txt": gpt2Merges}[f]
		if !bytes.Equal(b, emb) {
			t.Errorf("WriteGPT2Files: %s differs from embedded", f)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("WriteGPT2Files left %d entries", len(ents))
	}
	check("vocab.json+merges.txt", dir)

	for _, pairs := range []bool{false, true} {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, "tokenizer.json"), hfJSON(t, pairs), 0o644); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("tokenizer.json pairs=%v", pairs), d)
		// vocab.json without merges.txt next to tokenizer.json: tokenizer.json is used.
		if err := os.WriteFile(filepath.Join(d, "vocab.json"), gpt2Vocab, 0o644); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("tokenizer.json+vocab.json pairs=%v", pairs), d)
	}

	// WriteGPT2Files creates the directory.
	sub := filepath.Join(t.TempDir(), "a", "b")
	if err := WriteGPT2Files(sub); err != nil {
		t.Fatal(err)
	}
	check("nested", sub)
}

func TestLoadErrors(t *testing.T) {
	write := func(files map[string]string) string {
		d := t.TempDir()
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	// A tiny valid byte-level vocabulary: all 256 byte tokens plus "ab".
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[string(byteToRune[b])] = b
	}
	vocab["ab"] = 256
	vb, _ := json.Marshal(vocab)
	vjson := string(vb)

	ok := write(map[string]string{"vocab.json": vjson, "merges.txt": "#version: 0.2\na b\n"})
	tk, err := Load(ok)
	if err != nil {
		t.Fatalf("tiny tokenizer: %v", err)
	}
	if got := tk.Encode("cab ab"); !slices.Equal(got, []int32{'c', 256, ' ', 256}) {
		t.Errorf("tiny Encode = %v", got)
	}

	for _, c := range []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error
	}{
		{"empty dir", map[string]string{}, []string{"vocab.json", "tokenizer.json", "found"}},
		{"no merges", map[string]string{"vocab.json": vjson}, []string{"merges.txt"}},
		{"bad vocab json", map[string]string{"vocab.json": "{\"a\": 1,", "merges.txt": ""}, []string{"vocab.json", "malformed JSON"}},
		{"vocab not object", map[string]string{"vocab.json": "[1,2]", "merges.txt": ""}, []string{"vocab.json", "malformed JSON"}},
		{"unknown symbol", map[string]string{"vocab.json": vjson, "merges.txt": "#version: 0.2\na b\nab zz\n"}, []string{"merges.txt line 3", "unknown symbol \"zz\""}},
		{"result missing", map[string]string{"vocab.json": vjson, "merges.txt": "a c\n"}, []string{"merges.txt line 1", "\"ac\" is not in the vocabulary"}},
		{"bad merge line", map[string]string{"vocab.json": vjson, "merges.txt": "#version: 0.2\nabc\n"}, []string{"merges.txt line 2", "malformed merge"}},
		{"missing byte", map[string]string{"vocab.json": `{"a": 0}`, "merges.txt": ""}, []string{"vocab.json", "single-byte token"}},
		{"not byte level", map[string]string{"vocab.json": strings.Replace(vjson, "{", `{"a b": 999,`, 1), "merges.txt": ""}, []string{"vocab.json", "not a byte-level"}},
		{"bad tokenizer.json", map[string]string{"tokenizer.json": "{"}, []string{"tokenizer.json", "malformed JSON"}},
		{"tokenizer.json no model", map[string]string{"tokenizer.json": "{}"}, []string{"tokenizer.json", "model"}},
		{"tokenizer.json wordpiece", map[string]string{"tokenizer.json": `{"model":{"type":"WordPiece","vocab":{}}}`}, []string{"tokenizer.json", "WordPiece"}},
		{"tokenizer.json bad merge", map[string]string{"tokenizer.json": `{"model":{"type":"BPE","vocab":` + vjson + `,"merges":["a b", ["a","zz"]]}}`}, []string{"tokenizer.json", "model.merges[1]", "unknown symbol \"zz\""}},
		{"tokenizer.json merge shape", map[string]string{"tokenizer.json": `{"model":{"type":"BPE","vocab":` + vjson + `,"merges":[["a","b","c"]]}}`}, []string{"tokenizer.json", "model.merges[0]"}},
	} {
		d := write(c.files)
		_, err := Load(d)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
		if c.name == "empty dir" || c.name == "no merges" {
			if !strings.Contains(err.Error(), d) {
				t.Errorf("%s: error %q does not name the path", c.name, err)
			}
		}
	}
}

func TestConcurrentEncode(t *testing.T) {
	tk := GPT2()
	text := strings.Join(adversarial, " ")
	want := tk.Encode(text)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if got := tk.Encode(text); !slices.Equal(got, want) {
					t.Error("concurrent Encode differs")
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestLongPieces(t *testing.T) {
	tk := GPT2()
	// A very long single pre-token must not be quadratic.
	s := strings.Repeat("abcdefghij", 20000)
	ids := tk.Encode(s)
	checkRoundTrip(t, tk, s, ids)
	if !utf8.ValidString(s) {
		t.Fatal("unreachable")
	}
	short := s[:5000]
	if got, want := tk.Encode(short), tiktokenIDs(t, short); !slices.Equal(got, want) {
		t.Errorf("long piece differs from tiktoken")
	}
}

func benchText(b *testing.B, crlf bool) string {
	s := wikiText(b)
	if !crlf {
		s = strings.ReplaceAll(s, "\r\n", "\n")
	}
	return s
}

func BenchmarkEncodeWikiText(b *testing.B) {
	for _, crlf := range []bool{false, true} {
		name := map[bool]string{false: "LF", true: "CRLF"}[crlf]
		b.Run(name, func(b *testing.B) {
			text := benchText(b, crlf)
			tk := GPT2()
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for range b.N {
				tk.Encode(text)
			}
		})
	}
	// Cold: a fresh cache for every iteration (one new Tokenizer state).
	b.Run("LF-cold", func(b *testing.B) {
		text := benchText(b, false)
		tk := GPT2()
		b.SetBytes(int64(len(text)))
		b.ResetTimer()
		for range b.N {
			st := &encState{cache: make(map[string]uint64)}
			tk.encodeOrdinary(st, text, nil)
		}
	})
}

func BenchmarkDecodeWikiText(b *testing.B) {
	text := benchText(b, false)
	tk := GPT2()
	ids := tk.Encode(text)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for range b.N {
		if _, err := tk.Decode(ids); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRandomVsTiktoken compares random strings over an alphabet of characters
// that stress the pre-tokenizer (kinds of space, contractions, classes).
func TestRandomVsTiktoken(t *testing.T) {
	tk := GPT2()
	alphabet := []rune(" \n\t\r\u00a0\u3000\u2009\u0085aZé日1٣½Ⅻ!'stlrevmdSLRE👍\u0301-.,0")
	rng := rand.New(rand.NewSource(2))
	for range 5000 {
		r := make([]rune, rng.Intn(24))
		for i := range r {
			r[i] = alphabet[rng.Intn(len(alphabet))]
		}
		s := string(r)
		got := tk.Encode(s)
		if want := tiktokenIDs(t, s); !slices.Equal(got, want) {
			t.Fatalf("Encode(%q)\n got  %s\n want %s", s, showIDs(tk, got), showIDs(tk, want))
		}
		checkRoundTrip(t, tk, s, got)
	}
}

// FuzzEncode checks the round trip on any input and, for valid UTF-8 without
// DEL (see tiktokenBugs) or special tokens, agreement with tiktoken.
func FuzzEncode(f *testing.F) {
	for _, s := range adversarial {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tk := GPT2()
		got := tk.Encode(s)
		checkRoundTrip(t, tk, s, got)
		if utf8.ValidString(s) && !strings.Contains(s, "\x7f") && !strings.Contains(s, EOTText) {
			if want := tiktokenIDs(t, s); !slices.Equal(got, want) {
				t.Fatalf("Encode(%q)\n got  %s\n want %s", s, showIDs(tk, got), showIDs(tk, want))
			}
		}
	})
}

func BenchmarkGPT2Load(b *testing.B) {
	for range b.N {
		if _, err := fromFiles(gpt2Vocab, "vocab.json", gpt2Merges, "merges.txt"); err != nil {
			b.Fatal(err)
		}
	}
}
