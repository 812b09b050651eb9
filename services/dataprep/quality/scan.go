package quality

import (
	"sync"
	"unicode"
)

// asciiFold lower-cases ASCII letters and keeps every other byte: the
// case folding of boilerplate matching and of Latin words.
var asciiFold = func() (t [256]byte) {
	for i := range t {
		c := byte(i)
		if c >= 'A' && c <= 'Z' {
			c |= 0x20
		}
		t[i] = c
	}
	return t
}()

// Classes of runes for scan.
const (
	clsOther     uint8 = iota // counted, ends a word
	clsSpace                  // not counted, ends a word
	clsCJK                    // a word of its own
	clsEllipsis               // '…': a symbol
	clsLetter                 // part of a word, not Latin
	clsLatin                  // part of a word, a Latin letter
	clsDigitWord              // part of a word, a digit
)

// classify is the class of r, as the unicode package says.
func classify(r rune) uint8 {
	switch {
	case isCJK(r):
		return clsCJK
	case r == '…':
		return clsEllipsis
	case unicode.IsSpace(r):
		return clsSpace
	case unicode.IsLetter(r) || unicode.IsDigit(r):
		if unicode.Is(unicode.Latin, r) {
			return clsLatin
		}
		return clsLetter
	}
	return clsOther
}

// bmpClass caches classify for the Basic Multilingual Plane (64 KiB, built
// on first use) so that punctuation and non-Latin letters cost one load
// instead of range-table searches.
var (
	bmpOnce  sync.Once
	bmpClass *[1 << 16]uint8
)

func loadBMPClass() {
	bmpOnce.Do(func() {
		t := new([1 << 16]uint8)
		for r := range t {
			t[r] = classify(rune(r))
		}
		bmpClass = t
	})
}

// boilerplate finds any of a set of lower-cased patterns in a line, ASCII
// letters matching without regard to case, in one pass over the line: a
// 64 Ki-bit filter of the patterns' first three bytes (hashed) picks the
// few places worth comparing. It needs every pattern to be at least three
// bytes long; fast says whether they are.
type boilerplate struct {
	fast     bool
	patterns [][]byte
	filter   [1 << 10]uint64
}

func trigramKey(w uint32) uint32 { return (w * 0x9E3779B1) >> 16 }

func newBoilerplate(patterns [][]byte) *boilerplate {
	b := &boilerplate{fast: true, patterns: patterns}
	for _, p := range patterns {
		if len(p) < 3 {
			b.fast = false
			continue
		}
		k := trigramKey(uint32(p[0])<<16 | uint32(p[1])<<8 | uint32(p[2]))
		b.filter[k>>6] |= 1 << (k & 63)
	}
	return b
}

// match reports whether line holds a pattern, for b.fast.
func (b *boilerplate) match(line string) bool {
	if len(line) < 3 {
		return false
	}
	w := uint32(asciiFold[line[0]])<<8 | uint32(asciiFold[line[1]])
	for i := 2; i < len(line); i++ {
		w = (w<<8 | uint32(asciiFold[line[i]])) & 0xFFFFFF
		if k := trigramKey(w); b.filter[k>>6]&(1<<(k&63)) != 0 && b.at(line[i-2:]) {
			return true
		}
	}
	return false
}

// at reports whether s starts with a pattern.
func (b *boilerplate) at(s string) bool {
next:
	for _, p := range b.patterns {
		if len(p) > len(s) {
			continue
		}
		for j, c := range p {
			if asciiFold[s[j]] != c {
				continue next
			}
		}
		return true
	}
	return false
}
