package bpe

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func pieces(s string, chunk int) []string {
	var out []string
	preTokenize(s, chunk, func(p string) { out = append(out, p) })
	return out
}

func TestPreTokenizeGPT2(t *testing.T) {
	// Expected cuts are those of GPT-2's regular expression.
	tests := map[string]struct {
		in   string
		want []string
	}{
		"words":         {"Hello world", []string{"Hello", " world"}},
		"contractions":  {"I'm can't we'll they've", []string{"I", "'m", " can", "'t", " we", "'ll", " they", "'ve"}},
		"upper 'S":      {"IT'S", []string{"IT", "'", "S"}},
		"numbers":       {"in 2023, 15%", []string{"in", " 2023", ",", " 15", "%"}},
		"punct run":     {"end...\"", []string{"end", "...\""}},
		"space + punct": {"a 's", []string{"a", " '", "s"}},
		"two spaces":    {"a  b", []string{"a", " ", " b"}},
		"trailing":      {"a  ", []string{"a", "  "}},
		"newline":       {"a\n\nb", []string{"a", "\n", "\n", "b"}},
		"newlines end":  {"a\n\n", []string{"a", "\n\n"}},
		"tab word":      {"\tword", []string{"\t", "word"}},
		"space newline": {"a \nb", []string{"a", " ", "\n", "b"}},
		"spaces tab":    {"a  \tb", []string{"a", "  ", "\t", "b"}},
		"invalid":       {"a\xff\xfeb", []string{"a", "\xff\xfe", "b"}},
		"han plain":     {"本院认为被告应当", []string{"本院认为被告应当"}},
		"empty":         {"", nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, pieces(tc.in, 0)); diff != "" {
				t.Errorf("preTokenize(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestPreTokenizeChinese(t *testing.T) {
	tests := map[string]struct {
		in   string
		want []string
	}{
		"han run":       {"本院认为被告应当支付", []string{"本院认为", "被告应当", "支付"}},
		"leading space": {"a 甲方乙方当事", []string{"a", " 甲方乙方", "当事"}},
		"cjk punct":     {"判决如下：一、被告", []string{"判决如下", "：", "一", "、", "被告"}},
		"punct run":     {"。。。。。", []string{"。。。。", "。"}},
		"mixed":         {"人民币100元（¥100.00）", []string{"人民币", "100", "元", "（", "¥", "100", ".", "00", "）"}},
		"latin after":   {"中文English", []string{"中文", "English"}},
		"ideo space":    {"甲\u3000乙", []string{"甲", "\u3000", "乙"}},
		"ling":          {"二〇二三年", []string{"二〇二三", "年"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, pieces(tc.in, ChunkRunes)); diff != "" {
				t.Errorf("preTokenize(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestPreTokenizeCoversInput(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", " ", "  ", "\n", "\t", "'", "'s", "1", ".", "中", "。", "（", "\u3000", "\xff", "é", "😀"}
	for range 2000 {
		var b strings.Builder
		for range r.IntN(30) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		s := b.String()
		for _, chunk := range []int{0, ChunkRunes} {
			ps := pieces(s, chunk)
			if got := strings.Join(ps, ""); got != s {
				t.Fatalf("pieces of %q join to %q", s, got)
			}
			for _, p := range ps {
				if p == "" {
					t.Fatalf("empty piece in %q", s)
				}
			}
		}
	}
}

func TestByteLevelMapping(t *testing.T) {
	seen := map[rune]bool{}
	for b := 0; b < 256; b++ {
		r := byteToRune[b]
		if seen[r] {
			t.Fatalf("byte %#x maps to %U twice", b, r)
		}
		seen[r] = true
	}
	if byteToRune[' '] != 'Ġ' || byteToRune['\n'] != 'Ċ' || byteToRune['a'] != 'a' {
		t.Fatalf("mapping differs from GPT-2: space→%c newline→%c", byteToRune[' '], byteToRune['\n'])
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	back, ok := fromByteLevel(toByteLevel(string(all)))
	if !ok || back != string(all) {
		t.Fatal("byte-level spelling does not round-trip")
	}
}
