package bpe

import "unicode/utf8"

// byteToRune and runeToByte are GPT-2's reversible byte↔unicode mapping: the
// printable Latin-1 bytes map to themselves and the other 68 bytes to
// U+0100 onwards, so every token is a printable string in tokenizer.json.
var (
	byteToRune [256]rune
	runeToByte = map[rune]byte{}
)

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
	}
}

// toByteLevel returns the byte-level unicode spelling of raw bytes.
func toByteLevel(b string) string {
	out := make([]byte, 0, len(b)*2)
	for i := 0; i < len(b); i++ {
		out = utf8.AppendRune(out, byteToRune[b[i]])
	}
	return string(out)
}

// fromByteLevel inverts toByteLevel; ok is false if s holds a rune outside the
// mapping.
func fromByteLevel(s string) (string, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		b, ok := runeToByte[r]
		if !ok {
			return "", false
		}
		out = append(out, b)
	}
	return string(out), true
}
