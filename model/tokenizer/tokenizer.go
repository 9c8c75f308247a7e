// Package tokenizer is an exact GPT-2 byte-level BPE tokenizer, written from
// scratch for this project.
//
// We deliberately do not use github.com/sugarme/tokenizer: measured against
// GPT-2 it is wrong in several ways. Its BPE breaks equal-rank ties by an
// unset field, so " 2000" becomes " 20"+"00"; its pre-tokenization regexp
// lacks GPT-2's `\s+(?!\S)` (Go's regexp has no look-ahead), so blank lines
// before text are grouped wrongly; Go's regexp `\s` is ASCII-only, so NBSP
// and other Unicode spaces are grouped wrongly; `<|endoftext|>` is silently
// dropped when loading tokenizer.json; and it runs at about 0.25 MB/s.
//
// Pre-tokenization is a hand-written scanner that reproduces GPT-2's pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// with Unicode semantics: \s is Unicode White_Space (unicode.IsSpace, which
// includes NBSP U+00A0 and NEL U+0085), \p{L} is unicode.IsLetter, \p{N} is
// unicode.IsNumber, and the contractions are matched case-sensitively, as in
// GPT-2. BPE repeatedly merges the adjacent pair with the lowest merge rank,
// leftmost first, exactly as GPT-2's encoder.py does.
//
// Special tokens: like Hugging Face's tokenizers, added/special tokens (for
// GPT2() just "<|endoftext|>", id EOT) are split out of the text before
// pre-tokenization, so "a<|endoftext|>b" encodes as [a, EOT, b], and the
// text segments on either side are pre-tokenized independently. Decode of a
// special token id gives back its literal text, e.g. "<|endoftext|>".
// (OpenAI's Python tiktoken instead refuses such text unless allowed_special
// is given, tiktoken-go encodes it as ordinary text, and so does GPT-2's
// original encoder.py.)
//
// Invalid UTF-8: Encode never fails or panics. Each byte that is not part of
// a valid UTF-8 sequence is treated, for pre-tokenization, as a character of
// the "other" class ([^\s\p{L}\p{N}], like U+FFFD) and is encoded as its own
// byte. This is what GPT-2's encoder would produce for the text decoded with
// Python's errors="surrogateescape" and encoded back the same way. Decode
// returns the raw bytes of the tokens, which for a split multi-byte character
// may be invalid UTF-8; for valid UTF-8 input decode(encode(x)) == x exactly,
// and in fact for any input.
//
// A Tokenizer is safe for concurrent use.
package tokenizer

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gpuquant/gpuquant/model"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// EOT is the id of GPT-2's "<|endoftext|>" token.
const EOT = 50256

// EOTText is the text of GPT-2's end-of-text special token.
const EOTText = "<|endoftext|>"

//go:embed gpt2/vocab.json
var gpt2Vocab []byte

//go:embed gpt2/merges.txt
var gpt2Merges []byte

// merge is the result of merging one pair of symbols.
type merge struct {
	rank int32 // priority: lower merges first
	id   int32 // id of the merged token
}

type special struct {
	text string
	id   int32
}

// Tokenizer is a byte-level BPE tokenizer (GPT-2 style).
type Tokenizer struct {
	tokens   []string // id -> raw vocab string ("" for an unused id)
	decoded  []string // id -> bytes the token stands for
	present  []bool   // id -> whether the id is assigned
	byteID   [256]int32
	merges   map[uint64]merge
	specials []special // sorted longest first
	states   sync.Pool // *encState
}

var (
	gpt2Once sync.Once
	gpt2Tok  *Tokenizer
)

// GPT2 returns the tokenizer for OpenAI's GPT-2 vocabulary (50257 tokens),
// parsed once from the embedded vocab.json and merges.txt.
func GPT2() *Tokenizer {
	gpt2Once.Do(func() {
		t, err := fromFiles(gpt2Vocab, "gpt2/vocab.json", gpt2Merges, "gpt2/merges.txt")
		if err != nil {
			panic("tokenizer: embedded GPT-2 files: " + err.Error())
		}
		gpt2Tok = t
	})
	return gpt2Tok
}

