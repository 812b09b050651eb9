package bpe

import (
	"unicode"
	"unicode/utf8"
)

// ChunkRunes is the longest pre-token, in runes, that a run of Han ideographs
// or of CJK punctuation is cut into (see the package documentation).
const ChunkRunes = 4

// PreTokenizerPattern is the Oniguruma pattern, in HuggingFace's Split
// pre-tokenizer, that cuts text exactly as this package does with Han
// chunking on. MarshalJSON writes it.
const PreTokenizerPattern = `'s|'t|'re|'ve|'m|'ll|'d` +
	`| ?\p{Han}{1,4}` +
	`| ?[\x{3000}-\x{303F}\x{FE30}-\x{FE4F}\x{FF00}-\x{FF65}&&[^\s\p{L}\p{N}\p{Han}]]{1,4}` +
	`| ?[\p{L}&&[^\p{Han}]]+` +
	`| ?[\p{N}&&[^\p{Han}]]+` +
	`| ?[^\s\p{L}\p{N}\p{Han}\x{3000}-\x{303F}\x{FE30}-\x{FE4F}\x{FF00}-\x{FF65}]+` +
	`|\s+(?!\S)|\s+`

type class uint8

const (
	clsSpace class = iota
	clsLetter
	clsNumber
	clsOther
	clsHan
	clsCJKPunct
)

// Rune classes, as GPT-2's and cl100k's regular expressions see them in
// tiktoken-go (Go's regexp2 over the string's runes): \s is unicode.IsSpace,
// \p{L} is unicode.IsLetter (category L), \p{N} is unicode.IsNumber
// (category N, not just Nd: "²", "½", "Ⅻ" and "〇" count). An invalid UTF-8
// byte becomes U+FFFD there, a symbol (So), so here it is a one-byte
// clsOther.
//
// bmpClass holds, for every rune below U+10000, its GPT-2 class in the low
// bits and two flags for Han chunking; runes above are classified by the
// unicode package directly.
var bmpClass [0x10000]uint8

const (
	classMask    = 7
	flagHan      = 8  // unicode.Han
	flagCJKPunct = 16 // isCJKPunctRange
)

var asciiClass [128]class

func init() {
	for i := range bmpClass {
		bmpClass[i] = uint8(clsOther)
	}
	fill := func(tab *unicode.RangeTable, set func(*uint8)) {
		for _, r := range tab.R16 {
			for c := int(r.Lo); c <= int(r.Hi); c += int(r.Stride) {
				set(&bmpClass[c])
			}
		}
	}
	fill(unicode.L, func(v *uint8) { *v = uint8(clsLetter) })
	fill(unicode.N, func(v *uint8) { *v = uint8(clsNumber) })
	fill(unicode.White_Space, func(v *uint8) { *v = uint8(clsSpace) })
	fill(unicode.Han, func(v *uint8) { *v |= flagHan })
	for r := range bmpClass {
		if isCJKPunctRange(rune(r)) {
			bmpClass[r] |= flagCJKPunct
		}
	}
	for b := 0; b < 128; b++ {
		asciiClass[b] = class(bmpClass[b] & classMask)
	}
}

func isCJKPunctRange(r rune) bool {
	return (r >= 0x3000 && r <= 0x303F) || (r >= 0xFE30 && r <= 0xFE4F) || (r >= 0xFF00 && r <= 0xFF65)
}

// runeClass classifies a rune above the BMP, where bmpClass does not reach.
func runeClass(r rune, cjk bool) class {
	switch {
	case unicode.IsSpace(r):
		return clsSpace
	case cjk && unicode.Is(unicode.Han, r):
		return clsHan
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	}
	return clsOther
}

// classAt returns the class of the rune at s[i] and its width in bytes. An
// invalid byte is a one-byte clsOther. With cjk false, Han and CJK
// punctuation fall into GPT-2's classes.
func classAt(s string, i int, cjk bool) (class, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && w == 1 {
		return clsOther, 1
	}
	if r >= 0x10000 {
		return runeClass(r, cjk), w
	}
	v := bmpClass[r]
	c := class(v & classMask)
	if cjk {
		if v&flagHan != 0 {
			return clsHan, w
		}
		if c == clsOther && v&flagCJKPunct != 0 {
			return clsCJKPunct, w
		}
	}
	return c, w
}

// contraction returns the length of an English contraction ('s 't 're 've
// 'm 'll 'd) at s[i:], or 0.
func contraction(s string, i int) int {
	if s[i] != '\'' || i+1 >= len(s) {
		return 0
	}
	switch s[i+1] {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if i+2 < len(s) && s[i+2] == 'e' {
			return 3
		}
	case 'l':
		if i+2 < len(s) && s[i+2] == 'l' {
			return 3
		}
	}
	return 0
}

// preTokenize calls emit with each pre-token of s, in order; the pre-tokens
// concatenate to s. chunk is the Han/CJK punctuation chunk length in runes,
// 0 for plain GPT-2 behaviour.
func preTokenize(s string, chunk int, emit func(string)) {
	cjk := chunk > 0
	i := 0
	for i < len(s) {
		if n := contraction(s, i); n > 0 {
			emit(s[i : i+n])
			i += n
			continue
		}
		start := i
		c, w := classAt(s, i, cjk)
		if c == clsSpace {
			// Find the whitespace run [i, j) and the start of its last rune.
			j, last := i, i
			for j < len(s) {
				cj, wj := classAt(s, j, cjk)
				if cj != clsSpace {
					break
				}
				last = j
				j += wj
			}
			if j == len(s) {
				emit(s[i:j]) // \s+ at the end of the text
				i = j
				continue
			}
			if last > i {
				emit(s[i:last]) // \s+(?!\S): all but the last space
				i = last
			}
			if s[i] != ' ' {
				emit(s[i:j]) // a lone non-space whitespace before a word
				i = j
				continue
			}
			// A single ' ' joins the word that follows (the " ?" prefixes).
			start = i
			i++
			c, w = classAt(s, i, cjk)
		}
		i += w
		switch c {
		case clsHan, clsCJKPunct:
			for n := 1; i < len(s) && n < chunk; n++ {
				ci, wi := classAt(s, i, cjk)
				if ci != c {
					break
				}
				i += wi
			}
		default:
			for i < len(s) {
				ci, wi := classAt(s, i, cjk)
				if ci != c {
					break
				}
				i += wi
			}
		}
		emit(s[start:i])
	}
}
