package quality

import (
	"bytes"
	"hash/maphash"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Rule names, in the order Check applies them: cheap document-level rules
// first, n-gram repetition last.
const (
	RuleMinChars      = "min_chars"
	RuleMaxChars      = "max_chars"
	RuleCJKOrLatin    = "cjk_or_latin_ratio"
	RuleSymbols       = "symbol_ratio"
	RuleBulletLines   = "bullet_lines"
	RuleEllipsisLines = "ellipsis_lines"
	RuleBoilerplate   = "boilerplate"
	RuleDupLines      = "dup_lines"
	RuleDupLineChars  = "dup_line_chars"
	RuleTop2Gram      = "top_2gram"
	RuleTop3Gram      = "top_3gram"
	RuleTop4Gram      = "top_4gram"
	RuleDup5Gram      = "dup_5gram"
	RuleDup6Gram      = "dup_6gram"
	RuleDup7Gram      = "dup_7gram"
	RuleDup8Gram      = "dup_8gram"
	RuleDup9Gram      = "dup_9gram"
	RuleDup10Gram     = "dup_10gram"
)

var rules = []string{
	RuleMinChars, RuleMaxChars, RuleCJKOrLatin, RuleSymbols, RuleBulletLines,
	RuleEllipsisLines, RuleBoilerplate, RuleDupLines, RuleDupLineChars,
	RuleTop2Gram, RuleTop3Gram, RuleTop4Gram,
	RuleDup5Gram, RuleDup6Gram, RuleDup7Gram, RuleDup8Gram, RuleDup9Gram, RuleDup10Gram,
}

// Rules returns the rule names in the order Check applies them.
func Rules() []string { return append([]string(nil), rules...) }

// Stats are the measures the rules compare with their thresholds.
type Stats struct {
	// Chars counts non-space runes.
	Chars int `json:"chars"`
	// Lines counts non-blank lines.
	Lines int `json:"lines"`
	// Words counts Latin words (letter and digit runs) plus CJK characters
	// (and kana), each one word.
	Words int `json:"words"`
	// CJKOrLatinRatio is the share of Chars that are CJK ideographs, kana
	// or Latin letters.
	CJKOrLatinRatio float64 `json:"cjk_or_latin_ratio"`
	// SymbolRatio is '#' (bar Markdown heading markers) and ellipses per
	// word.
	SymbolRatio      float64 `json:"symbol_ratio"`
	BulletLineFrac   float64 `json:"bullet_line_frac"`
	EllipsisLineFrac float64 `json:"ellipsis_line_frac"`
	BoilerplateFrac  float64 `json:"boilerplate_frac"`
	DupLineFrac      float64 `json:"dup_line_frac"`
	DupLineCharFrac  float64 `json:"dup_line_char_frac"`
	// TopNGramCharFrac[n-2] is, for n = 2, 3, 4, the share of word
	// characters covered by the occurrences of the n-gram that covers most.
	TopNGramCharFrac [3]float64 `json:"top_ngram_char_frac"`
	// DupNGramCharFrac[n-5] is, for n = 5..10, the share of word
	// characters covered by n-grams that occur more than once.
	DupNGramCharFrac [6]float64 `json:"dup_ngram_char_frac"`
}

// Filter applies a Config. It is safe for concurrent use; per-call scratch
// memory comes from a pool and is never kept past a call.
type Filter struct {
	cfg      Config
	patterns [][]byte // lower-cased ASCII
	boiler   *boilerplate
	seed     maphash.Seed
	pool     sync.Pool
}

// New validates cfg and returns its Filter.
func New(cfg Config) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &Filter{cfg: cfg, seed: maphash.MakeSeed()}
	for _, p := range cfg.BoilerplatePatterns {
		f.patterns = append(f.patterns, []byte(asciiLower(p)))
	}
	f.boiler = newBoilerplate(f.patterns)
	loadBMPClass()
	f.pool.New = func() any { return new(scratch) }
	return f, nil
}

// Config returns the filter's configuration.
func (f *Filter) Config() Config { return f.cfg }

// Check returns the name of the first rule text fails, in Rules order, or
// ok. text should be the normalized training text (normalize.Text); the
// n-gram rules run only when every cheaper rule passed.
func (f *Filter) Check(text string) (rule string, ok bool) {
	sc := f.pool.Get().(*scratch)
	defer f.pool.Put(sc)
	var st Stats
	f.scan(text, sc, &st)
	if r := f.cheap(&st); r != "" {
		return r, false
	}
	lim := ngramLimits{top: f.cfg.MaxTopNGramCharFrac, dup: f.cfg.MaxDupNGramCharFrac, check: true}
	if r := sc.ngrams(&lim, &st); r != "" {
		return r, false
	}
	return "", true
}

