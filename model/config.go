// Package model is GPT-2 written once: configuration, checkpoint loading (Hugging Face layouts),
// the forward pass over the backend seam Ops, KV cache bookkeeping, sampling and perplexity.
// It never imports cgo or CUDA; backends (cpu, gpu) implement Ops.
package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Config is the subset of a Hugging Face GPT-2 config.json that defines the network's shape.
type Config struct {
	NLayer     int     `json:"n_layer"`
	NHead      int     `json:"n_head"`
	NEmbd      int     `json:"n_embd"`
	NPositions int     `json:"n_positions"`
	VocabSize  int     `json:"vocab_size"`
	LayerNormE float64 `json:"layer_norm_epsilon"`
	// TieEmbeddings (tie_word_embeddings, default true) makes wte the LM head, as transformers
	// does: a stored lm_head.weight is then ignored.
	TieEmbeddings bool `json:"tie_word_embeddings"`
}

// Presets are the shapes of the published GPT-2 checkpoints, plus "tiny" for tests.
var Presets = map[string]Config{
	"tiny":        {NLayer: 2, NHead: 2, NEmbd: 64, NPositions: 128, VocabSize: 50257, LayerNormE: 1e-5, TieEmbeddings: true},
	"gpt2":        {NLayer: 12, NHead: 12, NEmbd: 768, NPositions: 1024, VocabSize: 50257, LayerNormE: 1e-5, TieEmbeddings: true},
	"gpt2-medium": {NLayer: 24, NHead: 16, NEmbd: 1024, NPositions: 1024, VocabSize: 50257, LayerNormE: 1e-5, TieEmbeddings: true},
	"gpt2-large":  {NLayer: 36, NHead: 20, NEmbd: 1280, NPositions: 1024, VocabSize: 50257, LayerNormE: 1e-5, TieEmbeddings: true},
	"gpt2-xl":     {NLayer: 48, NHead: 25, NEmbd: 1600, NPositions: 1024, VocabSize: 50257, LayerNormE: 1e-5, TieEmbeddings: true},
}

// HeadDim is the width of one attention head.
func (c Config) HeadDim() int { return c.NEmbd / c.NHead }

// Validate reports a config that cannot describe a GPT-2.
func (c Config) Validate() error {
	switch {
	case c.NLayer <= 0, c.NHead <= 0, c.NEmbd <= 0, c.NPositions <= 0, c.VocabSize <= 0:
		return fmt.Errorf("n_layer, n_head, n_embd, n_positions and vocab_size must all be positive (got %d, %d, %d, %d, %d)",
			c.NLayer, c.NHead, c.NEmbd, c.NPositions, c.VocabSize)
	case c.NEmbd%c.NHead != 0:
		return fmt.Errorf("n_embd %d is not a multiple of n_head %d", c.NEmbd, c.NHead)
	case c.LayerNormE <= 0:
		return fmt.Errorf("layer_norm_epsilon must be positive (got %g)", c.LayerNormE)
	}
	return nil
}

// LoadConfig reads dir/config.json. A missing layer_norm_epsilon takes GPT-2's 1e-5; older
// checkpoints name the context n_ctx instead of n_positions.
func LoadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("model: %w", err)
	}
	var raw struct {
		Config
		NCtx int `json:"n_ctx"`
	}
	raw.LayerNormE = 1e-5
	raw.TieEmbeddings = true
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, fmt.Errorf("model: %s: malformed JSON: %w", path, err)
	}
	c := raw.Config
	if c.NPositions == 0 {
		c.NPositions = raw.NCtx
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("model: %s: %w", path, err)
	}
	return c, nil
}

// WriteConfig writes c as a Hugging Face config.json that transformers' GPT2LMHeadModel loads.
func WriteConfig(dir string, c Config) error {
	m := map[string]any{
		"model_type":          "gpt2",
		"architectures":       []string{"GPT2LMHeadModel"},
		"activation_function": "gelu_new",
		"n_layer":             c.NLayer,
		"n_head":              c.NHead,
		"n_embd":              c.NEmbd,
		"n_positions":         c.NPositions,
		"n_ctx":               c.NPositions,
		"vocab_size":          c.VocabSize,
		"layer_norm_epsilon":  c.LayerNormE,
		"bos_token_id":        50256,
		"eos_token_id":        50256,
		"tie_word_embeddings": c.TieEmbeddings,
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, "config.json"), append(data, '\n'))
}
