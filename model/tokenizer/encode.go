package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Character classes of GPT-2's pre-tokenization pattern.
const (
	clsOther  uint8 = iota // [^\s\p{L}\p{N}], including invalid UTF-8 bytes
	clsLetter              // \p{L}
	clsNumber              // \p{N}
	clsSpace               // \s (Unicode White_Space)
)

var asciiClass = func() (c [utf8.RuneSelf]uint8) {
	for i := range c {
		switch r := rune(i); {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
			c[i] = clsLetter
		case r >= '0' && r <= '9':
			c[i] = clsNumber
		case r == ' ', r == '\t', r == '\n', r == '\v', r == '\f', r == '\r':
			c[i] = clsSpace
		default:
			c[i] = clsOther
		}
	}
	return
}()

// classAt returns the class of the character at s[i] and its size in bytes.
// A byte that does not start a valid UTF-8 sequence is one clsOther char.
func classAt(s string, i int) (uint8, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	switch {
	case n == 1: // invalid byte
		return clsOther, 1
	case unicode.IsLetter(r):
		return clsLetter, n
	case unicode.IsNumber(r):
		return clsNumber, n
	case unicode.IsSpace(r):
		return clsSpace, n
	}
	return clsOther, n
}

// nextPiece returns the end of the pre-token that starts at s[i] (i < len(s)),
// matching GPT-2's pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// as a leftmost-alternative backtracking regexp engine would.
func nextPiece(s string, i int) int {
	c := s[i]
	if c == '\'' && i+1 < len(s) {
		switch s[i+1] {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < len(s) && s[i+2] == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < len(s) && s[i+2] == 'l' {
				return i + 3
			}
		}
	}
	start := i
	cls, n := classAt(s, i)
	if c == ' ' && i+1 < len(s) {
		// " ?X+": a space joins a following letter, number or other run.
		if cls2, n2 := classAt(s, i+1); cls2 != clsSpace {
			cls, n, i = cls2, n2, i+1
		}
	}
	j := i + n
	if cls != clsSpace {
		for j < len(s) {
			if c := s[j]; c < utf8.RuneSelf {
				if asciiClass[c] != cls {
					break
				}
				j++
				continue
			}
			c2, m := classAt(s, j)
			if c2 != cls {
				break
			}
			j += m
		}
		return j
	}
	// Whitespace run [start, j); last is where its final char starts.
	last := start
	for j < len(s) {
		c2, m := classAt(s, j)
		if c2 != clsSpace {
			break
		}
		last = j
		j += m
	}
	if j == len(s) {
		return j // \s+(?!\S) at the end of the text
	}
	if last > start {
		// \s+(?!\S) backtracks one char so that the last whitespace char is
		// left for the next token (" ?X+" if it is ' ', else "\s+").
		return last
	}
	return j // a single whitespace char before a non-space: \s+
}

// Cache bounds: the per-state cache is cleared when it holds this many
// pre-tokens or its arena this many ids.
const (
	maxCacheEntries = 1 << 16
	maxCacheIDs     = 1 << 20
	// Pieces longer than this are not cached.
	maxCachedPieceLen = 256
)

// encState is per-goroutine scratch space, kept in a sync.Pool.
type encState struct {
	cache map[string]uint64 // piece -> offset<<32 | length into arena
	arena []int32
	syms  []int32
	heap  bpeHeap
	nodes []bpeNode
}

func (t *Tokenizer) getState() *encState {
	if st, ok := t.states.Get().(*encState); ok {
		return st
	}
	return &encState{cache: make(map[string]uint64, 1024)}
}

// Encode returns the token ids of text. It never fails; see the package
// documentation for special tokens and invalid UTF-8.
func (t *Tokenizer) Encode(text string) []int32 {
	st := t.getState()
	defer t.states.Put(st)
	out := make([]int32, 0, len(text)/4+4)
	if len(t.specials) == 0 {
		return t.encodeOrdinary(st, text, out)
	}
	// next[k] is the next occurrence of specials[k] at or after pos (or -1).
	var nextBuf [4]int
	next := nextBuf[:0]
	for _, sp := range t.specials {
		next = append(next, strings.Index(text, sp.text))
	}
	pos := 0
	for {
		best := -1
		for k, at := range next {
			if at >= 0 && (best < 0 || at < next[best]) { // ties: longest (sorted first)
				best = k
			}
		}
		if best < 0 {
			break
		}
		at := next[best]
		out = t.encodeOrdinary(st, text[pos:at], out)
		out = append(out, t.specials[best].id)
		pos = at + len(t.specials[best].text)
		for k, a := range next {
			if a >= 0 && a < pos {
				if r := strings.Index(text[pos:], t.specials[k].text); r >= 0 {
					next[k] = pos + r
				} else {
					next[k] = -1
				}
			}
		}
	}
	return t.encodeOrdinary(st, text[pos:], out)
}

