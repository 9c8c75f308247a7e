package model

import (
	"math"
	"testing"
)

func TestTopN(t *testing.T) {
	logits := []float32{0.5, 3, -1, 3, 2, 0.5, 7}
	got := topN(nil, logits, 4)
	want := []int{6, 1, 3, 4} // ties by lower id
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("topN = %v, want %v", got, want)
		}
	}
	if all := topN(nil, logits, len(logits)); len(all) != 7 || all[6] != 2 {
		t.Fatalf("full order %v", all)
	}
}

// TestSampler checks reproducibility and that draws follow the filtered distribution.
func TestSampler(t *testing.T) {
	logits := []float32{2, 1, 0, -1, -30}
	draw := func(o SampleOptions, n int) []int {
		s, err := NewSampler(o)
		if err != nil {
			t.Fatal(err)
		}
		counts := make([]int, len(logits))
		for range n {
			counts[s.Next(logits)]++
		}
		return counts
	}
	a := draw(SampleOptions{Temperature: 1, TopP: 1, Seed: 5}, 1000)
	b := draw(SampleOptions{Temperature: 1, TopP: 1, Seed: 5}, 1000)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different draws: %v vs %v", a, b)
		}
	}
	n := 200000
	c := draw(SampleOptions{Temperature: 1, TopP: 1, Seed: 1}, n)
	z := 0.0
	for _, l := range logits {
		z += math.Exp(float64(l))
	}
	for i, l := range logits[:3] {
		p := math.Exp(float64(l)) / z
		if got := float64(c[i]) / float64(n); math.Abs(got-p) > 0.005 {
			t.Errorf("token %d drawn %.4f of the time, want %.4f", i, got, p)
		}
	}
	if k := draw(SampleOptions{Temperature: 1, TopK: 2, TopP: 1, Seed: 2}, 5000); k[2]+k[3]+k[4] != 0 {
		t.Errorf("top-k 2 drew outside the top 2: %v", k)
	}
	// p(0)=0.665, p(0)+p(1)=0.91: top-p 0.8 keeps exactly tokens 0 and 1.
	if k := draw(SampleOptions{Temperature: 1, TopP: 0.8, Seed: 3}, 5000); k[2]+k[3]+k[4] != 0 || k[1] == 0 {
		t.Errorf("top-p 0.8 drew %v", k)
	}
	if g := draw(SampleOptions{Greedy: true}, 10); g[0] != 10 {
		t.Errorf("greedy drew %v", g)
	}
	if g := draw(SampleOptions{Temperature: 1e-320, TopP: 1, Seed: 4}, 100); g[0] != 100 {
		t.Errorf("a subnormal temperature must act as argmax, drew %v", g)
	}
	for _, bad := range []SampleOptions{{Temperature: 0, TopP: 1}, {Temperature: 1, TopP: 0}, {Temperature: 1, TopP: 1, TopK: -1}, {Temperature: math.Inf(1), TopP: 1}} {
		if _, err := NewSampler(bad); err == nil {
			t.Errorf("options %+v accepted", bad)
		}
	}
}
