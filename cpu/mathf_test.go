package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestExpfTanhf(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		x := float32(rng.Float64()*175 - 87) // [−87, 88]
		want := math.Exp(float64(x))
		if got := float64(expf(x)); math.Abs(got-want) > 4e-7*want {
			t.Fatalf("expf(%v) = %v, want %v", x, got, want)
		}
		y := float32(rng.NormFloat64() * 4)
		if got, want := float64(tanhf(y)), math.Tanh(float64(y)); math.Abs(got-want) > 3e-7 {
			t.Fatalf("tanhf(%v) = %v, want %v", y, got, want)
		}
	}
	if expf(100) != float32(math.Inf(1)) || expf(-100) != 0 || tanhf(20) != 1 || tanhf(-20) != -1 {
		t.Fatal("saturation")
	}
}
