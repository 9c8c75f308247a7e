package model

import "fmt"

// Session is one sequence being run: the KV cache and scratch buffers for up to MaxT positions.
// It is not safe for concurrent use.
type Session struct {
	ops  Ops
	w    *Weights
	maxT int
	pos  int

	x, h, att Buf // (maxT, C)
	qkv       Buf // (maxT, 3C)
	fc        Buf // (maxT, 4C)
	logits    Buf // (maxT, V)
	k, v      []Buf
	layer     []string // per-layer profiler range names
}

// NewSession prepares a sequence of at most maxT tokens (0 means n_positions) over weights that
// ops has uploaded.
func NewSession(ops Ops, w *Weights, maxT int) (*Session, error) {
	c := w.Config
	if maxT <= 0 {
		maxT = c.NPositions
	}
	if maxT > c.NPositions {
		return nil, fmt.Errorf("model: a session of %d tokens is longer than the model's context (n_positions %d)", maxT, c.NPositions)
	}
	s := &Session{ops: ops, w: w, maxT: maxT,
		x: ops.NewBuf(maxT, c.NEmbd), h: ops.NewBuf(maxT, c.NEmbd), att: ops.NewBuf(maxT, c.NEmbd),
		qkv: ops.NewBuf(maxT, 3*c.NEmbd), fc: ops.NewBuf(maxT, 4*c.NEmbd), logits: ops.NewBuf(maxT, c.VocabSize)}
	for l := range c.NLayer {
		s.k = append(s.k, ops.NewBuf(maxT, c.NEmbd))
		s.v = append(s.v, ops.NewBuf(maxT, c.NEmbd))
		s.layer = append(s.layer, fmt.Sprintf("layer %d", l))
	}
	if err := ops.Err(); err != nil {
		s.Close()
		return nil, fmt.Errorf("model: session of %d tokens on %s: %w", maxT, ops.Name(), err)
	}
	return s, nil
}

// Close releases the session's buffers and recorded steps; the session must not be used after.
func (s *Session) Close() {
	if g, ok := s.ops.(StepGraph); ok {
		g.DropSteps(s)
	}
	for _, b := range append([]Buf{s.x, s.h, s.att, s.qkv, s.fc, s.logits}, append(s.k, s.v...)...) {
		s.ops.Free(b)
	}
	s.k, s.v = nil, nil
}

// Pos is the number of tokens already in the cache.
func (s *Session) Pos() int { return s.pos }

// MaxT is the most tokens the session holds.
func (s *Session) MaxT() int { return s.maxT }

// Config is the model's shape.
func (s *Session) Config() Config { return s.w.Config }

// Ops is the backend the session runs on.
func (s *Session) Ops() Ops { return s.ops }

// Reset empties the cache.
func (s *Session) Reset() { s.pos = 0 }

// Forward appends tokens to the sequence and returns the logits: one row per token when all is
// true (scoring), otherwise only the last token's row (generation). The returned buffer is valid
// until the next call.
func (s *Session) Forward(tokens []int32, all bool) (Buf, error) {
	T, pos0, c, o := len(tokens), s.pos, s.w.Config, s.ops
	if T == 0 {
		return nil, fmt.Errorf("model: forward of no tokens")
	}
	if pos0+T > s.maxT {
		return nil, fmt.Errorf("model: %d tokens after %d cached exceed the context of %d positions", T, pos0, s.maxT)
	}
	for _, id := range tokens {
		if id < 0 || int(id) >= c.VocabSize {
			return nil, fmt.Errorf("model: token id %d outside the vocabulary (%d)", id, c.VocabSize)
		}
	}
	first := 0
	if !all {
		first = T - 1
	}
	logits := o.Slice(s.logits, 0, T-first)
	if g, ok := o.(StepGraph); ok && T == 1 {
		g.Step(s, tokens[0], pos0, func() { s.issueOps(tokens, pos0, first, logits) })
	} else {
		s.issueOps(tokens, pos0, first, logits)
	}
	if err := o.Err(); err != nil {
		return nil, fmt.Errorf("model: forward on %s: %w", o.Name(), err)
	}
	s.pos += T
	return logits, nil
}

// issueOps issues the ops of one forward pass: T tokens at positions pos0.., logits of rows first.. .
func (s *Session) issueOps(tokens []int32, pos0, first int, logits Buf) {
	T, c, o := len(tokens), s.w.Config, s.ops
	eps := float32(c.LayerNormE)
	x, h, att := o.Slice(s.x, 0, T), o.Slice(s.h, 0, T), o.Slice(s.att, 0, T)
	qkv, fc := o.Slice(s.qkv, 0, T), o.Slice(s.fc, 0, T)

	// x is the residual stream; each sublayer's output y is added to it in the same op that
	// normalises the sum into n, the next sublayer's input (h and att take turns as y and n, so
	// that AddLayerNorm never writes over what it reads).
	n, y := h, att
	o.Embed(x, tokens, pos0, s.w.WTE, s.w.WPE)
	o.LayerNorm(n, x, s.w.Blocks[0].Ln1.W, s.w.Blocks[0].Ln1.B, eps)
	for l := range s.w.Blocks {
		end := Trace(o, s.layer[l])
		b := &s.w.Blocks[l]
		o.Linear(qkv, n, b.QKV.W, b.QKV.B)
		o.Attention(y, qkv, s.k[l], s.v[l], pos0, c.NHead)
		o.Linear(n, y, b.AttnProj.W, b.AttnProj.B)
		n, y = y, n
		o.AddLayerNorm(n, x, y, b.Ln2.W, b.Ln2.B, eps)
		o.LinearGELU(fc, n, b.FC.W, b.FC.B)
		o.Linear(y, fc, b.FCProj.W, b.FCProj.B)
		if l+1 < len(s.w.Blocks) {
			next := &s.w.Blocks[l+1].Ln1
			o.AddLayerNorm(n, x, y, next.W, next.B, eps)
		}
		end()
	}
	// The last residual add covers every row; the final LayerNorm and the head only the rows
	// whose logits are wanted.
	if first == 0 {
		o.AddLayerNorm(n, x, y, s.w.LnF.W, s.w.LnF.B, eps)
	} else {
		o.Add(x, y)
		n = o.Slice(n, first, T)
		o.LayerNorm(n, o.Slice(x, first, T), s.w.LnF.W, s.w.LnF.B, eps)
	}
	o.Linear(logits, n, s.w.HeadTensor(), nil)
}