// WriteGPT2Files writes the embedded GPT-2 vocab.json and merges.txt into dir
// (created if needed), each through a temporary file and a rename.
func WriteGPT2Files(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := model.WriteFileAtomic(filepath.Join(dir, "vocab.json"), gpt2Vocab); err != nil {
		return err
	}
	return model.WriteFileAtomic(filepath.Join(dir, "merges.txt"), gpt2Merges)
}

// Load reads a byte-level BPE tokenizer from dir, which holds either
// vocab.json and merges.txt (GPT-2 / Hugging Face "slow" layout) or else a
// Hugging Face tokenizer.json (model.vocab, model.merges as "a b" strings or
// ["a","b"] pairs, and added_tokens). With vocab.json, "<|endoftext|>" is
// treated as a special token if the vocabulary has it; with tokenizer.json,
// every entry of added_tokens is (only its content and id are used).
func Load(dir string) (*Tokenizer, error) {
	vpath := filepath.Join(dir, "vocab.json")
	mpath := filepath.Join(dir, "merges.txt")
	tpath := filepath.Join(dir, "tokenizer.json")
	vdata, verr := os.ReadFile(vpath)
	mdata, merr := os.ReadFile(mpath)
	if verr == nil && merr == nil {
		return fromFiles(vdata, vpath, mdata, mpath)
	}
	tdata, terr := os.ReadFile(tpath)
	if terr == nil {
		return fromTokenizerJSON(tdata, tpath)
	}
	switch {
	case verr == nil:
		return nil, fmt.Errorf("tokenizer: %s exists but %w (and %s: %v)", vpath, merr, tpath, terr)
	case !errors.Is(verr, os.ErrNotExist):
		return nil, fmt.Errorf("tokenizer: %w", verr)
	case !errors.Is(terr, os.ErrNotExist):
		return nil, fmt.Errorf("tokenizer: %w", terr)
	}
	return nil, fmt.Errorf("tokenizer: %s: neither %s (with merges.txt) nor %s found", dir, vpath, tpath)
}

func fromFiles(vdata []byte, vpath string, mdata []byte, mpath string) (*Tokenizer, error) {
	var vocab map[string]int64
	if err := json.Unmarshal(vdata, &vocab); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: malformed JSON: %w", vpath, err)
	}
	var pairs [][2]string
	var lines []int
	for i, line := range strings.Split(string(mdata), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if (i == 0 && strings.HasPrefix(line, "#version")) || line == "" {
			continue
		}
		pair, ok := splitMerge(line)
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s line %d: malformed merge %q (want two symbols separated by one space)", mpath, i+1, line)
		}
		pairs = append(pairs, pair)
		lines = append(lines, i+1)
	}
	var specials []special
	if id, ok := vocab[EOTText]; ok {
		specials = append(specials, special{EOTText, int32(id)})
	}
	return build(vocab, vpath, pairs, func(i int) string {
		return fmt.Sprintf("%s line %d", mpath, lines[i])
	}, specials)
}

type hfTokenizerJSON struct {
	AddedTokens []struct {
		ID      *int64 `json:"id"`
		Content string `json:"content"`
	} `json:"added_tokens"`
	Model *struct {
		Type   string           `json:"type"`
		Vocab  map[string]int64 `json:"vocab"`
		Merges json.RawMessage  `json:"merges"`
	} `json:"model"`
}

