package model_test

import (
	"math"
	"testing"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/model"
)

// TestCompareRowsByHand checks KL(reference ‖ model) and top-1 agreement on a 3×3 logits matrix
// whose values are worked out on paper, with the matrices on two CPU backends (as eval
// --compare-to runs them).
func TestCompareRowsByHand(t *testing.T) {
	e := math.E
	for _, tc := range []struct {
		name      string
		got, ref  []float32 // 3 rows of 3 logits, row-major
		kl, agree float64
	}{
		{
			// Row 0: the same distribution shifted by 1000 (log-softmax is shift-invariant, and
			// exp(1003) would overflow without the max subtracted): KL 0, argmax 2 on both.
			// Row 1: reference uniform p = 1/3; model logits (1, 0, 0) give q = (e, 1, 1)/(e+2).
			// KL = Σ p·log(p/q) = ⅓[log((e+2)/(3e)) + 2·log((e+2)/3)] = log((e+2)/3) − ⅓;
			// argmax 0 on both (the uniform row's tie goes to the lowest index).
			// Row 2: reference (0, 2, 0), p = (1, e², 1)/(e²+2); model uniform q = 1/3.
			// KL = Σ p·log(3p) = log 3 + Σ p·x − log(e²+2) = log 3 + 2e²/(e²+2) − log(e²+2);
			// argmax 1 (reference) against 0 (model): a disagreement.
			name: "three rows",
			got:  []float32{1001, 1002, 1003, 1, 0, 0, 0, 0, 0},
			ref:  []float32{1, 2, 3, 0, 0, 0, 0, 2, 0},
			kl:   0 + (math.Log((e+2)/3) - 1.0/3) + (math.Log(3) + 2*e*e/(e*e+2) - math.Log(e*e+2)),
			// = 0.11950 + 0.43304; the arguments swapped (KL(model ‖ reference), the next case)
			// give 0.12328 + 0.47427 for these rows, so a swap fails.
			agree: 2,
		},
		{
			// The direction matters: swapped, row 1 is KL(q ‖ uniform) = log 3 + e/(e+2) − log(e+2)
			// and row 2 is KL(uniform ‖ p) = ⅓·Σ log(1/(3p)) = log((e²+2)/3) − ⅔.
			name:  "swapped",
			got:   []float32{1, 2, 3, 0, 0, 0, 0, 2, 0},
			ref:   []float32{1001, 1002, 1003, 1, 0, 0, 0, 0, 0},
			kl:    (math.Log(3) + e/(e+2) - math.Log(e+2)) + (math.Log((e*e+2)/3) - 2.0/3),
			agree: 2,
		},
		{
			// Row 1 ties at 7: both argmaxes take index 0.
			name:  "identical",
			got:   []float32{-3, 5, 0.5, 7, 7, -1, 0, 0, 0},
			ref:   []float32{-3, 5, 0.5, 7, 7, -1, 0, 0, 0},
			kl:    0,
			agree: 3,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, ro := cpu.New(), cpu.New()
			got, ref := o.NewBuf(3, 3).(*cpu.Buf), ro.NewBuf(3, 3).(*cpu.Buf)
			copy(got.Data, tc.got)
			copy(ref.Data, tc.ref)
			kl, agree, err := model.CompareRows(o, got, ro, ref)
			if err != nil {
				t.Fatal(err)
			}
			// The inputs are exact in float32 and the sums run in float64.
			if math.Abs(kl-tc.kl) > 1e-12 {
				t.Errorf("KL sum %.15g, by hand %.15g", kl, tc.kl)
			}
			if agree != tc.agree {
				t.Errorf("top-1 agreements %v, by hand %v", agree, tc.agree)
			}
		})
	}
}
