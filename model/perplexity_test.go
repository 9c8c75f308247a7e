package model

import (
	"reflect"
	"testing"
)

func TestWindows(t *testing.T) {
	for _, tc := range []struct {
		n    int
		opt  PerplexityOptions
		want []window
	}{
		// Hugging Face: every token but the first scored exactly once.
		{10, PerplexityOptions{MaxLength: 4, Stride: 2}, []window{{0, 1, 4}, {2, 4, 6}, {4, 6, 8}, {6, 8, 10}}},
		{10, PerplexityOptions{MaxLength: 4, Stride: 4}, []window{{0, 1, 4}, {4, 5, 8}, {8, 9, 10}}},
		{3, PerplexityOptions{MaxLength: 8, Stride: 4}, []window{{0, 1, 3}}},
		// llama.cpp: whole windows only; logits n_ctx/2 .. n_ctx-2 predict the next token.
		{18, PerplexityOptions{MaxLength: 8, Method: MethodLlamaCpp}, []window{{0, 5, 8}, {8, 13, 16}}},
	} {
		if got := windows(tc.n, tc.opt); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("windows(%d, %+v) = %v, want %v", tc.n, tc.opt, got, tc.want)
		}
	}
}
