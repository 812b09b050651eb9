package sampling

import (
	"errors"
	"math"
	"strings"
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

// frequencies draws n tokens and returns how often each came up.
func frequencies(s *Sampler, logits []float32, n int) []float64 {
	f := make([]float64, len(logits))
	for range n {
		f[s.Next(logits)] += 1 / float64(n)
	}
	return f
}

// TestTopPDistribution checks nucleus sampling against a float64
// reference: softmax at the temperature, sorted, cut at the first prefix
// reaching p, renormalised.
func TestTopPDistribution(t *testing.T) {
	logits := []float32{0.3, 2.1, -1, 1.7, 0.9, 2.0, -0.2}
	for _, tc := range []struct {
		temp, p float32
		k       int
	}{{1, 0.5, 0}, {1, 0.8, 0}, {0.7, 0.9, 0}, {1.5, 0.6, 3}, {1, 1, 0}} {
		// Reference.
		type tp struct {
			i int
			p float64
		}
		var ps []tp
		var sum float64
		for i, l := range logits {
			e := math.Exp(float64(l) / float64(tc.temp))
			ps = append(ps, tp{i, e})
			sum += e
		}
		for i := range ps {
			ps[i].p /= sum
		}
		for i := range ps { // insertion sort, descending
			for j := i; j > 0 && ps[j].p > ps[j-1].p; j-- {
				ps[j], ps[j-1] = ps[j-1], ps[j]
			}
		}
		if tc.k > 0 {
			ps = ps[:tc.k]
			var s float64
			for _, x := range ps {
				s += x.p
			}
			for i := range ps {
				ps[i].p /= s
			}
		}
		var acc float64
		keep := len(ps)
		for j, x := range ps {
			acc += x.p
			if acc >= float64(tc.p) {
				keep = j + 1
				break
			}
		}
		want := make([]float64, len(logits))
		var kept float64
		for _, x := range ps[:keep] {
			kept += x.p
		}
		for _, x := range ps[:keep] {
			want[x.i] = x.p / kept
		}
		got := frequencies(New(Params{Temperature: tc.temp, TopP: tc.p, TopK: tc.k, Seed: 9}), logits, 40000)
		for i := range want {
			// 40000 draws: the standard error is at most 0.0025.
			if math.Abs(got[i]-want[i]) > 0.015 || (want[i] == 0) != (got[i] == 0) {
				t.Errorf("temp %g top_p %g top_k %d: token %d frequency %.4f, want %.4f", tc.temp, tc.p, tc.k, i, got[i], want[i])
			}
		}
	}
}

func TestRepetitionPenalty(t *testing.T) {
	// Greedy: token 2 wins until it is seen; penalised, 0 wins.
	logits := []float32{2.5, -1, 3, 1}
	s := New(Params{RepetitionPenalty: 1.5})
	if got := s.Next(logits); got != 2 {
		t.Fatalf("first pick %d, want 2", got)
	}
	if got := s.Next(logits); got != 0 { // 3/1.5 = 2 < 2.5
		t.Fatalf("second pick %d, want 0 (2 is penalised)", got)
	}
	if logits[2] != 3 {
		t.Fatalf("Next modified its input: %v", logits)
	}
	// A seen negative logit is multiplied, so it falls further.
	neg := []float32{-1, -1.2}
	s = New(Params{RepetitionPenalty: 1.5})
	s.Seen(0)
	if got := s.Next(neg); got != 1 { // -1*1.5 = -1.5 < -1.2
		t.Fatalf("pick %d, want 1 (0 is penalised)", got)
	}
	// Without a penalty, Seen changes nothing.
	s = New(Params{})
	s.Seen(2)
	if got := s.Next(logits); got != 2 {
		t.Fatalf("no penalty: pick %d, want 2", got)
	}
}

func TestValidate(t *testing.T) {
	nan := float32(math.NaN())
	tests := map[string]struct {
		p    Params
		want string // "" means valid
	}{
		"zero value":             {Params{}, ""},
		"all set":                {Params{Temperature: 0.8, TopK: 40, TopP: 0.95, RepetitionPenalty: 1.1, Seed: 1}, ""},
		"negative temperature":   {Params{Temperature: -0.1}, "temperature -0.1 out of range [0, 10]"},
		"temperature too high":   {Params{Temperature: 11}, "temperature 11 out of range"},
		"NaN temperature":        {Params{Temperature: nan}, "temperature NaN"},
		"negative top_k":         {Params{TopK: -1}, "top_k -1 must not be negative"},
		"top_p above 1":          {Params{TopP: 1.5}, "top_p 1.5 out of range [0, 1]"},
		"negative top_p":         {Params{TopP: -0.5}, "top_p -0.5 out of range"},
		"NaN top_p":              {Params{TopP: nan}, "top_p NaN"},
		"negative penalty":       {Params{RepetitionPenalty: -1}, "repetition_penalty -1 out of range [0.01, 10]"},
		"penalty too high":       {Params{RepetitionPenalty: 100}, "repetition_penalty 100 out of range"},
		"penalty too close to 0": {Params{RepetitionPenalty: 0.001}, "repetition_penalty 0.001 out of range"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.p.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidParams)):
				t.Fatalf("Validate: %v, want ErrInvalidParams containing %q", err, tc.want)
			}
		})
	}
}

func TestSeedReproducesWithAllParams(t *testing.T) {
	p := Params{Temperature: 1.2, TopK: 5, TopP: 0.9, RepetitionPenalty: 1.3, Seed: 11}
	logits := []float32{1, 2, 3, 4, 5, 6, 7, 8, 0.5, 2.5}
	a, b := New(p), New(p)
	a.Seen(3, 7)
	b.Seen(3, 7)
	for i := range 200 {
		if x, y := a.Next(logits), b.Next(logits); x != y {
			t.Fatalf("draw %d: %d vs %d", i, x, y)
		}
	}
}
