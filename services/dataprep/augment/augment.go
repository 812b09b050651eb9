package augment

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"unicode/utf8"
)

// ErrConfig is returned, wrapped, for an invalid Config.
var ErrConfig = errors.New("augment: invalid config")

// Config sets the rates of each operation. The zero Config is the
// identity.
type Config struct {
	// SynonymRate is the probability that each dictionary match is
	// replaced by one of its synonyms, chosen uniformly.
	SynonymRate float64 `json:"synonym_rate"`
	// DeleteRate is the probability that a span of 1..MaxSpan characters
	// is deleted from each sentence (never its closing punctuation, and at
	// least one character of the sentence stays).
	DeleteRate float64 `json:"delete_rate"`
	// SwapRate is the probability that each sentence of a paragraph of two
	// or more sentences is swapped with another sentence of the paragraph.
	SwapRate float64 `json:"swap_rate"`
	// MaxSpan is the longest deleted span in characters (runes); required
	// when DeleteRate > 0.
	MaxSpan int `json:"max_span"`
	// Dictionary maps a word to its synonyms; required when SynonymRate >
	// 0. Replacement is one-way: list both directions for symmetry.
	Dictionary map[string][]string `json:"dictionary,omitempty"`
	// Seed, with the document id, fixes every random choice.
	Seed uint64 `json:"seed"`
}

// Validate checks rates, span and dictionary.
func (c *Config) Validate() error {
	for _, r := range []struct {
		name string
		v    float64
	}{{"synonym_rate", c.SynonymRate}, {"delete_rate", c.DeleteRate}, {"swap_rate", c.SwapRate}} {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			return fmt.Errorf("%w: %s %v outside [0, 1]", ErrConfig, r.name, r.v)
		}
	}
	if c.MaxSpan < 0 {
		return fmt.Errorf("%w: max_span %d below 0", ErrConfig, c.MaxSpan)
	}
	if c.DeleteRate > 0 && c.MaxSpan < 1 {
		return fmt.Errorf("%w: delete_rate %v needs max_span of at least 1", ErrConfig, c.DeleteRate)
	}
	if c.SynonymRate > 0 && len(c.Dictionary) == 0 {
		return fmt.Errorf("%w: synonym_rate %v needs a dictionary", ErrConfig, c.SynonymRate)
	}
	return checkDictionary(c.Dictionary)
}

func checkDictionary(d map[string][]string) error {
	for w, syns := range d {
		if w == "" || !utf8.ValidString(w) {
			return fmt.Errorf("%w: dictionary word %q is empty or not valid UTF-8", ErrConfig, w)
		}
		if len(syns) == 0 {
			return fmt.Errorf("%w: dictionary word %q has no synonyms", ErrConfig, w)
		}
		for _, s := range syns {
			if !utf8.ValidString(s) {
				return fmt.Errorf("%w: synonym %q of %q is not valid UTF-8", ErrConfig, s, w)
			}
		}
	}
	return nil
}

// Augmenter applies a Config. It is immutable and safe for concurrent use.
type Augmenter struct {
	cfg  Config
	trie *trie
}

// New validates cfg and builds an Augmenter. The dictionary is copied.
func New(cfg Config) (*Augmenter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Augmenter{cfg: cfg, trie: newTrie()}
	a.cfg.Dictionary = make(map[string][]string, len(cfg.Dictionary))
	for w, syns := range cfg.Dictionary {
		syns = append([]string(nil), syns...)
		a.cfg.Dictionary[w] = syns
		a.trie.insert(w, syns)
	}
	return a, nil
}

// Stats counts what one Apply did.
type Stats struct {
	Paragraphs   int `json:"paragraphs"`
	Sentences    int `json:"sentences"`
	Matches      int `json:"matches"`      // dictionary matches seen
	Replacements int `json:"replacements"` // matches replaced
	Deletions    int `json:"deletions"`    // spans deleted
	DeletedRunes int `json:"deleted_runes"`
	Swaps        int `json:"swaps"` // sentence swaps
}

// Apply returns the augmented text of document docID.
func (a *Augmenter) Apply(docID, text string) string {
	out, _ := a.ApplyStats(docID, text)
	return out
}

