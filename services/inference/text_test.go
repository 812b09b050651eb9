package inference

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// The text sent for a stream of bytes is the same however it is cut into
// chunks, at the points the service cuts (validPrefix): invalid bytes are
// replaced one for one, and a chunk never ends inside a sequence that may
// still complete.
func TestReplaceInvalidIndependentOfChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", " ", "é", "猫", "🐈", "\xe7", "\x8c", "\xf0\x9f", "\xff", "\xc3"}
	for range 2000 {
		var s string
		for range r.IntN(12) {
			s += alphabet[r.IntN(len(alphabet))]
		}
		want := replaceInvalid(s)
		if !utf8.ValidString(want) {
			t.Fatalf("replaceInvalid(%q) = %q is not valid UTF-8", s, want)
		}
		// Stream s a few bytes at a time as the service does.
		got, sent := "", 0
		for end := 0; end < len(s); {
			end = min(len(s), end+1+r.IntN(4))
			complete := validPrefix(s[:end])
			if complete > sent {
				got += replaceInvalid(s[sent:complete])
				sent = complete
			}
		}
		got += replaceInvalid(s[sent:])
		if got != want {
			t.Fatalf("%q streamed gives %q, whole %q", s, got, want)
		}
	}
}
