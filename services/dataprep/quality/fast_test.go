package quality

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// decide applies c to st in Rules order, as Check does without its early
// exits.
func decide(c Config, st Stats) string {
	f := &Filter{cfg: c}
	if r := f.cheap(&st); r != "" {
		return r
	}
	for i, max := range c.MaxTopNGramCharFrac {
		if max > 0 && st.TopNGramCharFrac[i] > max {
			return rules[9+i]
		}
	}
	for i, max := range c.MaxDupNGramCharFrac {
		if max > 0 && st.DupNGramCharFrac[i] > max {
			return rules[12+i]
		}
	}
	return ""
}

// TestCheckMatchesStats checks that Check's pruned, early-exiting n-gram
// sweep decides as the full measures do, under random n-gram thresholds.
func TestCheckMatchesStats(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	zh := []rune("的一是了我不人在他有这个上们来到时大地为")
	en := strings.Fields("the licence software copy notice permission any of to and use")
	seen := map[string]int{}
	for trial := range 400 {
		var b strings.Builder
		k := 2 + trial%(len(zh)-2)
		for range 20 + rng.IntN(400) {
			switch r := rng.IntN(10); {
			case r < 5:
				b.WriteRune(zh[rng.IntN(k)])
			case r < 9:
				b.WriteString(" " + en[rng.IntN(min(k, len(en)))] + " ")
			default:
				b.WriteByte('\n')
			}
		}
		if rng.IntN(3) == 0 { // a repeated tail
			s := b.String()
			b.WriteString(s[len(s)/2:])
		}
		text := b.String()
		c := Config{}
		for i := range c.MaxTopNGramCharFrac {
			if rng.IntN(3) > 0 {
				c.MaxTopNGramCharFrac[i] = rng.Float64()
			}
		}
		for i := range c.MaxDupNGramCharFrac {
			if rng.IntN(3) > 0 {
				c.MaxDupNGramCharFrac[i] = rng.Float64()
			}
		}
		f := must(New(c))
		st := f.Stats(text)
		rule, ok := f.Check(text)
		if want := decide(c, st); rule != want || ok != (want == "") {
			t.Fatalf("trial %d: Check = (%q, %v), want %q\nconfig %+v\nstats %+v", trial, rule, ok, want, c, st)
		}
		seen[rule]++
	}
	t.Logf("decisions: %v", seen)
	if len(seen) < 8 {
		t.Errorf("only %d distinct decisions: %v", len(seen), seen)
	}
}

// TestBoilerplateMatch checks the one-pass boilerplate matcher against
// matching each pattern in the lower-cased line.
func TestBoilerplateMatch(t *testing.T) {
	patterns := [][]byte{}
	for _, p := range DefaultBoilerplate {
		patterns = append(patterns, []byte(asciiLower(p)))
	}
	b := newBoilerplate(patterns)
	if !b.fast {
		t.Fatal("default patterns should take the fast path")
	}
	pieces := append(append([]string(nil), DefaultBoilerplate...),
		"ALL RIGHTS", "Reserved", "Log", " In", "版权", "所有", "cook", "IE", "x", "点", "击", "©", " ")
	rng := rand.New(rand.NewPCG(7, 8))
	for range 5000 {
		var s strings.Builder
		for range rng.IntN(6) {
			s.WriteString(pieces[rng.IntN(len(pieces))])
		}
		line := s.String()
		want := false
		lower := []byte(asciiLower(line))
		for _, p := range patterns {
			want = want || bytes.Contains(lower, p)
		}
		if got := b.match(line); got != want {
			t.Fatalf("match(%q) = %v, want %v", line, got, want)
		}
	}
	// A pattern under three bytes takes the slow path, with the same result.
	f := must(New(Config{BoilerplatePatterns: []string{"ok", "版权所有"}, MaxBoilerplateFrac: 0.3}))
	if f.boiler.fast {
		t.Fatal("a two-byte pattern should take the slow path")
	}
	if st := f.Stats("It is OK\nplain\n本站版权所有\nplain"); st.BoilerplateFrac != 0.5 {
		t.Errorf("BoilerplateFrac = %v, want 0.5", st.BoilerplateFrac)
	}
}