func fromTokenizerJSON(data []byte, path string) (*Tokenizer, error) {
	var tj hfTokenizerJSON
	if err := json.Unmarshal(data, &tj); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: malformed JSON: %w", path, err)
	}
	if tj.Model == nil {
		return nil, fmt.Errorf("tokenizer: %s: no \"model\" object", path)
	}
	if tj.Model.Type != "" && tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("tokenizer: %s: model.type is %q, only \"BPE\" is supported", path, tj.Model.Type)
	}
	if tj.Model.Vocab == nil {
		return nil, fmt.Errorf("tokenizer: %s: no model.vocab", path)
	}
	var pairs [][2]string
	if m := bytes.TrimSpace(tj.Model.Merges); len(m) > 0 && !bytes.Equal(m, []byte("null")) {
		var raw []json.RawMessage
		if err := json.Unmarshal(m, &raw); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: model.merges is not an array: %w", path, err)
		}
		for i, r := range raw {
			var s string
			var p []string
			if err := json.Unmarshal(r, &s); err == nil {
				pair, ok := splitMerge(s)
				if !ok {
					return nil, fmt.Errorf("tokenizer: %s: model.merges[%d]: malformed merge %q", path, i, s)
				}
				pairs = append(pairs, pair)
			} else if err := json.Unmarshal(r, &p); err == nil && len(p) == 2 && p[0] != "" && p[1] != "" {
				pairs = append(pairs, [2]string{p[0], p[1]})
			} else {
				return nil, fmt.Errorf("tokenizer: %s: model.merges[%d]: want \"a b\" or [\"a\",\"b\"], got %s", path, i, r)
			}
		}
	}
	vocab := tj.Model.Vocab
	var specials []special
	for i, at := range tj.AddedTokens {
		if at.ID == nil || at.Content == "" {
			return nil, fmt.Errorf("tokenizer: %s: added_tokens[%d]: needs an id and a non-empty content", path, i)
		}
		if id, ok := vocab[at.Content]; ok && id != *at.ID {
			return nil, fmt.Errorf("tokenizer: %s: added_tokens[%d] %q has id %d but model.vocab says %d", path, i, at.Content, *at.ID, id)
		}
		if *at.ID < 0 || *at.ID > math.MaxInt32 {
			return nil, fmt.Errorf("tokenizer: %s: added_tokens[%d] %q: id %d out of range", path, i, at.Content, *at.ID)
		}
		specials = append(specials, special{at.Content, int32(*at.ID)})
	}
	return build(vocab, path+": model.vocab", pairs, func(i int) string {
		return fmt.Sprintf("%s: model.merges[%d]", path, i)
	}, specials)
}

// build assembles a Tokenizer. where(i) names merge i in error messages.
func build(vocab map[string]int64, vname string, pairs [][2]string, where func(int) string, specials []special) (*Tokenizer, error) {
	maxID := int64(-1)
	for s, id := range vocab {
		if id < 0 || id >= math.MaxInt32 {
			return nil, fmt.Errorf("tokenizer: %s: token %q has id %d out of range", vname, s, id)
		}
		maxID = max(maxID, id)
	}
	for _, sp := range specials {
		maxID = max(maxID, int64(sp.id))
	}
	if maxID < 0 {
		return nil, fmt.Errorf("tokenizer: %s: empty vocabulary", vname)
	}
	n := int(maxID) + 1
	t := &Tokenizer{
		tokens:  make([]string, n),
		decoded: make([]string, n),
		present: make([]bool, n),
		merges:  make(map[uint64]merge, len(pairs)),
	}
	isSpecial := make(map[int32]bool, len(specials))
	for _, sp := range specials {
		isSpecial[sp.id] = true
		t.tokens[sp.id] = sp.text
		t.decoded[sp.id] = sp.text
		t.present[sp.id] = true
	}
	for s, id := range vocab {
		if t.present[id] && !isSpecial[int32(id)] {
			return nil, fmt.Errorf("tokenizer: %s: id %d used by both %q and %q", vname, id, t.tokens[id], s)
		}
		t.tokens[id] = s
		t.present[id] = true
		if isSpecial[int32(id)] {
			continue
		}
		b, ok := unicodeToBytes(s)
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s: token %q (id %d) is not a byte-level BPE token", vname, s, id)
		}
		t.decoded[id] = b
	}
	for b := 0; b < 256; b++ {
		s := string(byteToRune[b])
		id, ok := vocab[s]
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s: missing the single-byte token %q for byte 0x%02x", vname, s, b)
		}
		t.byteID[b] = int32(id)
	}
	for i, p := range pairs {
		a, ok := vocab[p[0]]
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s: merge %q %q: unknown symbol %q", where(i), p[0], p[1], p[0])
		}
		b, ok := vocab[p[1]]
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s: merge %q %q: unknown symbol %q", where(i), p[0], p[1], p[1])
		}
		m, ok := vocab[p[0]+p[1]]
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s: merge %q %q: result %q is not in the vocabulary", where(i), p[0], p[1], p[0]+p[1])
		}
		// Like GPT-2's dict(zip(merges, range(...))), a repeated pair keeps
		// its last rank.
		t.merges[pairKey(int32(a), int32(b))] = merge{rank: int32(i), id: int32(m)}
	}
	sort.SliceStable(specials, func(i, j int) bool { return len(specials[i].text) > len(specials[j].text) })
	t.specials = specials
	return t, nil
}