// Stats measures text for every rule, whatever the thresholds.
func (f *Filter) Stats(text string) Stats {
	sc := f.pool.Get().(*scratch)
	defer f.pool.Put(sc)
	var st Stats
	f.scan(text, sc, &st)
	sc.ngrams(&ngramLimits{}, &st)
	return st
}

// cheap applies the rules before the n-gram ones.
func (f *Filter) cheap(st *Stats) string {
	c := &f.cfg
	switch {
	case c.MinChars > 0 && st.Chars < c.MinChars:
		return RuleMinChars
	case c.MaxChars > 0 && st.Chars > c.MaxChars:
		return RuleMaxChars
	case c.MinCJKOrLatinRatio > 0 && st.CJKOrLatinRatio < c.MinCJKOrLatinRatio:
		return RuleCJKOrLatin
	case c.MaxSymbolRatio > 0 && st.SymbolRatio > c.MaxSymbolRatio:
		return RuleSymbols
	case c.MaxBulletLineFrac > 0 && st.BulletLineFrac > c.MaxBulletLineFrac:
		return RuleBulletLines
	case c.MaxEllipsisLineFrac > 0 && st.EllipsisLineFrac > c.MaxEllipsisLineFrac:
		return RuleEllipsisLines
	case c.MaxBoilerplateFrac > 0 && st.BoilerplateFrac > c.MaxBoilerplateFrac:
		return RuleBoilerplate
	case c.MaxDupLineFrac > 0 && st.DupLineFrac > c.MaxDupLineFrac:
		return RuleDupLines
	case c.MaxDupLineCharFrac > 0 && st.DupLineCharFrac > c.MaxDupLineCharFrac:
		return RuleDupLineChars
	}
	return ""
}

// scratch is the per-call working memory.
type scratch struct {
	lower []byte   // the current line, ASCII lower-cased
	toks  []uint64 // word hashes
	cum   []int32  // cum[i] = characters in words before word i
	lines table    // hashes of the lines seen
	// The n-gram sweep: the positions still counted, their grams' hashes,
	// a flag per position for grams that repeat, and the gram table.
	pos  []int32
	hs   []uint64
	flag []uint8
	gt   gramTable
	sink uint64 // keeps the slot touches of the n-gram sweep
	// maxLen[n-2] is the most characters in an n-gram, n = 2, 3, 4.
	maxLen [3]int32
}

