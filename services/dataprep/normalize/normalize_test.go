package normalize

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/text/unicode/norm"
)

func TestText(t *testing.T) {
	tests := map[string]struct {
		in, want string
		invalid  int
	}{
		"empty":                   {"", "", 0},
		"plain":                   {"hello world", "hello world", 0},
		"crlf":                    {"a\r\nb\rc\n", "a\nb\nc", 0},
		"unicode breaks":          {"a\u2028b\u2029c\u0085d\ve\ff", "a\nb\nc\nd\ne\nf", 0},
		"controls dropped":        {"a\x00b\x07c\x1bd\u009be\ufefff\x7f", "abcdef", 0},
		"tab kept":                {"a\tb", "a\tb", 0},
		"trailing spaces":         {"a  \t\nb\u3000\u00a0\nc ", "a\nb\nc", 0},
		"leading indent kept":     {"  a\n    b", "  a\n    b", 0},
		"blank runs collapsed":    {"a\n\n\n\n b\n \n\t\n\nc", "a\n\n b\n\nc", 0},
		"leading blank lines":     {"\n\n \n\nabc", "abc", 0},
		"trailing blank lines":    {"abc\n\n  \n", "abc", 0},
		"whitespace only":         {" \n\t\n\u3000", "", 0},
		"invalid utf8":            {"a\xffb\xc3", "a\uFFFDb\uFFFD", 2},
		"real U+FFFD not counted": {"a\uFFFDb", "a\uFFFDb", 0},
		"nfc":                     {"e\u0301 A\u030a \u2126", "\u00e9 \u00c5 \u03a9", 0},
		"nfc across dropped":      {"e\x01\u0301", "\u00e9", 0},
		"chinese kept":            {"第一条　为了保护，制定本法。（一）ＡＢＣ１２３", "第一条　为了保护，制定本法。（一）ＡＢＣ１２３", 0},
		"markdown heading":        {"# 中华人民共和国民法典\r\n\r\n\r\n## 第一章", "# 中华人民共和国民法典\n\n## 第一章", 0},
		"traditional kept":        {"書們臺國", "書們臺國", 0},
		"compat ideograph nfc":    {"\uF900", "\u8C48", 0},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, n := TextCount(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("TextCount(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			if n != tt.invalid {
				t.Errorf("TextCount(%q) invalid = %d, want %d", tt.in, n, tt.invalid)
			}
			if again := Text(got); again != got {
				t.Errorf("Text not idempotent: Text(%q) = %q", got, again)
			}
		})
	}
}

func TestKey(t *testing.T) {
	tests := map[string]struct {
		in, want string
		opts     KeyOptions
	}{
		"full width":        {in: "ＡＢＣ　１２３", want: "abc 123"},
		"case":              {in: "Apache LICENSE Ünïcode", want: "apache license ünïcode"},
		"whitespace":        {in: "  a \t\n\n b\r\n\u3000c\u00a0 ", want: "a b c"},
		"punctuation":       {in: "第一条，本法（试行）。", want: "第一条,本法(试行)。"},
		"format dropped":    {in: "ab\u200bc\u00ad\ufeffd", want: "abcd"},
		"controls dropped":  {in: "a\x00b\x1b", want: "ab"},
		"nfkc ligature":     {in: "ﬁle ㈱ ①", want: "file (株) 1"},
		"nfkc decomposed":   {in: "E\u0301", want: "\u00e9"},
		"invalid":           {in: "a\xffb", want: "a\uFFFDb"},
		"traditional as is": {in: "書們", want: "書們"},
		"simplified option": {in: "中華人民共和國 書們臺", want: "中华人民共和国 书们台", opts: KeyOptions{Simplified: true}},
		"empty":             {in: " \n ", want: ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got := KeyWith(tt.in, tt.opts)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("KeyWith(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			if again := KeyWith(got, tt.opts); again != got {
				t.Errorf("KeyWith not idempotent: %q -> %q", got, again)
			}
		})
	}
	if got := Key("ＡＢＣ　１２３"); got != "abc 123" {
		t.Errorf("Key(ＡＢＣ　１２３) = %q, want %q", got, "abc 123")
	}
}

