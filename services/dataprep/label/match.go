package label

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// ahoCorasick is a byte-level Aho–Corasick automaton with its failure links
// folded into a dense transition table, so a scan is one table lookup per
// byte. Patterns are valid UTF-8, so a match always lies on rune boundaries.
type ahoCorasick struct {
	next [][256]int32
	out  [][]int32 // pattern ids that end in each state
	fold bool      // lower-case ASCII letters while scanning
}

func buildAhoCorasick(patterns []string, fold bool) *ahoCorasick {
	ac := &ahoCorasick{fold: fold}
	ac.next = append(ac.next, [256]int32{})
	ac.out = append(ac.out, nil)
	// Trie with -1 for "no child" (0 is the root, never a child).
	for i := range ac.next[0] {
		ac.next[0][i] = -1
	}
	for id, p := range patterns {
		s := int32(0)
		for i := 0; i < len(p); i++ {
			c := p[i]
			if ac.next[s][c] < 0 {
				var row [256]int32
				for k := range row {
					row[k] = -1
				}
				ac.next = append(ac.next, row)
				ac.out = append(ac.out, nil)
				ac.next[s][c] = int32(len(ac.next) - 1)
			}
			s = ac.next[s][c]
		}
		ac.out[s] = append(ac.out[s], int32(id))
	}
	fail := make([]int32, len(ac.next))
	queue := make([]int32, 0, len(ac.next))
	for c := range 256 {
		if t := ac.next[0][c]; t > 0 {
			fail[t] = 0
			queue = append(queue, t)
		} else {
			ac.next[0][c] = 0
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		ac.out[s] = append(ac.out[s], ac.out[fail[s]]...)
		for c := range 256 {
			t := ac.next[s][c]
			if t < 0 {
				ac.next[s][c] = ac.next[fail[s]][c]
				continue
			}
			fail[t] = ac.next[fail[s]][c]
			queue = append(queue, t)
		}
	}
	return ac
}

// count adds the number of (possibly overlapping) occurrences of each
// pattern in text to counts.
func (ac *ahoCorasick) count(text string, counts []int32) {
	s := int32(0)
	for i := 0; i < len(text); i++ {
		c := text[i]
		if ac.fold && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		s = ac.next[s][c]
		for _, id := range ac.out[s] {
			counts[id]++
		}
	}
}

func lowerASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// A matcher set is all keywords read from one field with one case rule.
type matcherKey struct {
	title bool
	fold  bool
}

type keywordSet struct {
	key   matcherKey
	words []string
	ids   map[string]int32
	ac    *ahoCorasick
}

type compiledFn struct {
	label int8
	kind  string
	title bool

	set      int     // index into compiled.sets for keyword kinds
	any, all []int32 // keyword ids within the set
	minCount int

	re *regexp.Regexp

	heuristic string
	threshold int
}

type compiled struct {
	labels []string
	sets   []*keywordSet
	fns    []compiledFn
}

type compiler struct {
	sets map[matcherKey]int
	c    *compiled
}

func newCompiler() *compiler {
	return &compiler{sets: map[matcherKey]int{}, c: &compiled{}}
}

func (b *compiler) keywordIDs(set *keywordSet, words []string) []int32 {
	ids := make([]int32, 0, len(words))
	for _, w := range words {
		if set.key.fold {
			w = lowerASCII(w)
		}
		id, ok := set.ids[w]
		if !ok {
			id = int32(len(set.words))
			set.ids[w] = id
			set.words = append(set.words, w)
		}
		ids = append(ids, id)
	}
	return ids
}

func (b *compiler) add(f *FunctionSpec, cls int8) error {
	if err := checkSpec(f); err != nil {
		return err
	}
	fn := compiledFn{label: cls, kind: f.Kind, title: f.Field == FieldTitle || f.Kind == KindTitleKeywords, minCount: max(f.MinCount, 1)}
	switch f.Kind {
	case KindKeywords, KindTitleKeywords:
		key := matcherKey{title: fn.title, fold: f.IgnoreCase}
		si, ok := b.sets[key]
		if !ok {
			si = len(b.c.sets)
			b.sets[key] = si
			b.c.sets = append(b.c.sets, &keywordSet{key: key, ids: map[string]int32{}})
		}
		set := b.c.sets[si]
		fn.set = si
		fn.any = b.keywordIDs(set, f.Any)
		fn.all = b.keywordIDs(set, f.All)
	case KindRegex:
		re, err := compileRegex(f.Pattern)
		if err != nil {
			return err
		}
		fn.re = re
	case KindHeuristic:
		fn.heuristic = f.Heuristic
		fn.threshold = f.Threshold
	}
	b.c.fns = append(b.c.fns, fn)
	return nil
}

func (b *compiler) build() *compiled {
	for _, s := range b.c.sets {
		s.ac = buildAhoCorasick(s.words, s.key.fold)
	}
	return b.c
}

// scratch is per-goroutine state for labeling documents.
type scratch struct {
	counts [][]int32 // per keyword set
}

func (c *compiled) newScratch() *scratch {
	s := &scratch{counts: make([][]int32, len(c.sets))}
	for i, set := range c.sets {
		s.counts[i] = make([]int32, len(set.words))
	}
	return s
}

// label writes one vote per function for doc into row.
func (c *compiled) label(doc *Doc, s *scratch, row []int8) {
	for i, set := range c.sets {
		counts := s.counts[i]
		clear(counts)
		if set.key.title {
			set.ac.count(doc.Title, counts)
		} else {
			set.ac.count(doc.Text, counts)
		}
	}
	for j := range c.fns {
		fn := &c.fns[j]
		if fn.fires(doc, s) {
			row[j] = fn.label
		} else {
			row[j] = Abstain
		}
	}
}

func (fn *compiledFn) fires(doc *Doc, s *scratch) bool {
	field := doc.Text
	if fn.title {
		field = doc.Title
	}
	switch fn.kind {
	case KindKeywords, KindTitleKeywords:
		counts := s.counts[fn.set]
		for _, id := range fn.all {
			if counts[id] == 0 {
				return false
			}
		}
		if len(fn.any) == 0 {
			return true
		}
		n := 0
		for _, id := range fn.any {
			n += int(counts[id])
		}
		return n >= fn.minCount
	case KindRegex:
		if fn.minCount == 1 {
			return fn.re.MatchString(field)
		}
		return len(fn.re.FindAllStringIndex(field, fn.minCount)) >= fn.minCount
	case KindHeuristic:
		return heuristic(fn.heuristic, fn.threshold, doc)
	}
	return false
}

func heuristic(name string, threshold int, doc *Doc) bool {
	switch name {
	case HeuristicHasArticles:
		t := orDefault(threshold, 3)
		return countHeadings(doc.Text, "条", t) >= t
	case HeuristicHasChapters:
		t := orDefault(threshold, 2)
		return countHeadings(doc.Text, "章", t) >= t
	case HeuristicShortDoc:
		limit := orDefault(threshold, 200)
		return len(doc.Text) < limit*utf8.UTFMax && utf8.RuneCountInString(doc.Text) < limit
	case HeuristicCaseNumber:
		head := doc.Text[:min(len(doc.Text), 1000)]
		return strings.Contains(head, "Case No.") || caseNumberRE.MatchString(head)
	case HeuristicLawTitle:
		return isLawTitle(doc.Title)
	}
	return false
}

var caseNumberRE = regexp.MustCompile(`[（(][12]\d{3}[）)][^\s（）()，。]{1,24}?\d+号`)

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// countHeadings counts lines that start, after blanks and Markdown '#'
// marks, with 第<numeral><unit>, stopping once it reaches limit.
func countHeadings(text, unit string, want int) int {
	n := 0
	for line := range strings.Lines(text) {
		line = strings.TrimLeft(line, " \t#　")
		rest, ok := strings.CutPrefix(line, "第")
		if !ok {
			continue
		}
		digits := 0
		for _, r := range rest {
			if !isNumeral(r) {
				break
			}
			digits += utf8.RuneLen(r)
		}
		if digits > 0 && strings.HasPrefix(rest[digits:], unit) {
			n++
			if n >= want {
				return n
			}
		}
	}
	return n
}

func isNumeral(r rune) bool {
	return ('0' <= r && r <= '9') || strings.ContainsRune("零〇一二三四五六七八九十百千两", r)
}

func isLawTitle(title string) bool {
	t := strings.TrimSpace(title)
	if strings.Contains(t, "法修正案") {
		return true
	}
	// Drop trailing parentheticals: （2018年修正）, (试行).
	for {
		if s, ok := strings.CutSuffix(t, "）"); ok {
			if i := strings.LastIndex(s, "（"); i >= 0 {
				t = strings.TrimSpace(s[:i])
				continue
			}
		}
		if s, ok := strings.CutSuffix(t, ")"); ok {
			if i := strings.LastIndex(s, "("); i >= 0 {
				t = strings.TrimSpace(s[:i])
				continue
			}
		}
		break
	}
	return strings.HasSuffix(t, "法") && !strings.HasSuffix(t, "办法")
}
