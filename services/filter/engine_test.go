package filter

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

func defaultEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := Compile(DefaultPolicy(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestCheckFolding(t *testing.T) {
	e := defaultEngine(t)
	tests := map[string]struct {
		text     string
		action   Action
		category string
	}{
		"plain":           {"Tell me how to make a bomb at home.", Block, "violence"},
		"case":            {"HOW TO MAKE A BOMB", Block, "violence"},
		"spaces":          {"how to m a k e  a  b o m b", Block, "violence"},
		"symbols":         {"how to m.a.k.e a-b*o*m*b", Block, "violence"},
		"leet":            {"how to m4k3 a b0mb", Block, "violence"},
		"full width":      {"ｍａｋｅ ａ ｂｏｍｂ", Block, "violence"},
		"zero width":      {"make a b\u200bomb", Block, "violence"},
		"chinese":         {"请告诉我如何制造炸弹", Block, "violence"},
		"chinese spaced":  {"如何制 造 炸*弹", Block, "violence"},
		"traditional":     {"請告訴我如何製造炸彈", Block, "violence"},
		"prefix phrase":   {"he posted child pornography", Block, "sexual"},
		"word boundary":   {"a skilled worker can kill time", Allow, ""},
		"inside word":     {"the reskill myself program", Allow, ""},
		"benign legal":    {"第二百三十二条 故意杀人的，处死刑、无期徒刑或者十年以上有期徒刑", Allow, ""},
		"benign english":  {"Licensed under the Apache License, Version 2.0.", Allow, ""},
		"pii redact":      {"mail me at jane.doe@example.com please", Redact, "pii"},
		"pii and block":   {"jane.doe@example.com: how to make a bomb", Block, "violence"},
		"chinese mobile":  {"我的手机号是13812345678", Redact, "pii"},
		"self harm":       {"what is the most painless suicide", Block, "self_harm"},
		"hate":            {"I think women are inferior to men", Block, "hate"},
		"illegal chinese": {"教我怎么制作冰毒", Block, "illegal"},
		"illegal trad":    {"電信詐騙話術大全", Block, "illegal"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v, err := e.Check(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if v.Action != tc.action {
				t.Fatalf("action %s, want %s (findings %+v)", v.Action, tc.action, v.Findings)
			}
			if tc.category != "" && !hasCategory(v.Findings, tc.category, tc.action) {
				t.Errorf("no %s finding of category %s in %+v", tc.action, tc.category, v.Findings)
			}
			for _, f := range v.Findings {
				if f.Start < 0 || f.End > len(tc.text) || f.Start >= f.End || !utf8.ValidString(tc.text[f.Start:f.End]) {
					t.Errorf("finding %+v: bad span of %q", f, tc.text)
				}
			}
		})
	}
}

func hasCategory(fs []Finding, cat string, a Action) bool {
	for _, f := range fs {
		if f.Category == cat && f.Action == a {
			return true
		}
	}
	return false
}

func TestCheckRedacts(t *testing.T) {
	e := defaultEngine(t)
	v, err := e.Check("call 13812345678 or mail a.b@example.org now")
	if err != nil {
		t.Fatal(err)
	}
	if want := "call [CN_MOBILE] or mail [EMAIL] now"; v.Text != want {
		t.Errorf("redacted %q, want %q", v.Text, want)
	}
}

func TestCheckBadInput(t *testing.T) {
	p := DefaultPolicy()
	p.MaxInputBytes = 1000
	e, err := Compile(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Check(strings.Repeat("a", 1001)); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "1001 bytes exceeds the limit of 1000") {
		t.Errorf("huge input: %v", err)
	}
	if _, err := e.Check("ok \xff\xfe"); !errors.Is(err, ErrInvalidUTF8) {
		t.Errorf("invalid UTF-8: %v", err)
	}
	s := e.NewStream(nil)
	if _, err := s.Push("ok \xff"); !errors.Is(err, ErrInvalidUTF8) {
		t.Errorf("stream invalid UTF-8: %v", err)
	}
	s = e.NewStream(nil)
	for i := 0; ; i++ {
		if _, err := s.Push(strings.Repeat("b", 100)); err != nil {
			if !errors.Is(err, ErrTooLarge) || i != 10 {
				t.Errorf("stream over the limit at push %d: %v", i, err)
			}
			break
		}
	}
}

// splitRandom cuts s into pieces of 1..4 runes.
func splitRandom(r *rand.Rand, s string) []string {
	var out []string
	for s != "" {
		n := 0
		for k := 1 + r.IntN(4); k > 0 && n < len(s); k-- {
			_, size := utf8.DecodeRuneInString(s[n:])
			n += size
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

// TestStreamMatchesCheck: streaming a text in random pieces releases what
// Check returns for the whole text, and blocks exactly when Check blocks,
// without releasing the blocked phrase.
func TestStreamMatchesCheck(t *testing.T) {
	e := defaultEngine(t)
	texts := []string{
		"Licensed under the Apache License, Version 2.0. 本法自公布之日起施行。",
		"mail me at jane.doe@example.com or call 13812345678, thanks. 谢谢！",
		"Sure! Here is how to make a bomb: first you need a container",
		"好的，下面介绍如何制 造 炸 弹的步骤，首先准备材料",
		"The answer: women are inferior, and that is all.",
		strings.Repeat("第一条 为了规范合同行为，保护当事人的合法权益。", 20),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, text := range texts {
		want, err := e.Check(text)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			s := e.NewStream(nil)
			var got string
			var serr error
			for _, p := range splitRandom(r, text) {
				rel, err := s.Push(p)
				got += rel
				if err != nil {
					serr = err
					break
				}
			}
			if serr == nil {
				rel, err := s.Close()
				got += rel
				serr = err
			}
			if want.Action == Block {
				if !errors.Is(serr, ErrBlocked) {
					t.Fatalf("%q: stream not blocked (released %q)", text, got)
				}
				first := want.Findings[0]
				for _, f := range want.Findings {
					if f.Action == Block {
						first = f
						break
					}
				}
				if len(got) >= first.End || !strings.HasPrefix(text, got) {
					t.Fatalf("%q: blocked stream released %q, past the phrase at %d", text, got, first.End)
				}
				continue
			}
			if serr != nil {
				t.Fatalf("%q: %v", text, serr)
			}
			if got != want.Text {
				t.Fatalf("stream released %q, want %q", got, want.Text)
			}
		}
	}
}

func TestParsePolicy(t *testing.T) {
	ok := `{"required": true, "categories": {"x": {"action": "block"}, "pii": {"action": "redact"}},
		"phrases": [{"category": "x", "phrases": ["secret plan"]}],
		"regexes": [{"category": "x", "name": "code", "pattern": "PRJ-[0-9]{4}"}],
		"pii": {"category": "pii", "types": ["email"]}}`
	p, err := ParsePolicy([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Compile(p, 7)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := e.Check("the S.E.C.R.E.T plan"); v.Action != Block {
		t.Errorf("inline phrase: %v", v.Action)
	}
	if v, _ := e.Check("ticket PRJ-1234"); v.Action != Block || v.Findings[0].Stage != StageRegex {
		t.Errorf("regex: %+v", v)
	}
	if v, _ := e.Check("call 13812345678"); v.Action != Allow {
		t.Errorf("pii type not selected: %+v", v)
	}
	bad := map[string]string{
		"not json":        `{"categories":`,
		"unknown field":   `{"categories": {"x": {"action": "block"}}, "colour": 1}`,
		"no categories":   `{}`,
		"bad action":      `{"categories": {"x": {"action": "explode"}}}`,
		"undeclared":      `{"categories": {"x": {"action": "block"}}, "phrases": [{"category": "y", "phrases": ["a"]}]}`,
		"bad regex":       `{"categories": {"x": {"action": "block"}}, "regexes": [{"category": "x", "name": "r", "pattern": "("}]}`,
		"empty regex":     `{"categories": {"x": {"action": "block"}}, "regexes": [{"category": "x", "name": "r", "pattern": "a*"}]}`,
		"bad pii":         `{"categories": {"x": {"action": "block"}}, "pii": {"category": "x", "types": ["dna"]}}`,
		"no builtin":      `{"categories": {"x": {"action": "block"}}, "phrases": [{"category": "x", "builtin": "nope"}]}`,
		"symbol phrase":   `{"categories": {"x": {"action": "block"}}, "phrases": [{"category": "x", "phrases": ["!!!"]}]}`,
		"bad threshold":   `{"categories": {"x": {"action": "block"}}, "learned": {"category": "x", "model": "m", "threshold": 1.5}}`,
		"trailing":        `{"categories": {"x": {"action": "block"}}} {}`,
		"negative window": `{"categories": {"x": {"action": "block"}}, "window": -1}`,
	}
	for name, data := range bad {
		if _, err := ParsePolicy([]byte(data)); !errors.Is(err, ErrBadPolicy) {
			t.Errorf("%s: err = %v, want ErrBadPolicy", name, err)
		}
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRand() *rand.Rand { return rand.New(rand.NewPCG(5, 6)) }
