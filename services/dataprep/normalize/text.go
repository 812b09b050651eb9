package normalize

import (
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/unicode/norm"
)

// Text returns the training text of s: see TextCount.
func Text(s string) string {
	t, _ := TextCount(s)
	return t
}

// TextCount returns the training text of s and the number of invalid UTF-8
// bytes that were replaced by U+FFFD. The training text is s with
//
//   - invalid UTF-8 bytes replaced by U+FFFD, one per byte;
//   - CR LF, lone CR, VT, FF, U+0085, U+2028 and U+2029 turned into \n;
//   - control characters other than \n and \t dropped, and U+FEFF (BOM);
//   - trailing white space (unicode.IsSpace, including U+3000) trimmed from
//     every line, leading blank lines and the trailing white space of the
//     document dropped;
//   - runs of blank lines collapsed to one blank line;
//   - Unicode NFC.
//
// Everything else, full-width characters and Chinese punctuation included,
// is kept as it is. Text is idempotent. It scans s once; the NFC step runs
// only when a rune that NFC could change was seen (none in ASCII, CJK
// ideographs, kana, CJK and full-width punctuation).
func TextCount(s string) (string, int) {
	cl := classTable()
	out := make([]byte, 0, len(s))
	contentEnd := 0 // len(out) after the last rune that is not white space
	nl := 0         // line breaks since the last content rune
	invalid := 0
	needNFC := false
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7F { // printable ASCII
			if c == ' ' {
				if nl > 0 {
					out = textBreaks(out, contentEnd, nl)
				}
				out = append(out, ' ')
				i++
				continue
			}
			if nl > 0 {
				out = textBreaks(out, contentEnd, nl)
				nl = 0
			}
			out = append(out, c)
			contentEnd = len(out)
			i++
			continue
		}
		r, size := rune(c), 1
		if c >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		var k uint8
		switch {
		case r == utf8.RuneError && size == 1:
			invalid++
		case r < 0x10000:
			k = cl[r]
		case !supplementarySafe(r):
			needNFC = true
		}
		switch {
		case k&cBreak != 0:
			if r == '\r' && i+1 < len(s) && s[i+1] == '\n' {
				i++ // CR LF is one break
			}
			out = out[:contentEnd]
			nl++
		case k&cDrop != 0:
		case k&cSpace != 0:
			if k&cNFC == 0 {
				needNFC = true // U+2000, U+2001 are NFC singletons
			}
			if nl > 0 {
				out = textBreaks(out, contentEnd, nl)
			}
			out = append(out, s[i:i+size]...)
		default:
			if r < 0x10000 && k&cNFC == 0 {
				needNFC = true
			}
			if nl > 0 {
				out = textBreaks(out, contentEnd, nl)
				nl = 0
			}
			if r == utf8.RuneError && size == 1 {
				out = append(out, "\uFFFD"...)
			} else {
				out = append(out, s[i:i+size]...)
			}
			contentEnd = len(out)
		}
		i += size
	}
	out = out[:contentEnd]
	if needNFC && !norm.NFC.IsNormal(out) {
		out = norm.NFC.Append(make([]byte, 0, len(out)+len(out)/8), out...)
	}
	if len(out) == 0 {
		return "", invalid
	}
	return unsafe.String(&out[0], len(out)), invalid
}

// textBreaks writes the pending line breaks (at most two: one blank line)
// before the next rune of a line, unless nothing has been written yet or
// they were already written before leading white space of this line.
func textBreaks(out []byte, contentEnd, nl int) []byte {
	if contentEnd == 0 || len(out) != contentEnd {
		return out
	}
	if nl > 1 {
		return append(out, '\n', '\n')
	}
	return append(out, '\n')
}
