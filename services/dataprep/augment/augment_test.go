package augment

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/llmesh/llmesh/services/dataprep/democorpus"
)

const zhText = "甲方应当按时支付货款。乙方应当按时交货！如有争议，双方协商解决；协商不成的，提交仲裁。\n第二条 本合同自签订之日起生效。"
const enText = "The Buyer shall pay the price. The Seller shall deliver the goods! Any dispute shall be settled by the Parties; failing that, by arbitration.\nThis Agreement takes effect on signing."

func mustNew(t testing.TB, cfg Config) *Augmenter {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestIdentityAtRateZero(t *testing.T) {
	tests := map[string]Config{
		"zero":                 {},
		"dictionary, rate 0":   {Dictionary: DefaultDictionary(), MaxSpan: 5, Seed: 9},
		"empty dictionary hit": {SynonymRate: 1, Dictionary: map[string][]string{"不存在的词": {"x"}}},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			a := mustNew(t, cfg)
			for _, text := range []string{zhText, enText, "", "\n\n", "  trailing  ", "No. 5 costs 1.5 USD... ok?! 好。 ", "甲方"} {
				if got := a.Apply("doc", text); got != text {
					t.Errorf("Apply(%q) = %q", text, got)
				}
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	cfg := Config{SynonymRate: 0.5, DeleteRate: 0.3, SwapRate: 0.3, MaxSpan: 4, Dictionary: DefaultDictionary(), Seed: 42}
	a, b := mustNew(t, cfg), mustNew(t, cfg)
	docs := democorpus.Generate(1, 50)
	differs := 0
	for _, d := range docs {
		x, y := a.Apply(d.ID, d.Text), b.Apply(d.ID, d.Text)
		if x != y {
			t.Fatalf("%s: two augmenters disagree", d.ID)
		}
		if x != a.Apply(d.ID+"-other", d.Text) {
			differs++
		}
	}
	if differs < len(docs)/2 {
		t.Errorf("changing the document id changed only %d of %d outputs", differs, len(docs))
	}
	cfg.Seed = 43
	c := mustNew(t, cfg)
	if a.Apply(docs[0].ID, docs[0].Text) == c.Apply(docs[0].ID, docs[0].Text) {
		t.Error("seeds 42 and 43 gave the same output")
	}
}

func TestSynonyms(t *testing.T) {
	dict := map[string][]string{
		"甲方":          {"出卖人"},
		"甲方代表":        {"出卖人的代表"},
		"支付":          {"给付"},
		"shall":       {"must"},
		"pay":         {"remit"},
		"the Parties": {"both sides"},
	}
	a := mustNew(t, Config{SynonymRate: 1, Dictionary: dict})
	tests := map[string]struct{ in, want string }{
		"chinese":        {"甲方应支付货款。", "出卖人应给付货款。"},
		"longest match":  {"甲方代表签字。", "出卖人的代表签字。"},
		"english":        {"The Buyer shall pay.", "The Buyer must remit."},
		"word boundary":  {"shallow payment; shall repay", "shallow payment; must repay"},
		"phrase":         {"settled by the Parties.", "settled by both sides."},
		"mixed":          {"甲方shall支付", "出卖人must给付"},
		"case sensitive": {"Shall PAY", "Shall PAY"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := a.Apply("d", tc.in); got != tc.want {
				t.Errorf("Apply(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestSplitSentences(t *testing.T) {
	tests := map[string]struct {
		in   string
		want []sentence
	}{
		"chinese": {"甲方付款。乙方交货！完", []sentence{{"", "甲方付款", "。"}, {"", "乙方交货", "！"}, {"", "完", ""}}},
		"english": {"Pay now. Deliver 1.5 kg!? Done", []sentence{{"", "Pay now", "."}, {" ", "Deliver 1.5 kg", "!?"}, {" ", "Done", ""}}},
		"no.":     {"See No.5 here.", []sentence{{"", "See No.5 here", "."}}},
		"blanks":  {"  A.  ", []sentence{{"  ", "A", "."}, {"  ", "", ""}}},
		"semi":    {"一；二；", []sentence{{"", "一", "；"}, {"", "二", "；"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := splitSentences(tc.in)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(sentence{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			var b strings.Builder
			for _, s := range got {
				b.WriteString(s.lead + s.body + s.end)
			}
			if b.String() != tc.in {
				t.Errorf("rejoined %q, want %q", b.String(), tc.in)
			}
		})
	}
}

// TestRates checks each rate against its expected count over the demo
// corpus, within five standard deviations of a binomial.
func TestRates(t *testing.T) {
	docs := democorpus.Generate(5, 300)
	within := func(name string, got, trials int, p float64) {
		t.Helper()
		mean := float64(trials) * p
		sd := math.Sqrt(float64(trials) * p * (1 - p))
		t.Logf("%s: %d of %d, expected %.0f ± %.0f", name, got, trials, mean, sd)
		if math.Abs(float64(got)-mean) > 5*sd+1 {
			t.Errorf("%s: %d of %d trials, want about %.0f (p=%.2f)", name, got, trials, mean, p)
		}
	}
	for _, p := range []float64{0.1, 0.5} {
		a := mustNew(t, Config{SynonymRate: p, Dictionary: DefaultDictionary(), Seed: 1})
		var tot Stats
		for _, d := range docs {
			_, st := a.ApplyStats(d.ID, d.Text)
			tot.Matches += st.Matches
			tot.Replacements += st.Replacements
		}
		within(fmt.Sprintf("synonyms at %.1f", p), tot.Replacements, tot.Matches, p)

		a = mustNew(t, Config{DeleteRate: p, MaxSpan: 3, Seed: 1})
		tot = Stats{}
		eligible := 0
		for _, d := range docs {
			out, st := a.ApplyStats(d.ID, d.Text)
			tot.Deletions += st.Deletions
			for para := range strings.SplitSeq(d.Text, "\n") {
				for _, s := range splitSentences(para) {
					if utf8.RuneCountInString(s.body) >= 2 {
						eligible++
					}
				}
			}
			if got, want := utf8.RuneCountInString(out), utf8.RuneCountInString(d.Text)-st.DeletedRunes; got != want {
				t.Fatalf("%s: %d runes, want %d", d.ID, got, want)
			}
			if st.DeletedRunes > 3*st.Deletions || st.DeletedRunes < st.Deletions {
				t.Fatalf("%s: %d runes in %d spans of at most 3", d.ID, st.DeletedRunes, st.Deletions)
			}
		}
		within(fmt.Sprintf("deletions at %.1f", p), tot.Deletions, eligible, p)

		a = mustNew(t, Config{SwapRate: p, Seed: 1})
		tot = Stats{}
		eligible = 0
		for _, d := range docs {
			out, st := a.ApplyStats(d.ID, d.Text)
			tot.Swaps += st.Swaps
			for para := range strings.SplitSeq(d.Text, "\n") {
				if n := len(splitSentences(para)); n > 1 {
					eligible += n
				}
			}
			if !sameRunes(out, d.Text) {
				t.Fatalf("%s: swapping changed the characters", d.ID)
			}
		}
		within(fmt.Sprintf("swaps at %.1f", p), tot.Swaps, eligible, p)
	}
}

func sameRunes(a, b string) bool {
	count := map[rune]int{}
	for _, r := range a {
		count[r]++
	}
	for _, r := range b {
		count[r]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestSwapKeepsPunctuationWithSentence(t *testing.T) {
	a := mustNew(t, Config{SwapRate: 1, Seed: 3})
	got := a.Apply("d", "一。二！")
	if got != "二！一。" && got != "一。二！" {
		t.Errorf("Apply = %q", got)
	}
	for i := range 50 {
		out := a.Apply(fmt.Sprint(i), "A one. B two! C three?")
		for _, s := range []string{"A one.", "B two!", "C three?"} {
			if !strings.Contains(out, s) {
				t.Fatalf("%q lost sentence %q", out, s)
			}
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := map[string]Config{
		"negative rate":    {SynonymRate: -0.1, Dictionary: DefaultDictionary()},
		"rate above one":   {SwapRate: 1.5},
		"NaN":              {DeleteRate: math.NaN(), MaxSpan: 1},
		"delete no span":   {DeleteRate: 0.1},
		"negative span":    {MaxSpan: -1},
		"synonyms no dict": {SynonymRate: 0.1},
		"empty word":       {Dictionary: map[string][]string{"": {"x"}}},
		"no synonyms":      {Dictionary: map[string][]string{"x": {}}},
		"invalid synonym":  {Dictionary: map[string][]string{"x": {"\xff"}}},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg); !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
}

func TestLoadDictionary(t *testing.T) {
	got, err := LoadDictionary([]byte("# comment\n\n甲方 出卖人 委托方\nshall\tmust\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"甲方": {"出卖人", "委托方"}, "shall": {"must"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	got, err = LoadDictionary([]byte(` {"the Parties": ["both sides"], "甲方": ["出卖人"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string][]string{"the Parties": {"both sides"}, "甲方": {"出卖人"}}, got); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
	bad := map[string]string{
		"no synonyms":   "甲方 出卖人\n乙方\n",
		"duplicate":     "甲方 出卖人\n甲方 委托方\n",
		"invalid utf-8": "甲方 \xff\n",
		"json type":     `{"甲方": "出卖人"}`,
		"json empty":    `{"甲方": []}`,
		"json trailing": `{"甲方": ["x"]} x`,
	}
	for name, data := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := LoadDictionary([]byte(data))
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			t.Log(err)
		})
	}
	if n := len(DefaultDictionary()); n < 20 || n > 40 {
		t.Errorf("default dictionary has %d entries, want 20..40", n)
	}
}

type fakeTranslator struct{ calls []string }

func (f *fakeTranslator) Translate(_ context.Context, text, from, to string) (string, error) {
	f.calls = append(f.calls, from+">"+to)
	if to == "fail" {
		return "", errors.New("no model")
	}
	return "[" + to + "]" + text, nil
}

func TestBackTranslate(t *testing.T) {
	f := &fakeTranslator{}
	got, err := BackTranslate(context.Background(), f, "甲方应当支付货款。", "en")
	if err != nil {
		t.Fatal(err)
	}
	if got != "[zh][en]甲方应当支付货款。" || !cmp.Equal(f.calls, []string{"zh>en", "en>zh"}) {
		t.Errorf("got %q via %v", got, f.calls)
	}
	if _, err := BackTranslate(context.Background(), f, "The Buyer shall pay.", "en"); !errors.Is(err, ErrSameLanguage) {
		t.Errorf("err = %v, want ErrSameLanguage", err)
	}
	if _, err := BackTranslate(context.Background(), f, "The Buyer shall pay.", "fail"); err == nil {
		t.Error("translator error not returned")
	}
	if got, err := BackTranslate(context.Background(), f, " 123 ", "en"); err != nil || got != " 123 " {
		t.Errorf("text without letters: %q, %v", got, err)
	}
}

func FuzzApply(f *testing.F) {
	f.Add("doc", zhText, uint64(1))
	f.Add("doc", enText, uint64(2))
	f.Add("x", "a\xffb。。!! ? \n\n；", uint64(3))
	f.Add("", "甲方甲方代表shall", uint64(4))
	dict := DefaultDictionary()
	dict["甲方代表"] = []string{"代表", ""}
	f.Fuzz(func(t *testing.T, id, text string, seed uint64) {
		a := mustNew(t, Config{SynonymRate: 0.5, DeleteRate: 0.5, SwapRate: 0.5, MaxSpan: 3, Dictionary: dict, Seed: seed})
		out := a.Apply(id, text)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 from %q: %q", text, out)
		}
		if out != a.Apply(id, text) {
			t.Fatal("not deterministic")
		}
		if strings.Count(out, "\n") != strings.Count(text, "\n") {
			t.Fatalf("paragraph count changed: %q → %q", text, out)
		}
		id0 := mustNew(t, Config{Seed: seed})
		if got := id0.Apply(id, text); got != strings.ToValidUTF8(text, "\uFFFD") {
			t.Fatalf("rate 0 changed %q to %q", text, got)
		}
	})
}

func FuzzLoadDictionary(f *testing.F) {
	f.Add([]byte(defaultDictionary))
	f.Add([]byte(`{"a": ["b"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := LoadDictionary(data)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			return
		}
		if _, err := New(Config{SynonymRate: 1, Dictionary: d}); err != nil && len(d) > 0 {
			t.Fatalf("loaded dictionary rejected by New: %v", err)
		}
	})
}
