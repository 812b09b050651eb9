package bpe

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"github.com/google/go-cmp/cmp"
)

// regexpCuts returns the pre-tokens of s under pattern as tiktoken-go finds
// them: regexp2 over s's runes (each invalid byte one U+FFFD), mapped back
// to byte offsets in s.
func regexpCuts(t testing.TB, re *regexp2.Regexp, s string) []string {
	t.Helper()
	var offs []int // rune index → byte offset
	for i := 0; i < len(s); {
		offs = append(offs, i)
		_, w := utf8.DecodeRuneInString(s[i:])
		i += w
	}
	offs = append(offs, len(s))
	var out []string
	m, err := re.FindStringMatch(s)
	for ; m != nil && err == nil; m, err = re.FindNextMatch(m) {
		out = append(out, s[offs[m.Index]:offs[m.Index+m.Length]])
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func cl100kCuts(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		j := nextCl100k(s, i)
		out = append(out, s[i:j])
		i = j
	}
	return out
}

// cutters are the hand-written pre-tokenizers with the patterns they
// must agree with.
var cutters = map[string]struct {
	pattern string
	cut     func(string) []string
}{
	"cl100k": {Cl100kPattern, cl100kCuts},
	"gpt2":   {GPT2Pattern, func(s string) []string { return pieces(s, 0) }},
}

// nastyRunes mixes every class boundary the patterns care about.
var nastyRunes = []string{
	"a", "Z", "é", "中", "ß", "ǅ", "ʰ", "\u0301", "1", "²", "½", "Ⅻ", "٣", "〇", "１",
	" ", "  ", "\t", "\n", "\r", "\r\n", "\v", "\f", "\u0085", "\u00a0", "\u1680", "\u2003", "\u2028", "\u2029", "\u202f", "\u3000", "\u200b", "\ufeff",
	"'", "'s", "'S", "'t", "'re", "'RE", "'Ve", "'m", "'ll", "'LL", "'d", "'D",
	".", ",", "!", "(", "—", "。", "，", "😀", "👍🏽", "\u200d", "🇨🇳", "𝐀", "𠀀", "\U0001F600",
	"\xff", "\xe4\xb8", "\xed\xa0\x80", "\ufffd", "\x00", "\x7f", "<|endoftext|>",
}

func TestPreTokenizersMatchRegexp(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for name, c := range cutters {
		re := regexp2.MustCompile(c.pattern, regexp2.None)
		t.Run(name, func(t *testing.T) {
			for range 20000 {
				var b strings.Builder
				for range r.IntN(12) {
					b.WriteString(nastyRunes[r.IntN(len(nastyRunes))])
				}
				s := b.String()
				if diff := cmp.Diff(regexpCuts(t, re, s), c.cut(s)); diff != "" {
					t.Fatalf("%q (-regexp2 +ours):\n%s", s, diff)
				}
			}
		})
	}
}

// TestClassTable checks the rune class table against the unicode package
// (what regexp2's \s, \p{L} and \p{N} use) for every rune.
func TestClassTable(t *testing.T) {
	buf := make([]byte, 4)
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		n := utf8.EncodeRune(buf, r)
		for _, cjk := range []bool{false, true} {
			want := clsOther
			switch {
			case unicode.IsSpace(r):
				want = clsSpace
			case cjk && unicode.Is(unicode.Han, r):
				want = clsHan
			case unicode.IsLetter(r):
				want = clsLetter
			case unicode.IsNumber(r):
				want = clsNumber
			case cjk && isCJKPunctRange(r):
				want = clsCJKPunct
			}
			if got, w := classAt(string(buf[:n]), 0, cjk); got != want || w != n {
				t.Fatalf("classAt(%U, cjk=%v) = %d, %d; want %d, %d", r, cjk, got, w, want, n)
			}
		}
	}
}

func FuzzPreTokenizers(f *testing.F) {
	for _, s := range nastyRunes {
		f.Add(s + " x\n")
	}
	f.Add("I'M here  \t\r\n\n  ok 12345 ½\u00a0\u3000中文。")
	res := map[string]*regexp2.Regexp{}
	for name, c := range cutters {
		res[name] = regexp2.MustCompile(c.pattern, regexp2.None)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, c := range cutters {
			if diff := cmp.Diff(regexpCuts(t, res[name], s), c.cut(s)); diff != "" {
				t.Fatalf("%s: %q (-regexp2 +ours):\n%s", name, s, diff)
			}
		}
	})
}
