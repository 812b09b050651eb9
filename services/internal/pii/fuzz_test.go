package pii

import (
	"strings"
	"testing"
)

// FuzzScrub checks on arbitrary bytes that scanning never panics, that
// matches are in bounds, ordered and disjoint, and that Scrub's output is
// the input with each span replaced by its placeholder.
func FuzzScrub(f *testing.F) {
	for _, seed := range []string{
		"身份证11010519491231002X，电话（0571）87654321",
		"a@b.cn +86 138 1234 5678 (415) 555-2671 +1 (212) 555-0100 8.8.8.8",
		"护照号E12345678 4111-1111-1111-1111 123-45-6789",
		"\xff\xfe@\xef\xbc\x88010\xef\xbc",
		"（010", "+86", "+1", "(", "@", "护照\xe6\x8a",
	} {
		f.Add(seed)
	}
	s, _ := New(Config{})
	f.Fuzz(func(t *testing.T, text string) {
		out, ms := s.Scrub(text)
		var b strings.Builder
		prev := 0
		for _, m := range ms {
			if m.Start < prev || m.End <= m.Start || m.End > len(text) {
				t.Fatalf("bad span %+v after %d in %q", m, prev, text)
			}
			b.WriteString(text[prev:m.Start])
			b.WriteString(Placeholder(m.Type))
			prev = m.End
		}
		b.WriteString(text[prev:])
		if b.String() != out {
			t.Fatalf("Scrub(%q) = %q, spans rebuild %q", text, out, b.String())
		}
	})
}