// ApplyStats is Apply that also reports what it did.
func (a *Augmenter) ApplyStats(docID, text string) (string, Stats) {
	text = strings.ToValidUTF8(text, "\uFFFD")
	var st Stats
	c := &a.cfg
	if c.SynonymRate == 0 && c.DeleteRate == 0 && c.SwapRate == 0 {
		return text, st
	}
	h := fnv.New64a()
	h.Write([]byte(docID))
	r := rand.New(rand.NewPCG(c.Seed, h.Sum64()))

	var b strings.Builder
	b.Grow(len(text))
	first := true
	for para := range strings.SplitSeq(text, "\n") {
		if !first {
			b.WriteByte('\n')
		}
		first = false
		st.Paragraphs++
		sents := splitSentences(para)
		st.Sentences += len(sents)
		for i := range sents {
			s := &sents[i]
			if c.SynonymRate > 0 {
				s.body = a.replaceSynonyms(s.body, r, &st)
			}
			if c.DeleteRate > 0 && r.Float64() < c.DeleteRate {
				s.body = deleteSpan(s.body, c.MaxSpan, r, &st)
			}
		}
		if c.SwapRate > 0 && len(sents) > 1 {
			for i := range sents {
				if r.Float64() < c.SwapRate {
					j := r.IntN(len(sents) - 1)
					if j >= i {
						j++
					}
					sents[i].body, sents[j].body = sents[j].body, sents[i].body
					sents[i].end, sents[j].end = sents[j].end, sents[i].end
					st.Swaps++
				}
			}
		}
		for _, s := range sents {
			b.WriteString(s.lead)
			b.WriteString(s.body)
			b.WriteString(s.end)
		}
	}
	return b.String(), st
}

// sentence is leading blanks, the words, and the closing punctuation (""
// for a paragraph's unterminated tail). Swaps move body and end together
// and leave the blanks where they were.
type sentence struct{ lead, body, end string }

func isCJKStop(r rune) bool   { return r == '。' || r == '！' || r == '？' || r == '；' }
func isASCIIStop(r rune) bool { return r == '.' || r == '!' || r == '?' || r == ';' }
func isBlank(r rune) bool     { return r == ' ' || r == '\t' || r == '\r' || r == '\u3000' }

func splitSentences(para string) []sentence {
	var out []sentence
	i := 0
	for i < len(para) {
		start := i
		for i < len(para) {
			r, n := utf8.DecodeRuneInString(para[i:])
			if !isBlank(r) {
				break
			}
			i += n
		}
		lead := para[start:i]
		bodyStart := i
		bodyEnd, end := -1, -1
		for i < len(para) {
			r, n := utf8.DecodeRuneInString(para[i:])
			if isCJKStop(r) || isASCIIStop(r) {
				// A run of stops; ASCII-only runs must be followed by a
				// blank or the end to count.
				j, cjk := i, false
				for j < len(para) {
					r2, n2 := utf8.DecodeRuneInString(para[j:])
					if !isCJKStop(r2) && !isASCIIStop(r2) {
						break
					}
					cjk = cjk || isCJKStop(r2)
					j += n2
				}
				next, _ := utf8.DecodeRuneInString(para[j:])
				if cjk || j == len(para) || isBlank(next) {
					bodyEnd, end = i, j
					i = j
					break
				}
				i = j
				continue
			}
			i += n
		}
		if bodyEnd < 0 {
			bodyEnd, end = len(para), len(para)
		}
		if bodyStart == len(para) && lead != "" {
			// Trailing blanks: keep them as an empty sentence.
			out = append(out, sentence{lead: lead})
			break
		}
		out = append(out, sentence{lead: lead, body: para[bodyStart:bodyEnd], end: para[bodyEnd:end]})
	}
	return out
}

// deleteSpan removes 1..maxSpan runes from body, always keeping at least
// one, so no sentence disappears.
func deleteSpan(body string, maxSpan int, r *rand.Rand, st *Stats) string {
	n := utf8.RuneCountInString(body)
	if n < 2 {
		return body
	}
	span := min(1+r.IntN(maxSpan), n-1)
	start := r.IntN(n - span + 1)
	// Convert rune offsets to byte offsets.
	bs, be, k := len(body), len(body), 0
	for off := range body {
		if k == start {
			bs = off
		}
		if k == start+span {
			be = off
			break
		}
		k++
	}
	st.Deletions++
	st.DeletedRunes += span
	return body[:bs] + body[be:]
}

// replaceSynonyms walks s, replacing each longest dictionary match with a
// synonym at SynonymRate.
func (a *Augmenter) replaceSynonyms(s string, r *rand.Rand, st *Stats) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		n, syns := a.trie.longest(s, i)
		if n == 0 {
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
			continue
		}
		st.Matches++
		if r.Float64() < a.cfg.SynonymRate {
			b.WriteString(s[last:i])
			b.WriteString(syns[r.IntN(len(syns))])
			last = i + n
			st.Replacements++
		}
		i += n
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}
