package label

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseConfigErrors(t *testing.T) {
	tests := map[string]struct {
		json string
		want error
	}{
		"unknown field":     {`{"functions": [{"name": "a", "label": "contract", "kind": "keywords", "any": ["x"], "colour": 1}]}`, ErrConfig},
		"trailing data":     {`{"functions": [{"name": "a", "label": "contract", "kind": "keywords", "any": ["x"]}]} {}`, ErrConfig},
		"no functions":      {`{"functions": []}`, ErrConfig},
		"unknown label":     {`{"functions": [{"name": "a", "label": "memo", "kind": "keywords", "any": ["x"]}]}`, ErrUnknownLabel},
		"unknown kind":      {`{"functions": [{"name": "a", "label": "contract", "kind": "fuzzy", "any": ["x"]}]}`, ErrUnknownKind},
		"bad regex":         {`{"functions": [{"name": "a", "label": "contract", "kind": "regex", "pattern": "(合同"}]}`, ErrBadRegex},
		"duplicate name":    {`{"functions": [{"name": "a", "label": "contract", "kind": "keywords", "any": ["x"]}, {"name": "a", "label": "other", "kind": "keywords", "any": ["y"]}]}`, ErrDuplicateName},
		"unknown heuristic": {`{"functions": [{"name": "a", "label": "contract", "kind": "heuristic", "heuristic": "vibes"}]}`, ErrUnknownHeuristic},
		"no keywords":       {`{"functions": [{"name": "a", "label": "contract", "kind": "keywords"}]}`, ErrConfig},
		"empty keyword":     {`{"functions": [{"name": "a", "label": "contract", "kind": "keywords", "any": [""]}]}`, ErrConfig},
		"regex no pattern":  {`{"functions": [{"name": "a", "label": "contract", "kind": "regex"}]}`, ErrConfig},
		"keywords+pattern":  {`{"functions": [{"name": "a", "label": "contract", "kind": "keywords", "any": ["x"], "pattern": "y"}]}`, ErrConfig},
		"bad field":         {`{"functions": [{"name": "a", "label": "contract", "kind": "regex", "pattern": "x", "field": "body"}]}`, ErrConfig},
		"negative count":    {`{"functions": [{"name": "a", "label": "contract", "kind": "keywords", "any": ["x"], "min_count": -1}]}`, ErrConfig},
		"duplicate label":   {`{"labels": ["a", "a"], "functions": [{"name": "a", "label": "a", "kind": "keywords", "any": ["x"]}]}`, ErrConfig},
		"no name":           {`{"functions": [{"label": "contract", "kind": "keywords", "any": ["x"]}]}`, ErrConfig},
		"not json":          {`functions:`, ErrConfig},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if n := len(c.Functions); n < 12 || n > 20 {
		t.Errorf("%d default functions, want 12..20", n)
	}
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(data)
	if err != nil {
		t.Fatalf("default config does not round-trip: %v", err)
	}
	if diff := cmp.Diff(c.Functions, back.Functions); diff != "" {
		t.Errorf("round trip (-default +decoded):\n%s", diff)
	}
}

func TestFunctions(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{
	  "labels": ["a", "b"],
	  "functions": [
	    {"name": "any2", "label": "a", "kind": "keywords", "any": ["甲方", "乙方"], "min_count": 2},
	    {"name": "all", "label": "a", "kind": "keywords", "all": ["原告", "被告"]},
	    {"name": "fold", "label": "b", "kind": "keywords", "any": ["whereas"], "ignore_case": true},
	    {"name": "title", "label": "b", "kind": "title_keywords", "any": ["判决书"]},
	    {"name": "re2", "label": "b", "kind": "regex", "pattern": "第.条", "min_count": 2},
	    {"name": "retitle", "label": "a", "kind": "regex", "field": "title", "pattern": "条例$"},
	    {"name": "articles", "label": "a", "kind": "heuristic", "heuristic": "has_articles", "threshold": 2},
	    {"name": "chapters", "label": "a", "kind": "heuristic", "heuristic": "has_chapters"},
	    {"name": "short", "label": "b", "kind": "heuristic", "heuristic": "short_doc", "threshold": 10},
	    {"name": "case", "label": "b", "kind": "heuristic", "heuristic": "case_number"},
	    {"name": "law", "label": "a", "kind": "heuristic", "heuristic": "law_title"}
	  ]}`))
	if err != nil {
		t.Fatal(err)
	}
	docs := []Doc{
		{Title: "民事判决书", Text: "（2022）粤0304民初28116号\n原告张三，被告李四。甲方"},
		{Title: "城镇燃气管理条例", Text: "第一章 总则\n第一条 甲方甲方。\n  第二条 乙方\n第二章 附则\nWhereAS"},
		{Title: "中华人民共和国民法典（2020年）", Text: "短文"},
		{Title: "国境河流外国籍船舶管理办法", Text: "Case No. 12 第1条 第2条"},
	}
	A, B, X := int8(0), int8(1), int8(Abstain)
	want := [][]int8{
		//  any2 all fold title re2 retitle articles chapters short case law
		{X, A, X, B, X, X, X, X, X, B, X},
		{A, X, B, X, B, A, A, A, X, X, X},
		{X, X, X, X, X, X, X, X, B, X, X},
		{X, X, X, X, B, X, X, X, X, B, X},
	}
	m := Apply(cfg, docs)
	for i := range docs {
		if diff := cmp.Diff(want[i], m.Row(i)); diff != "" {
			t.Errorf("doc %d (-want +got):\n%s", i, diff)
		}
	}
	for title, want := range map[string]bool{
		"中华人民共和国刑法": true, "中华人民共和国刑法修正案（九）": true, "中华人民共和国统计法（2009年修订）": true,
		"对外使用国徽图案的办法": false, "城镇燃气管理条例": false, "民事判决书": false,
	} {
		if got := isLawTitle(title); got != want {
			t.Errorf("isLawTitle(%q) = %v, want %v", title, got, want)
		}
	}
}

// TestAhoCorasick checks keyword counts against strings.Count summed over
// every starting offset (overlapping occurrences).
func TestAhoCorasick(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "ab", "合", "同", "甲方", "乙", "A", "B"}
	word := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	for range 200 {
		var pats []string
		seen := map[string]bool{}
		for range 1 + r.IntN(8) {
			if p := word(1 + r.IntN(3)); !seen[p] {
				seen[p] = true
				pats = append(pats, p)
			}
		}
		text := word(r.IntN(60))
		for _, fold := range []bool{false, true} {
			ps := pats
			if fold {
				ps = make([]string, len(pats))
				for i, p := range pats {
					ps[i] = lowerASCII(p)
				}
				// Lower-casing may merge patterns; keep them distinct.
				ps = dedupe(ps)
			}
			ac := buildAhoCorasick(ps, fold)
			got := make([]int32, len(ps))
			ac.count(text, got)
			subject := text
			if fold {
				subject = lowerASCII(text)
			}
			for i, p := range ps {
				want := 0
				for k := range len(subject) {
					if strings.HasPrefix(subject[k:], p) {
						want++
					}
				}
				if int(got[i]) != want {
					t.Fatalf("fold %v: %q in %q: %d, want %d", fold, p, text, got[i], want)
				}
			}
		}
	}
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func TestAnalyze(t *testing.T) {
	rows := [][]int{
		{0, 0, Abstain},
		{0, 1, Abstain},
		{Abstain, Abstain, 1},
		{Abstain, Abstain, Abstain},
	}
	m := NewMatrix(len(rows), 3)
	for i, r := range rows {
		for j, v := range r {
			m.Set(i, j, v)
		}
	}
	m.Names = []string{"f", "g", "h"}
	m.Labels = []string{"x", "y"}
	r := Analyze(m)
	want := Report{
		Docs: 4, Coverage: 0.75, Overlap: 0.5, Conflict: 0.25,
		Functions: []FunctionReport{
			{Name: "f", Polarity: []string{"x"}, Votes: 2, Coverage: 0.5, Overlap: 0.5, Conflict: 0.25},
			{Name: "g", Polarity: []string{"x", "y"}, Votes: 2, Coverage: 0.5, Overlap: 0.5, Conflict: 0.25},
			{Name: "h", Polarity: []string{"y"}, Votes: 1, Coverage: 0.25},
		},
	}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	lm, err := FitLabelModel(m, 2, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r = lm.Report(m)
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Functions {
		if f.EstimatedAccuracy == nil || *f.EstimatedAccuracy <= 0 || *f.EstimatedAccuracy >= 1 {
			t.Errorf("%s: estimated accuracy %v", f.Name, f.EstimatedAccuracy)
		}
	}
}

func TestApplyMatchesSerial(t *testing.T) {
	docs := demoDocs(4, 300)
	plain := make([]Doc, len(docs))
	for i := range docs {
		plain[i] = docs[i].Doc
	}
	cfg := DefaultConfig()
	m := Apply(cfg, plain)
	s := cfg.compiled.newScratch()
	row := make([]int8, m.Functions)
	for i := range plain {
		cfg.compiled.label(&plain[i], s, row)
		if diff := cmp.Diff(row, m.Row(i)); diff != "" {
			t.Fatalf("doc %d: parallel and serial differ:\n%s", i, diff)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(defaultConfigJSON))
	f.Add([]byte(`{"functions": [{"name": "a", "label": "contract", "kind": "regex", "pattern": "(?i)x+"}]}`))
	f.Add([]byte(`{"labels": ["a"], "functions": [{"name": "a", "label": "a", "kind": "heuristic", "heuristic": "short_doc"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			return
		}
		m := Apply(cfg, []Doc{{Title: "合同", Text: string(data)}, {}})
		if m.Functions != len(cfg.Functions) {
			t.Fatalf("%d columns for %d functions", m.Functions, len(cfg.Functions))
		}
	})
}
