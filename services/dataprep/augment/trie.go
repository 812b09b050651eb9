package augment

import "unicode/utf8"

// trie maps dictionary keys, rune by rune, to their synonyms.
type trie struct {
	children map[rune]*trie
	syns     []string // non-nil at the end of a key
	wordy    bool     // the key ends in an ASCII letter or digit
}

func newTrie() *trie { return &trie{} }

func (t *trie) insert(word string, syns []string) {
	n := t
	for _, r := range word {
		if n.children == nil {
			n.children = map[rune]*trie{}
		}
		c := n.children[r]
		if c == nil {
			c = &trie{}
			n.children[r] = c
		}
		n = c
	}
	last, _ := utf8.DecodeLastRuneInString(word)
	n.syns, n.wordy = syns, isWordRune(last)
}

func isWordRune(r rune) bool {
	return r < utf8.RuneSelf && ('a' <= r|0x20 && r|0x20 <= 'z' || '0' <= r && r <= '9' || r == '_')
}

// longest returns the byte length and synonyms of the longest key that
// starts at s[i:] and respects word boundaries, or 0.
func (t *trie) longest(s string, i int) (int, []string) {
	first, _ := utf8.DecodeRuneInString(s[i:])
	if isWordRune(first) && i > 0 {
		prev, _ := utf8.DecodeLastRuneInString(s[:i])
		if isWordRune(prev) {
			return 0, nil
		}
	}
	best, bestSyns := 0, []string(nil)
	n := t
	for j := i; j < len(s); {
		r, size := utf8.DecodeRuneInString(s[j:])
		n = n.children[r]
		if n == nil {
			break
		}
		j += size
		if n.syns != nil {
			if n.wordy && j < len(s) {
				next, _ := utf8.DecodeRuneInString(s[j:])
				if isWordRune(next) {
					continue
				}
			}
			best, bestSyns = j-i, n.syns
		}
	}
	return best, bestSyns
}
