package normalize

import (
	"sync"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Per-rune class bits for the Basic Multilingual Plane.
const (
	// cNFC: a text made of such runes is already in NFC (starter, no
	// decomposition, never combines with a neighbour).
	cNFC = 1 << iota
	// cNFKC: as cNFC, for NFKC.
	cNFKC
	// cSpace: unicode.IsSpace, not a line break.
	cSpace
	// cBreak: a line break (\n \v \f \r U+0085 U+2028 U+2029).
	cBreak
	// cDrop: a control character Text drops (Cc other than \t and the
	// line breaks, and U+FEFF).
	cDrop
	// cDropKey: what Key drops on top of cDrop: format characters (Cf),
	// such as U+200B ZERO WIDTH SPACE and U+00AD SOFT HYPHEN.
	cDropKey
	// cLower: unicode.ToLower leaves the rune as it is.
	cLower
)

var classTable = sync.OnceValue(func() *[0x10000]uint8 {
	var t [0x10000]uint8
	var buf [4]byte
	for r := rune(0); r < 0x10000; r++ {
		if r >= 0xD800 && r < 0xE000 {
			continue // surrogates never decode
		}
		var c uint8
		switch {
		case r == '\n' || r == '\v' || r == '\f' || r == '\r' || r == 0x85 || r == 0x2028 || r == 0x2029:
			c |= cBreak
		case unicode.IsSpace(r):
			c |= cSpace
		case unicode.IsControl(r) || r == 0xFEFF:
			c |= cDrop
		case unicode.Is(unicode.Cf, r):
			c |= cDropKey
		}
		n := encodeRune(buf[:], r)
		s := buf[:n]
		if r < 0x80 || stable(norm.NFC, s) {
			c |= cNFC
		}
		if r < 0x80 || stable(norm.NFKC, s) {
			c |= cNFKC
		}
		if unicode.ToLower(r) == r {
			c |= cLower
		}
		t[r] = c
	}
	return &t
})

// stable reports whether the rune in s is a starter that is its own
// normal form and never combines backwards.
func stable(f norm.Form, s []byte) bool {
	p := f.Properties(s)
	return p.BoundaryBefore() && p.BoundaryAfter() && p.CCC() == 0 && f.IsNormal(s)
}

// supplementarySafe reports whether a rune outside the BMP is known to be
// stable under NFC and NFKC: the CJK ideograph extension planes (the
// compatibility ideographs at U+2F800..U+2FA1F decompose, so they are not).
func supplementarySafe(r rune) bool {
	return (r >= 0x20000 && r < 0x2F800) || (r >= 0x30000 && r < 0x40000)
}

func encodeRune(p []byte, r rune) int {
	switch {
	case r < 0x80:
		p[0] = byte(r)
		return 1
	case r < 0x800:
		p[0] = 0xC0 | byte(r>>6)
		p[1] = 0x80 | byte(r)&0x3F
		return 2
	default:
		p[0] = 0xE0 | byte(r>>12)
		p[1] = 0x80 | byte(r>>6)&0x3F
		p[2] = 0x80 | byte(r)&0x3F
		return 3
	}
}
