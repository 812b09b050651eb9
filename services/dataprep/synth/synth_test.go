package synth_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/llmesh/llmesh/services/dataprep/dedup"
	"github.com/llmesh/llmesh/services/dataprep/synth"
	"github.com/llmesh/llmesh/services/internal/pii"
)

func small() synth.Config {
	return synth.Config{Seed: 3, Base: 300, ExactDups: 30, NearDups: 60, PIIPerType: 10}
}

func TestGenerateDeterministic(t *testing.T) {
	a, b := synth.Generate(small()), synth.Generate(small())
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same config, different corpus (-first +second):\n%s", diff)
	}
	c := small()
	c.Seed = 4
	if cmp.Equal(a.Docs, synth.Generate(c).Docs) {
		t.Fatal("seeds 3 and 4 gave the same documents")
	}
	if got, want := len(a.Docs), 300+30+60; got != want {
		t.Fatalf("%d documents, want %d", got, want)
	}
	ids := map[string]bool{}
	zh := 0
	for _, d := range a.Docs {
		if ids[d.ID] {
			t.Errorf("duplicate id %q", d.ID)
		}
		ids[d.ID] = true
		if !utf8.ValidString(d.Text) {
			t.Errorf("%s: invalid UTF-8", d.ID)
		}
		if d.Lang == "zh" {
			zh++
		}
	}
	if share := float64(zh) / float64(len(a.Docs)); math.Abs(share-0.8) > 0.05 {
		t.Errorf("Chinese share %.3f, want about 0.8", share)
	}
}

func TestPlantedPairs(t *testing.T) {
	c := synth.Generate(small())
	exact, near := 0, 0
	byTarget := map[float64][]float64{}
	for _, p := range c.DupPairs {
		a, b := c.Docs[p.A].Text, c.Docs[p.B].Text
		if p.A >= p.B {
			t.Errorf("pair %d,%d not ordered", p.A, p.B)
		}
		if got := dedup.Jaccard(a, b, 5); got != p.Jaccard {
			t.Errorf("pair %d,%d: recorded Jaccard %v, measured %v", p.A, p.B, p.Jaccard, got)
		}
		if p.Exact {
			exact++
			if a != b {
				t.Errorf("exact pair %d,%d: texts differ", p.A, p.B)
			}
			continue
		}
		near++
		byTarget[p.Target] = append(byTarget[p.Target], p.Jaccard)
		if math.Abs(p.Jaccard-p.Target) > synth.Tolerance {
			t.Errorf("near pair %d,%d: Jaccard %.4f, target %.2f ± %.2f", p.A, p.B, p.Jaccard, p.Target, synth.Tolerance)
		}
	}
	if exact != 30 || near != 60 {
		t.Errorf("%d exact and %d near pairs, want 30 and 60", exact, near)
	}
	for _, target := range slices.Sorted(func(yield func(float64) bool) {
		for k := range byTarget {
			if !yield(k) {
				return
			}
		}
	}) {
		js := byTarget[target]
		t.Logf("target %.2f: %d pairs, measured %.3f..%.3f", target, len(js), slices.Min(js), slices.Max(js))
	}
}

// TestBaseDocsUnrelated checks that documents with no planted relation are
// far apart: every same-kind pair (the closest, since they share templates)
// below Jaccard 0.5.
func TestBaseDocsUnrelated(t *testing.T) {
	c := synth.Generate(synth.Config{Seed: 9, Base: 250})
	var js []float64
	for i := range c.Docs {
		for j := i + 1; j < len(c.Docs); j++ {
			if c.Docs[i].Kind == c.Docs[j].Kind && c.Docs[i].Lang == c.Docs[j].Lang {
				js = append(js, dedup.Jaccard(c.Docs[i].Text, c.Docs[j].Text, 5))
			}
		}
	}
	slices.Sort(js)
	n := len(js)
	t.Logf("%d same-kind base pairs: Jaccard median %.3f, p99 %.3f, max %.3f", n, js[n/2], js[n*99/100], js[n-1])
	if js[n-1] >= 0.5 {
		t.Errorf("max Jaccard of unrelated base documents %.3f, want < 0.5", js[n-1])
	}
}

func TestPlantedPII(t *testing.T) {
	c := synth.Generate(small())
	perType := map[string]int{}
	sc, err := pii.New(pii.Config{})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	for _, s := range c.PII {
		text := c.Docs[s.Doc].Text
		if s.Start < 0 || s.End > len(text) || s.Start >= s.End {
			t.Fatalf("span %+v outside document of %d bytes", s, len(text))
		}
		if !strings.HasSuffix(text[:s.End+1], "\n") {
			t.Errorf("span %+v (%q) does not end its line", s, text[s.Start:s.End])
		}
		perType[s.Type]++
		for _, m := range sc.Find(text) {
			if m.Start == s.Start && m.End == s.End && string(m.Type) == s.Type {
				found[s.Type]++
			}
		}
	}
	for _, typ := range pii.Types() {
		if perType[string(typ)] != 10 {
			t.Errorf("%d planted %s, want 10", perType[string(typ)], typ)
		}
		t.Logf("%s: pii scanner finds %d of %d planted spans exactly", typ, found[string(typ)], perType[string(typ)])
	}
	// No PII lands in a document of a planted pair.
	paired := map[int]bool{}
	for _, p := range c.DupPairs {
		paired[p.A], paired[p.B] = true, true
	}
	for _, s := range c.PII {
		if paired[s.Doc] {
			t.Errorf("PII planted in paired document %d", s.Doc)
		}
	}
}

func TestWriteJSONL(t *testing.T) {
	c := synth.Generate(synth.Config{Seed: 1, Base: 20, ExactDups: 2, NearDups: 2, PIIPerType: 1})
	var buf bytes.Buffer
	if err := c.WriteJSONL(&buf); err != nil {
		t.Fatal(err)
	}
	var got []synth.Doc
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var d synth.Doc
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		got = append(got, d)
	}
	if diff := cmp.Diff(c.Docs, got); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	buf.Reset()
	if err := c.WriteTruth(&buf); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(buf.Bytes()) {
		t.Fatal("WriteTruth wrote invalid JSON")
	}
}
