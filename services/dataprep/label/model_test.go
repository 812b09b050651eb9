package label

import (
	"math"
	"math/rand/v2"
	"testing"
)

// synthetic draws a label matrix from ground truth: each function votes
// with probability coverage, rightly with probability acc[j], otherwise a
// uniformly chosen wrong label.
func synthetic(seed uint64, n, k int, prior, acc []float64, coverage float64) (*Matrix, []int) {
	r := rand.New(rand.NewPCG(seed, 1))
	m := NewMatrix(n, len(acc))
	gold := make([]int, n)
	for i := range n {
		u, y := r.Float64(), 0
		for y < k-1 && u >= prior[y] {
			u -= prior[y]
			y++
		}
		gold[i] = y
		for j, a := range acc {
			if r.Float64() >= coverage {
				continue
			}
			v := y
			if r.Float64() >= a {
				v = (y + 1 + r.IntN(k-1)) % k
			}
			m.Set(i, j, v)
		}
	}
	return m, gold
}

func TestLabelModelRecoversAccuracies(t *testing.T) {
	want := []float64{0.9, 0.7, 0.6}
	tests := map[string]struct {
		k     int
		prior []float64
		model Model
	}{
		"binary/confusion":        {2, []float64{0.5, 0.5}, ModelConfusion},
		"binary/accuracy":         {2, []float64{0.5, 0.5}, ModelAccuracy},
		"three classes/confusion": {3, []float64{0.5, 0.3, 0.2}, ModelConfusion},
		"three classes/accuracy":  {3, []float64{0.5, 0.3, 0.2}, ModelAccuracy},
		"five classes/accuracy":   {5, []float64{0.2, 0.2, 0.2, 0.2, 0.2}, ModelAccuracy},
		"unbalanced/accuracy":     {2, []float64{0.8, 0.2}, ModelAccuracy},
		"unbalanced/confusion":    {2, []float64{0.8, 0.2}, ModelConfusion},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m, gold := synthetic(3, 20000, tc.k, tc.prior, want, 0.5)
			lm, err := FitLabelModel(m, tc.k, FitOptions{Model: tc.model})
			if err != nil {
				t.Fatal(err)
			}
			got := lm.Accuracies()
			for j := range want {
				if math.Abs(got[j]-want[j]) > 0.05 {
					t.Errorf("function %d: estimated accuracy %.3f, want %.2f ± 0.05", j, got[j], want[j])
				}
			}
			// The full confusion model leaves the prior of a binary task
			// with three weak functions poorly determined (the likelihood
			// is flat along it), so only the accuracy model is held to it.
			for y, p := range lm.ClassBalance() {
				if tc.model == ModelAccuracy && math.Abs(p-tc.prior[y]) > 0.05 {
					t.Errorf("class %d: prior %.3f, want %.2f ± 0.05", y, p, tc.prior[y])
				}
			}
			pred, _ := lm.Predict(m)
			mv := MajorityVote(m)
			var lmRight, mvRight, voted int
			for i, g := range gold {
				if pred[i] == Abstain {
					continue
				}
				voted++
				if pred[i] == g {
					lmRight++
				}
				if mv[i] == g {
					mvRight++
				}
			}
			t.Logf("%s: accuracies %.3f, prior %.3f after %d iterations; on %d voted rows label model %.4f, majority vote %.4f", name, got, lm.ClassBalance(), lm.Iterations, voted, float64(lmRight)/float64(voted), float64(mvRight)/float64(voted))
			if lmRight < mvRight {
				t.Errorf("label model right on %d rows, majority vote on %d", lmRight, mvRight)
			}
		})
	}
}

func TestFitLabelModelErrors(t *testing.T) {
	m := NewMatrix(3, 2)
	m.Set(0, 0, 4)
	tests := map[string]struct {
		m    *Matrix
		k    int
		opts FitOptions
	}{
		"cardinality 1":       {NewMatrix(3, 2), 1, FitOptions{}},
		"cardinality 200":     {NewMatrix(3, 2), 200, FitOptions{}},
		"empty":               {NewMatrix(0, 2), 2, FitOptions{}},
		"vote out of range":   {m, 3, FitOptions{}},
		"class balance size":  {NewMatrix(3, 2), 2, FitOptions{ClassBalance: []float64{1}}},
		"class balance zero":  {NewMatrix(3, 2), 2, FitOptions{ClassBalance: []float64{1, 0}}},
		"negative iterations": {NewMatrix(3, 2), 2, FitOptions{MaxIter: -1}},
		"NaN smoothing":       {NewMatrix(3, 2), 2, FitOptions{Smoothing: math.NaN()}},
		"unknown model":       {NewMatrix(3, 2), 2, FitOptions{Model: Model(9)}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := FitLabelModel(tc.m, tc.k, tc.opts); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestPredictAbstainsWithoutVotes(t *testing.T) {
	m := NewMatrix(4, 2)
	m.Set(0, 0, 0)
	m.Set(1, 1, 1)
	m.Set(2, 0, 1)
	m.Set(2, 1, 1)
	lm, err := FitLabelModel(m, 2, FitOptions{ClassBalance: []float64{1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	pred, probs := lm.Predict(m)
	if pred[3] != Abstain {
		t.Errorf("row without votes predicted %d, want Abstain", pred[3])
	}
	if pred[2] != 1 {
		t.Errorf("row with two votes for 1 predicted %d", pred[2])
	}
	for i, p := range probs {
		if s := p[0] + p[1]; math.Abs(s-1) > 1e-9 {
			t.Errorf("row %d: probabilities sum to %v", i, s)
		}
	}
}

func TestMajorityVote(t *testing.T) {
	rows := [][]int{
		{0, 0, 1},
		{Abstain, Abstain, Abstain},
		{0, 1, Abstain},
		{2, Abstain, Abstain},
		{1, 2, 2},
	}
	want := []int{0, Abstain, Abstain, 2, 2}
	m := NewMatrix(len(rows), 3)
	for i, r := range rows {
		for j, v := range r {
			m.Set(i, j, v)
		}
	}
	got := MajorityVote(m)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %v: got %d, want %d", rows[i], got[i], want[i])
		}
	}
}
