package sampling

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzStopCutterWholeRunes checks that however the text is split into pieces, the
// streamed cut is the cut of the whole text, and that no released piece
// ends inside a character the input had whole.
func FuzzStopCutterWholeRunes(f *testing.F) {
	f.Add("alpha beta gamma delta", "ta gam", "xyz", uint8(3))
	f.Add("aaab", "aab", "b", uint8(1))
	f.Add("héllo wörld", "ö", "llo w", uint8(1))
	f.Add("猫坐在垫子上", "垫子", "x", uint8(2))
	f.Add("abcabd", "abd", "cab", uint8(1))
	f.Fuzz(func(t *testing.T, text, stop1, stop2 string, size uint8) {
		var stops []string
		for _, s := range []string{stop1, stop2} {
			if s != "" {
				stops = append(stops, s)
			}
		}
		// Pieces of whole characters, as the service pushes them.
		n := int(size%8) + 1
		var pieces []string
		for rest := text; rest != ""; {
			k := min(n, len(rest))
			for k < len(rest) && !utf8.RuneStart(rest[k]) {
				k++
			}
			pieces = append(pieces, rest[:k])
			rest = rest[k:]
		}
		c := NewStopCutter(stops)
		var out strings.Builder
		hit := false
		for _, p := range pieces {
			r, h := c.Push(p)
			if utf8.ValidString(text+stop1+stop2) && !utf8.ValidString(r) {
				t.Fatalf("piece %q released %q, not whole characters", p, r)
			}
			out.WriteString(r)
			if h {
				hit = true
				break
			}
		}
		if !hit {
			out.WriteString(c.Flush())
		}
		want, wantHit := text, false
		first := -1
		for _, s := range stops {
			if i := strings.Index(text, s); i >= 0 && (first < 0 || i < first) {
				first = i
			}
		}
		if first >= 0 {
			want, wantHit = text[:first], true
		}
		if out.String() != want || hit != wantHit {
			t.Errorf("text %q stops %q in pieces of %d: %q, %v; want %q, %v", text, stops, n, out.String(), hit, want, wantHit)
		}
	})
}

// cutAll is the stop cutter's answer for text arriving in chunks.
func cutAll(stops []string, chunks []string) (string, bool) {
	s := NewStopCutter(stops)
	var out strings.Builder
	for _, c := range chunks {
		text, hit := s.Push(c)
		out.WriteString(text)
		if hit {
			return out.String(), true
		}
	}
	out.WriteString(s.Flush())
	return out.String(), false
}

// cutRef is the answer on the whole text at once.
func cutRef(stops []string, text string) (string, bool) {
	first := -1
	for _, s := range stops {
		if i := strings.Index(text, s); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first < 0 {
		return text, false
	}
	return text[:first], true
}

// FuzzStopCutterByteChunks checks that however the text is split into chunks (at any byte, as the gateway received them), the
// streamed cut is the cut of the whole text.
func FuzzStopCutterByteChunks(f *testing.F) {
	f.Add("alpha beta gamma delta", "ta gam", "xyz", uint8(3))
	f.Add("aaab", "aab", "b", uint8(1))
	f.Add("hello\nuser: more", "\nuser:", "\nsystem:", uint8(2))
	f.Add("héllo wörld", "ö", "llo w", uint8(1))
	f.Add("abcabd", "abd", "cab", uint8(1))
	f.Fuzz(func(t *testing.T, text, stop1, stop2 string, size uint8) {
		var stops []string
		for _, s := range []string{stop1, stop2} {
			if s != "" {
				stops = append(stops, s)
			}
		}
		n := int(size%8) + 1
		var chunks []string
		for rest := text; rest != ""; {
			k := min(n, len(rest))
			chunks = append(chunks, rest[:k])
			rest = rest[k:]
		}
		got, gotHit := cutAll(stops, chunks)
		want, wantHit := cutRef(stops, text)
		if got != want || gotHit != wantHit {
			t.Errorf("text %q stops %q in chunks of %d: %q, %v; want %q, %v", text, stops, n, got, gotHit, want, wantHit)
		}
	})
}