// encodeOrdinary encodes text that contains no special tokens.
func (t *Tokenizer) encodeOrdinary(st *encState, text string, out []int32) []int32 {
	for i := 0; i < len(text); {
		j := nextPiece(text, i)
		piece := text[i:j]
		i = j
		if len(piece) == 1 {
			out = append(out, t.byteID[piece[0]])
			continue
		}
		if len(piece) > maxCachedPieceLen {
			out = append(out, t.bpe(st, piece)...)
			continue
		}
		if v, ok := st.cache[piece]; ok {
			out = append(out, st.arena[v>>32:v>>32+v&0xffffffff]...)
			continue
		}
		ids := t.bpe(st, piece)
		out = append(out, ids...)
		if len(st.cache) >= maxCacheEntries || len(st.arena)+len(ids) > maxCacheIDs {
			clear(st.cache)
			st.arena = st.arena[:0]
		}
		st.cache[strings.Clone(piece)] = uint64(len(st.arena))<<32 | uint64(len(ids))
		st.arena = append(st.arena, ids...)
	}
	return out
}

// bpeScanMax is the piece length up to which bpe uses the simple quadratic
// algorithm; longer pieces use the O(n log n) heap version.
const bpeScanMax = 48

// bpe returns the ids piece merges into. The result aliases st's scratch
// space and is valid until the next call.
func (t *Tokenizer) bpe(st *encState, piece string) []int32 {
	if len(piece) > bpeScanMax {
		return t.bpeHeap(st, piece)
	}
	return t.bpeScan(st, piece)
}

// bpeScan is GPT-2's encoder.py bpe(): find the pair with the lowest merge
// rank, merge every occurrence of it left to right, repeat.
func (t *Tokenizer) bpeScan(st *encState, piece string) []int32 {
	syms := st.syms[:0]
	for i := 0; i < len(piece); i++ {
		syms = append(syms, t.byteID[piece[i]])
	}
	for len(syms) > 1 {
		best := merge{rank: -1}
		bi := -1
		for i := 0; i+1 < len(syms); i++ {
			if m, ok := t.merges[pairKey(syms[i], syms[i+1])]; ok && (bi < 0 || m.rank < best.rank) {
				best, bi = m, i
			}
		}
		if bi < 0 {
			break
		}
		a, b := syms[bi], syms[bi+1]
		w := bi
		for r := bi; r < len(syms); {
			if r+1 < len(syms) && syms[r] == a && syms[r+1] == b {
				syms[w] = best.id
				r += 2
			} else {
				syms[w] = syms[r]
				r++
			}
			w++
		}
		syms = syms[:w]
	}
	st.syms = syms
	return syms
}

type bpeNode struct {
	id         int32
	prev, next int32 // indices into nodes; -1 at the ends
}

type bpeItem struct {
	rank int32
	pos  int32 // index of the left node
	a, b int32 // the pair's ids when pushed (to detect stale items)
}

type bpeHeap []bpeItem

func (h bpeHeap) less(i, j int) bool {
	return h[i].rank < h[j].rank || (h[i].rank == h[j].rank && h[i].pos < h[j].pos)
}

func (h *bpeHeap) push(it bpeItem) {
	*h = append(*h, it)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *bpeHeap) pop() bpeItem {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(s) && s.less(l, m) {
			m = l
		}
		if l+1 < len(s) && s.less(l+1, m) {
			m = l + 1
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// bpeHeap gives the same result as bpeScan in O(n log n): it merges the
// lowest-rank pair, leftmost first, one occurrence at a time. Merging every
// occurrence of a pair left to right in one pass (bpeScan) is the same as
// merging them one at a time leftmost first, since a merge only creates
// pairs that involve the new symbol and so are never the pair just merged,
// and (in any trained merge list, GPT-2's included) a merge that involves a
// token ranks after the merge that makes it, so new pairs never jump ahead
// of the remaining occurrences of the pair just merged.
func (t *Tokenizer) bpeHeap(st *encState, piece string) []int32 {
	n := len(piece)
	nodes := st.nodes[:0]
	for i := 0; i < n; i++ {
		nodes = append(nodes, bpeNode{id: t.byteID[piece[i]], prev: int32(i - 1), next: int32(i + 1)})
	}
	nodes[n-1].next = -1
	h := st.heap[:0]
	for i := 0; i+1 < n; i++ {
		if m, ok := t.merges[pairKey(nodes[i].id, nodes[i+1].id)]; ok {
			h.push(bpeItem{rank: m.rank, pos: int32(i), a: nodes[i].id, b: nodes[i+1].id})
		}
	}
	for len(h) > 0 {
		it := h.pop()
		l := &nodes[it.pos]
		if l.id != it.a || l.next < 0 || nodes[l.next].id != it.b {
			continue // stale
		}
		m := t.merges[pairKey(it.a, it.b)]
		r := l.next
		l.id = m.id
		l.next = nodes[r].next
		nodes[r].id = -1
		if l.next >= 0 {
			nodes[l.next].prev = it.pos
			if m2, ok := t.merges[pairKey(l.id, nodes[l.next].id)]; ok {
				h.push(bpeItem{rank: m2.rank, pos: it.pos, a: l.id, b: nodes[l.next].id})
			}
		}
		if l.prev >= 0 {
			p := &nodes[l.prev]
			if m2, ok := t.merges[pairKey(p.id, l.id)]; ok {
				h.push(bpeItem{rank: m2.rank, pos: l.prev, a: p.id, b: l.id})
			}
		}
	}
	syms := st.syms[:0]
	for i := int32(0); i >= 0; i = nodes[i].next {
		syms = append(syms, nodes[i].id)
	}
	st.syms, st.heap, st.nodes = syms, h, nodes
	return syms
}
