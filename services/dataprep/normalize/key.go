package normalize

import (
	"unicode"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/unicode/norm"
)

// KeyOptions configures KeyWith.
type KeyOptions struct {
	// Simplified also converts Traditional Chinese characters to
	// Simplified (ToSimplified), so that the two scripts match.
	Simplified bool
}

// Key returns the matching key of s for deduplication: KeyWith with the zero
// KeyOptions.
func Key(s string) string { return KeyWith(s, KeyOptions{}) }

// KeyWith returns the matching key of s:
//
//   - full-width ASCII (U+FF01..U+FF5E) folded to ASCII and U+3000
//     IDEOGRAPHIC SPACE to a space; any other rune NFKC would change sends
//     the text through NFKC;
//   - lower case (unicode.ToLower, rune by rune: no ß→ss);
//   - control and format characters (Cc, Cf: U+200B, U+00AD, U+FEFF) dropped,
//     invalid UTF-8 bytes replaced by U+FFFD;
//   - every run of white space and line breaks collapsed to one space, and
//     the key trimmed;
//   - with o.Simplified, Traditional characters converted to Simplified.
//
// A key is for comparison and hashing only, never for training. Key is
// idempotent and scans s once in the common case (no rune that needs NFKC).
func KeyWith(s string, o KeyOptions) string {
	out, needNFKC := keyPass(s, o, true)
	if needNFKC {
		out, _ = keyPass(norm.NFKC.String(out), o, false)
	}
	return out
}

func keyPass(s string, o KeyOptions, check bool) (string, bool) {
	cl := classTable()
	out := make([]byte, 0, len(s))
	space := false // a space is pending before the next rune
	needNFKC := false
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c > ' ' && c < 0x7F:
				if space {
					out = append(out, ' ')
					space = false
				}
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				out = append(out, c)
			case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
				space = len(out) > 0
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			r = utf8.RuneError
		case r >= 0xFF01 && r <= 0xFF5E:
			r -= 0xFF01 - 0x21 // full-width ASCII
			if space {
				out = append(out, ' ')
				space = false
			}
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			out = append(out, byte(r))
			continue
		case r == 0x3000:
			space = len(out) > 0
			continue
		case r < 0x10000:
			k := cl[r]
			if k&(cSpace|cBreak) != 0 {
				space = len(out) > 0
				continue
			}
			if k&(cDrop|cDropKey) != 0 {
				continue
			}
			if o.Simplified {
				r = Simplify(r)
			}
			if r >= 0x10000 || cl[r]&cLower == 0 {
				r = unicode.ToLower(r)
			}
			if check && r < 0x10000 && cl[r]&cNFKC == 0 {
				needNFKC = true
			}
		default:
			if unicode.Is(unicode.Cf, r) {
				continue
			}
			if o.Simplified {
				r = Simplify(r)
			}
			r = unicode.ToLower(r)
			if check && !supplementarySafe(r) {
				needNFKC = true
			}
		}
		if space {
			out = append(out, ' ')
			space = false
		}
		out = utf8.AppendRune(out, r)
	}
	if len(out) == 0 {
		return "", needNFKC
	}
	return unsafe.String(&out[0], len(out)), needNFKC
}