func TestToSimplified(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"characters":  {"書們臺國", "书们台国"},
		"sentence":    {"中華人民共和國憲法第一條", "中华人民共和国宪法第一条"},
		"simplified":  {"中华人民共和国宪法", "中华人民共和国宪法"},
		"mixed ascii": {"GPL 條款 v3", "GPL 条款 v3"},
		"chain":       {"薴", "苎"},
		"invalid":     {"書\xff們", "书\xff们"},
		"empty":       {"", ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ToSimplified(tt.in)); diff != "" {
				t.Errorf("ToSimplified(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

// TestTable checks the generated table: sorted, no identities, idempotent,
// and large enough to be the full TSCharacters dictionary.
func TestTable(t *testing.T) {
	if len(tsPairs) < 4000 {
		t.Fatalf("tsPairs has %d entries, want the full table (> 4000)", len(tsPairs))
	}
	for i, p := range tsPairs {
		if i > 0 && tsPairs[i-1].from >= p.from {
			t.Fatalf("tsPairs not sorted at %d: %q after %q", i, p.from, tsPairs[i-1].from)
		}
		if p.from == p.to {
			t.Errorf("identity entry %q", p.from)
		}
		if Simplify(p.from) != p.to {
			t.Errorf("Simplify(%q) = %q, want %q", p.from, Simplify(p.from), p.to)
		}
		if Simplify(p.to) != p.to {
			t.Errorf("chain: %q -> %q -> %q", p.from, p.to, Simplify(p.to))
		}
	}
}

// TestClasses checks the fast paths' claims against x/text: a rune marked
// NFC- or NFKC-stable is its own normal form and never combines, and the
// supplementary ranges assumed stable are.
func TestClasses(t *testing.T) {
	cl := classTable()
	check := func(r rune) {
		s := string(r)
		if cl[r&0xFFFF]&cNFC != 0 || (r >= 0x10000 && supplementarySafe(r)) {
			if p := norm.NFC.PropertiesString(s); !p.BoundaryBefore() || p.CCC() != 0 {
				t.Errorf("%U marked NFC-stable but may combine", r)
			}
			if norm.NFC.String(s) != s {
				t.Errorf("%U marked NFC-stable but NFC changes it", r)
			}
		}
	}
	for r := rune(0); r < 0x10000; r++ {
		if r >= 0xD800 && r < 0xE000 {
			continue
		}
		check(r)
		if cl[r]&cNFKC != 0 && norm.NFKC.String(string(r)) != string(r) {
			t.Errorf("%U marked NFKC-stable but NFKC changes it", r)
		}
	}
	for r := rune(0x20000); r < 0x40000; r++ {
		if supplementarySafe(r) && (norm.NFKC.String(string(r)) != string(r) || norm.NFC.PropertiesString(string(r)).CCC() != 0) {
			t.Errorf("%U assumed stable but is not", r)
		}
	}
}

func FuzzText(f *testing.F) {
	for _, s := range []string{"", "a\r\n\n\nb  ", "e\u0301\x00", "\xff\xfe", "# 标题\n\n第一条　（ＡＢ）…", "\u3000\n\u2028x", " \u0301\n\u0301 ", "\uF900\u0345"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, _ := TextCount(s)
		if !utf8.ValidString(got) {
			t.Fatalf("Text(%q) = %q, not valid UTF-8", s, got)
		}
		if again := Text(got); again != got {
			t.Fatalf("Text not idempotent on %q: %q -> %q", s, got, again)
		}
		if strings.Contains(got, "\r") || strings.Contains(got, "\n\n\n") {
			t.Fatalf("Text(%q) = %q keeps CR or a blank-line run", s, got)
		}
		if !norm.NFC.IsNormalString(got) {
			t.Fatalf("Text(%q) = %q is not NFC", s, got)
		}
		k := Key(s)
		if !utf8.ValidString(k) || Key(k) != k {
			t.Fatalf("Key not idempotent on %q: %q -> %q", s, k, Key(k))
		}
	})
}
