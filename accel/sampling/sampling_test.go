package sampling

import (
	"math"
	"testing"
)

func TestGreedy(t *testing.T) {
	s := New(Params{})
	if got := s.Next([]float32{0.1, 3, float32(math.NaN()), 2}); got != 1 {
		t.Fatalf("greedy = %d, want 1", got)
	}
	if got := s.Next(nil); got != -1 {
		t.Fatalf("empty = %d, want -1", got)
	}
}

func TestTopKOnlyPicksTopK(t *testing.T) {
	logits := []float32{5, 1, 4.9, 0, 4.8, -1}
	s := New(Params{Temperature: 1, TopK: 2, Seed: 1})
	counts := map[int32]int{}
	for range 2000 {
		counts[s.Next(logits)]++
	}
	if len(counts) != 2 || counts[0] == 0 || counts[2] == 0 {
		t.Fatalf("counts %v, want only tokens 0 and 2", counts)
	}
}

func TestDistribution(t *testing.T) {
	// Logits log(1), log(3) at temperature 1: token 1 should come up 3/4 of
	// the time; 20000 draws put the frequency within ±0.02 with ample margin.
	logits := []float32{0, float32(math.Log(3))}
	s := New(Params{Temperature: 1, Seed: 42})
	n := 0
	for range 20000 {
		if s.Next(logits) == 1 {
			n++
		}
	}
	if f := float64(n) / 20000; math.Abs(f-0.75) > 0.02 {
		t.Fatalf("frequency %.3f, want 0.75±0.02", f)
	}
}

func TestSeedDeterminism(t *testing.T) {
	logits := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	a, b, c := New(Params{Temperature: 2, Seed: 7}), New(Params{Temperature: 2, Seed: 7}), New(Params{Temperature: 2, Seed: 8})
	same, differ := true, false
	for range 100 {
		x, y, z := a.Next(logits), b.Next(logits), c.Next(logits)
		same = same && x == y
		differ = differ || x != z
	}
	if !same || !differ {
		t.Fatalf("same seed equal: %v, other seed differs: %v", same, differ)
	}
}

func TestLowTemperatureIsNearlyGreedy(t *testing.T) {
	s := New(Params{Temperature: 1e-3, Seed: 3})
	for range 100 {
		if got := s.Next([]float32{1, 2, 1.5}); got != 1 {
			t.Fatalf("got %d, want 1", got)
		}
	}
}
