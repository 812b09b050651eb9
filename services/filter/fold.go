package filter

import (
	"unicode"
	"unicode/utf8"
)

// Folding maps text to the form phrase lists are matched in: full-width
// forms to ASCII, upper to lower case, Traditional to Simplified Chinese
// (for the characters in tradSimp), common look-alike digits and symbols
// in words to letters (0→o, 1→i, 3→e, 4→a, 5→s, 7→t, @→a, $→s), and
// everything that is neither a letter nor a digit (spaces, punctuation,
// symbols, zero-width and combining marks) dropped, so that "k.i l-l",
// "ＫＩＬＬ" and "k1ll" all fold to "kill", and "炸 弹" and "炸彈" to "炸弹".
//
// Folded text keeps, for every folded byte, the byte offset in the input of
// the character it came from, so a match in folded text maps back to a
// span of the input.

// asciiFold is the folded byte of each ASCII byte; 0 drops it.
var asciiFold [128]byte

func init() {
	for c := 'a'; c <= 'z'; c++ {
		asciiFold[c] = byte(c)
		asciiFold[c-'a'+'A'] = byte(c)
	}
	for c := '0'; c <= '9'; c++ {
		asciiFold[c] = byte(c)
	}
	for from, to := range map[byte]byte{'0': 'o', '1': 'i', '3': 'e', '4': 'a', '5': 's', '7': 't', '@': 'a', '$': 's'} {
		asciiFold[from] = to
	}
}

// foldRune folds one non-ASCII rune; it returns -1 to drop it.
func foldRune(r rune) rune {
	if r >= 0xFF01 && r <= 0xFF5E { // full-width ASCII
		r -= 0xFEE0
		if r < utf8.RuneSelf {
			if f := asciiFold[r]; f != 0 {
				return rune(f)
			}
			return -1
		}
	}
	if r >= cjkFirst && r <= cjkLast { // CJK unified ideographs: letters
		return cjkFold[r-cjkFirst]
	}
	if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
		return -1
	}
	return unicode.ToLower(r)
}

// The CJK unified ideographs, folded through a dense table.
const cjkFirst, cjkLast = 0x4E00, 0x9FFF

var cjkFold [cjkLast - cjkFirst + 1]rune

func init() {
	for i := range cjkFold {
		cjkFold[i] = rune(cjkFirst + i)
	}
	for t, s := range tradSimp {
		if t >= cjkFirst && t <= cjkLast {
			cjkFold[t-cjkFirst] = s
		}
	}
}

// folder holds the buffers of one folding; reuse it to avoid allocations.
type folder struct {
	out []byte  // folded text
	pos []int32 // pos[i]: input offset of the character folded byte i came from
}

// fold folds text into f.out and f.pos (which gets one more entry: the
// input length, so a match ending at folded byte e ends at input pos of the
// next character, or len(text)).
func (f *folder) fold(text string) {
	out, pos := f.out[:0], f.pos[:0]
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			if fc := asciiFold[c]; fc != 0 {
				out = append(out, fc)
				pos = append(pos, int32(i))
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		if fr := foldRune(r); fr >= 0 {
			n := len(out)
			out = utf8.AppendRune(out, fr)
			for range len(out) - n {
				pos = append(pos, int32(i))
			}
		}
		i += size
	}
	f.out, f.pos = out, pos
}

// foldString is the folded form of s (for phrases).
func foldString(s string) string {
	var f folder
	f.fold(s)
	return string(f.out)
}