// scan measures everything but the n-grams in one pass over text and
// collects the words for them.
func (f *Filter) scan(text string, sc *scratch, st *Stats) {
	sc.toks, sc.cum = sc.toks[:0], append(sc.cum[:0], 0)
	toks, cum := sc.toks, sc.cum
	var (
		chars, good, symbols            int
		lines, bullets, ellipses, boils int
		dupLines, dupChars              int
		wordHash                        uint64
		wordLen, nChars                 int32 // nChars: characters in words so far
	)
	bmp := bmpClass
	nLines := strings.Count(text, "\n") + 1
	sc.lines.reset(nLines)
	for len(text) > 0 {
		var line string
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			line, text = text, ""
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		lines++
		lineStart := chars
		body := line
		if line[0] == '#' { // a Markdown heading's markers are not symbols
			h := strings.TrimLeft(line, "#")
			if h == "" || h[0] == ' ' || h[0] == '\t' {
				body = h
			}
		}
		if isBullet(line) {
			bullets++
		}
		if strings.HasSuffix(line, "…") || strings.HasSuffix(line, "...") {
			ellipses++
		}
		dots := 0
		for i := 0; i < len(body); {
			c := body[i]
			if c < utf8.RuneSelf {
				i++
				switch {
				case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
					good++
					chars++
					wordHash = (wordHash ^ uint64(c|0x20)) * 0x100000001b3
					wordLen++
				case c >= '0' && c <= '9':
					chars++
					wordHash = (wordHash ^ uint64(c)) * 0x100000001b3
					wordLen++
				case c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f':
					if wordLen > 0 {
						nChars += wordLen
						toks, cum = append(toks, mix(wordHash)), append(cum, nChars)
						wordHash, wordLen = 0, 0
					}
				default:
					chars++
					if wordLen > 0 {
						nChars += wordLen
						toks, cum = append(toks, mix(wordHash)), append(cum, nChars)
						wordHash, wordLen = 0, 0
					}
					if c == '#' {
						symbols++
					} else if c == '.' {
						dots++
						continue
					}
				}
				if dots != 0 {
					if dots >= 3 {
						symbols++
					}
					dots = 0
				}
				continue
			}
			if dots != 0 {
				if dots >= 3 {
					symbols++
				}
				dots = 0
			}
			var r rune
			if c >= 0xE1 && c <= 0xEF && c != 0xED && i+2 < len(body) &&
				body[i+1]&0xC0 == 0x80 && body[i+2]&0xC0 == 0x80 { // a valid 3-byte sequence
				r = rune(c&0x0F)<<12 | rune(body[i+1]&0x3F)<<6 | rune(body[i+2]&0x3F)
				i += 3
			} else {
				var size int
				r, size = utf8.DecodeRuneInString(body[i:])
				i += size
			}
			var cls uint8
			if r < 1<<16 {
				cls = bmp[r]
			} else {
				cls = classify(r)
			}
			switch cls {
			case clsCJK:
				if wordLen > 0 {
					nChars += wordLen
					toks, cum = append(toks, mix(wordHash)), append(cum, nChars)
					wordHash, wordLen = 0, 0
				}
				chars++
				good++
				nChars++
				toks, cum = append(toks, mix(uint64(r)<<8|0x5A)), append(cum, nChars)
			case clsSpace:
				if wordLen > 0 {
					nChars += wordLen
					toks, cum = append(toks, mix(wordHash)), append(cum, nChars)
					wordHash, wordLen = 0, 0
				}
			case clsLatin, clsLetter:
				chars++
				if cls == clsLatin {
					good++
				}
				wordHash = (wordHash ^ uint64(unicode.ToLower(r))) * 0x100000001b3
				wordLen++
			default: // clsOther, clsEllipsis
				if wordLen > 0 {
					nChars += wordLen
					toks, cum = append(toks, mix(wordHash)), append(cum, nChars)
					wordHash, wordLen = 0, 0
				}
				chars++
				if cls == clsEllipsis {
					symbols++
				}
			}
		}
		if dots >= 3 {
			symbols++
		}
		if wordLen > 0 {
			nChars += wordLen
			toks, cum = append(toks, mix(wordHash)), append(cum, nChars)
			wordHash, wordLen = 0, 0
		}
		if f.boiler.fast {
			if f.boiler.match(body) {
				boils++
			}
		} else if f.slowBoilerplate(sc, body) {
			boils++
		}
		if !sc.lines.add(maphash.String(f.seed, line) | 1) {
			dupLines++
			dupChars += chars - lineStart
		}
	}
	sc.toks, sc.cum = toks, cum
	words := len(toks)
	st.Chars, st.Lines, st.Words = chars, lines, words
	st.CJKOrLatinRatio = ratio(good, chars)
	st.SymbolRatio = ratio(symbols, max(words, 1))
	st.BulletLineFrac = ratio(bullets, lines)
	st.EllipsisLineFrac = ratio(ellipses, lines)
	st.BoilerplateFrac = ratio(boils, lines)
	st.DupLineFrac = ratio(dupLines, lines)
	st.DupLineCharFrac = ratio(dupChars, chars)
}

// slowBoilerplate matches the patterns one by one against the lower-cased
// line, for pattern sets with a pattern under three bytes.
func (f *Filter) slowBoilerplate(sc *scratch, body string) bool {
	lower := sc.lower[:0]
	for i := 0; i < len(body); i++ {
		lower = append(lower, asciiFold[body[i]])
	}
	sc.lower = lower
	for _, p := range f.patterns {
		if bytes.Contains(lower, p) {
			return true
		}
	}
	return false
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// isCJK reports CJK ideographs (the unified blocks, extensions,
// compatibility ideographs) and kana: each is one word.
func isCJK(r rune) bool {
	switch {
	case r >= 0x4E00 && r <= 0x9FFF, r >= 0x3400 && r <= 0x4DBF:
		return true
	case r >= 0x3040 && r <= 0x30FF, r >= 0xF900 && r <= 0xFAFF:
		return true
	case r >= 0x20000 && r <= 0x3FFFF:
		return true
	}
	return false
}

var bulletRunes = "•●○■□◆◇▪►➢✓·-*"

func isBullet(line string) bool {
	r, size := utf8.DecodeRuneInString(line)
	if !strings.ContainsRune(bulletRunes, r) {
		return false
	}
	if r == '-' || r == '*' || r == '·' { // Markdown list items, not rules
		return size < len(line) && line[size] == ' '
	}
	return true
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c | 0x20
		}
	}
	return string(b)
}

// mix is the murmur3 finalizer: a cheap, well-spread 64-bit hash step.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x | 1 // 0 marks an empty table slot
}