// VocabSize returns the number of token ids (one more than the largest id).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Token returns the raw vocabulary string of id (for GPT-2 in its byte-to-
// unicode form, e.g. "Ġthe" for " the"), or "" if id is not assigned.
func (t *Tokenizer) Token(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// Decode returns the text of ids: the concatenated bytes of the tokens, and
// the literal text of special tokens. The result may be invalid UTF-8 if ids
// split a multi-byte character. An id that is out of range or unassigned is
// an error.
func (t *Tokenizer) Decode(ids []int32) (string, error) {
	n := 0
	for _, id := range ids {
		if id < 0 || int(id) >= len(t.tokens) || !t.present[id] {
			return "", fmt.Errorf("tokenizer: decode: invalid token id %d (vocabulary size %d)", id, len(t.tokens))
		}
		n += len(t.decoded[id])
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, id := range ids {
		sb.WriteString(t.decoded[id])
	}
	return sb.String(), nil
}

// byteToRune is GPT-2's bytes_to_unicode: printable Latin-1 bytes map to
// themselves, the rest to U+0100 upwards in byte order.
var byteToRune [256]rune

// runeToByte inverts byteToRune; -1 where unmapped.
var runeToByte [324]int16

func init() {
	n := rune(0)
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = 256 + n
			n++
		}
	}
	for i := range runeToByte {
		runeToByte[i] = -1
	}
	for b, r := range byteToRune {
		runeToByte[r] = int16(b)
	}
}

func unicodeToBytes(s string) (string, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r < 0 || int(r) >= len(runeToByte) || runeToByte[r] < 0 {
			return "", false
		}
		out = append(out, byte(runeToByte[r]))
	}
	return string(out), true
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// splitMerge reads a merge rule "a b": two non-empty symbols separated by one space.
func splitMerge(s string) ([2]string, bool) {
	a, b, ok := strings.Cut(s, " ")
	return [2]string{a, b}, ok && a != "" && b != "" && !strings.Contains(b, " ")
}

// Merges returns the merge rules in rank order as "a b" strings (merges.txt's lines).
func (t *Tokenizer) Merges() []string {
	type ranked struct {
		rank int32
		text string
	}
	rs := make([]ranked, 0, len(t.merges))
	for k, m := range t.merges {
		a, b := int32(k>>32), int32(uint32(k))
		rs = append(rs, ranked{m.rank, t.tokens[a] + " " + t.tokens[b]})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].rank < rs[j].rank })
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.text
	}
	return out
}

// IsSpecial reports whether id is a special token (matched as literal text, like <|endoftext|>).
func (t *Tokenizer) IsSpecial(id int32) bool {
	for _, sp := range t.specials {
		if sp.id == id {
			return true
		}
	}
	return false
}

// New builds a tokenizer from its vocabulary by id (tokens[id]; "" for an unused id), merge
// rules "a b" in rank order, and the ids of its special tokens (what a GGUF file holds). where
// names the source in errors.
func New(tokens []string, merges []string, specialIDs []int32, where string) (*Tokenizer, error) {
	vocab := make(map[string]int64, len(tokens))
	for id, s := range tokens {
		if s != "" {
			vocab[s] = int64(id)
		}
	}
	var specials []special
	for _, id := range specialIDs {
		if id < 0 || int(id) >= len(tokens) || tokens[id] == "" {
			return nil, fmt.Errorf("tokenizer: %s: special token id %d is not in the vocabulary", where, id)
		}
		specials = append(specials, special{tokens[id], id})
	}
	pairs := make([][2]string, len(merges))
	for i, m := range merges {
		var ok bool
		if pairs[i], ok = splitMerge(m); !ok {
			return nil, fmt.Errorf("tokenizer: %s merge %d: malformed %q (want two symbols separated by one space)", where, i, m)
		}
	}
	return build(vocab, where, pairs, func(i int) string { return fmt.Sprintf("%s merge %d", where, i) }, specials)
}
