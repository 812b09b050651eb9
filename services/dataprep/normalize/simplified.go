package normalize

import (
	"sort"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// tsBMP maps a BMP rune to 1 + its index in tsPairs, 0 when it has no
// mapping: one 128 KiB table, built on first use.
var tsBMP = sync.OnceValue(func() *[0x10000]uint16 {
	var t [0x10000]uint16
	for i, p := range tsPairs {
		if p.from < 0x10000 {
			t[p.from] = uint16(i + 1)
		}
	}
	return &t
})

// tsSupp is the part of tsPairs whose sources lie outside the BMP.
var tsSupp = sync.OnceValue(func() []struct{ from, to rune } {
	i := sort.Search(len(tsPairs), func(i int) bool { return tsPairs[i].from >= 0x10000 })
	return tsPairs[i:]
})

// Simplify returns the Simplified form of the character r, or r.
func Simplify(r rune) rune {
	if r < 0x3400 {
		return r
	}
	if r < 0x10000 {
		if i := tsBMP()[r]; i != 0 {
			return tsPairs[i-1].to
		}
		return r
	}
	supp := tsSupp()
	i := sort.Search(len(supp), func(i int) bool { return supp[i].from >= r })
	if i < len(supp) && supp[i].from == r {
		return supp[i].to
	}
	return r
}

// ToSimplified converts Traditional Chinese characters in s to Simplified,
// one character at a time, with OpenCC's TSCharacters table (first
// candidate). OpenCC's phrase table (TSPhrases) is out of scope, so a
// character whose Simplified form depends on the word it is in always gets
// the table's first candidate. Invalid UTF-8 is
// passed through as it is. When nothing changes, s itself is returned.
func ToSimplified(s string) string {
	t := tsBMP()
	// Find the first rune that changes; most input needs no copy.
	i := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r < 0x10000 && t[r] != 0) || (r >= 0x10000 && Simplify(r) != r) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	out := make([]byte, i, len(s)+8)
	copy(out, s[:i])
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			out = append(out, c)
			i++
			continue
		}
		if to := Simplify(r); to != r {
			out = utf8.AppendRune(out, to)
		} else {
			out = append(out, s[i:i+size]...)
		}
		i += size
	}
	return unsafe.String(&out[0], len(out))
}
