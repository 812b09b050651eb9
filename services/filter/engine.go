package filter

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/llmesh/llmesh/services/internal/pii"
)

// Errors of a check.
var (
	// ErrTooLarge: the text exceeds the policy's input limit.
	ErrTooLarge = errors.New("filter: input too large")
	// ErrInvalidUTF8: the text is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("filter: input is not valid UTF-8")
)

// Stages name where a finding came from.
const (
	StagePhrase  = "phrase"
	StageRegex   = "regex"
	StagePII     = "pii"
	StageLearned = "learned"
)

// Finding is one rule that matched text[Start:End]. It never holds the
// matched text.
type Finding struct {
	Category string
	Stage    string
	Rule     string
	Action   Action
	Start    int
	End      int
	Score    float32
}

// Verdict is the result of a check.
type Verdict struct {
	// Action is the strongest action among the findings (Allow if none).
	Action Action
	// Text is the input with redacted spans replaced; "" when blocked.
	Text     string
	Findings []Finding
}

// Engine is a compiled policy: the rule stages, run in the caller's
// process. It is safe for concurrent use.
type Engine struct {
	policy  *Policy
	version uint64
	ac      *matcher
	phrases []phrase
	regexes []regexRule
	pii     *pii.Scanner
	maxIn   int
	window  int
}

type phrase struct {
	category string
	list     string
	action   Action
	// word says the phrase starts / ends with an ASCII letter or digit and
	// must sit on a word boundary there.
	wordStart, wordEnd bool
}

type regexRule struct {
	re       *regexp.Regexp
	name     string
	category string
	action   Action
}

// Compile validates p and builds its engine; version is the policy's KV
// revision (0 for a policy not from the bucket).
func Compile(p *Policy, version uint64) (*Engine, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{policy: p, version: version, maxIn: p.MaxInputBytes, window: p.Window}
	if e.maxIn == 0 {
		e.maxIn = DefaultMaxInputBytes
	}
	if e.window == 0 {
		e.window = DefaultWindow
	}
	var pats []string
	seen := map[string]int{}
	for _, l := range p.Phrases {
		list := l.Phrases
		name := l.Name
		if l.Builtin != "" {
			list, _ = builtin(l.Builtin)
			if name == "" {
				name = l.Builtin
			}
		}
		if name == "" {
			name = l.Category
		}
		for _, ph := range list {
			prefix := strings.HasSuffix(ph, "*")
			ph = strings.TrimSpace(strings.TrimSuffix(ph, "*"))
			f := foldString(ph)
			key := f + "\x00" + l.Category
			if _, dup := seen[key]; dup {
				continue
			}
			seen[key] = len(pats)
			pats = append(pats, f)
			e.phrases = append(e.phrases, phrase{
				category: l.Category, list: name, action: p.Categories[l.Category].Action,
				wordStart: asciiAlnum(f[0]), wordEnd: !prefix && asciiAlnum(f[len(f)-1]),
			})
		}
	}
	e.ac = newMatcher(pats)
	for _, r := range p.Regexes {
		e.regexes = append(e.regexes, regexRule{re: regexp.MustCompile(r.Pattern), name: r.Name, category: r.Category, action: p.Categories[r.Category].Action})
	}
	if p.PII != nil {
		s, err := pii.New(pii.Config{Types: p.PII.Types})
		if err != nil {
			return nil, fmt.Errorf("%w: pii: %v", ErrBadPolicy, err)
		}
		e.pii = s
	}
	return e, nil
}

// Policy is the policy the engine was compiled from; do not modify it.
func (e *Engine) Policy() *Policy { return e.policy }

// Version is the policy's KV revision.
func (e *Engine) Version() uint64 { return e.version }

// Required reports whether the policy requires the filter service.
func (e *Engine) Required() bool { return e.policy.Required }

// Window is how many characters a stream holds back.
func (e *Engine) Window() int { return e.window }

// MaxInputBytes is the largest text Check accepts.
func (e *Engine) MaxInputBytes() int { return e.maxIn }

func asciiAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// checkInput applies the input limits.
func (e *Engine) checkInput(text string) error {
	if len(text) > e.maxIn {
		return fmt.Errorf("%w: %d bytes exceeds the limit of %d", ErrTooLarge, len(text), e.maxIn)
	}
	if !utf8.ValidString(text) {
		return ErrInvalidUTF8
	}
	return nil
}

// Check runs the rule stages on text and applies the actions.
func (e *Engine) Check(text string) (Verdict, error) {
	if err := e.checkInput(text); err != nil {
		return Verdict{}, err
	}
	return e.verdict(text, e.Find(text, 0)), nil
}

// verdict applies findings to text.
func (e *Engine) verdict(text string, fs []Finding) Verdict {
	v := Verdict{Action: Allow, Text: text, Findings: fs}
	for _, f := range fs {
		if f.Action.rank() > v.Action.rank() {
			v.Action = f.Action
		}
	}
	switch v.Action {
	case Block:
		v.Text = ""
	case Redact:
		v.Text = redact(text, fs)
	}
	return v
}

// Find returns the findings of the rule stages whose span ends after byte
// from (earlier ones were reported before), in order of Start. Allow
// findings are included. Text must be valid UTF-8.
func (e *Engine) Find(text string, from int) []Finding {
	var out []Finding
	if len(e.phrases) > 0 {
		out = e.findPhrases(text, from, out)
	}
	for _, r := range e.regexes {
		for _, m := range r.re.FindAllStringIndex(text, -1) {
			if m[1] > from {
				out = append(out, Finding{Category: r.category, Stage: StageRegex, Rule: r.name, Action: r.action, Start: m[0], End: m[1]})
			}
		}
	}
	if e.pii != nil {
		c := e.policy.PII.Category
		a := e.policy.Categories[c].Action
		for _, m := range e.pii.Find(text) {
			if m.End > from {
				out = append(out, Finding{Category: c, Stage: StagePII, Rule: string(m.Type), Action: a, Start: m.Start, End: m.End})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Finding) int { return a.Start - b.Start })
	return out
}

// redact replaces the spans of redact findings with a placeholder: the PII
// type's (as "[EMAIL]") or the category's upper-cased name in brackets.
// Overlapping spans merge.
func redact(text string, fs []Finding) string {
	var b strings.Builder
	b.Grow(len(text))
	prev := 0
	for i := 0; i < len(fs); i++ {
		f := fs[i]
		if f.Action != Redact {
			continue
		}
		start, end := max(f.Start, prev), f.End
		if end <= prev {
			continue
		}
		if start == prev && prev > 0 && b.Len() > 0 && f.Start < prev {
			// Overlaps the previous placeholder: extend it silently.
			prev = end
			continue
		}
		b.WriteString(text[prev:start])
		b.WriteString(placeholder(f))
		prev = end
	}
	b.WriteString(text[prev:])
	return b.String()
}

func placeholder(f Finding) string {
	if f.Stage == StagePII {
		return pii.Placeholder(pii.Type(f.Rule))
	}
	return "[" + strings.ToUpper(f.Category) + "]"
}

// ringSize bounds the folded length of a phrase (a power of two, at least
// MaxPhraseBytes: folding never lengthens a phrase).
const ringSize = 256

// findPhrases folds text and runs the automaton in one pass: no folded
// copy is written, only the input offsets of the last ringSize folded
// bytes are kept, to map a match back to its span.
func (e *Engine) findPhrases(text string, from int, out []Finding) []Finding {
	m := e.ac
	trans, class, nclass := m.trans, &m.class, int32(m.nclass)
	var ring [ringSize]int32
	s := int32(0)
	n := 0
	var buf [utf8.UTFMax]byte
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			fc := asciiFold[c]
			if fc == 0 {
				i++
				continue
			}
			ring[n&(ringSize-1)] = int32(i)
			n++
			s = trans[s+int32(class[fc])]
			i++
			if s < 0 {
				s = -s - 1
				out = e.matched(text, from, m.out[s/nclass], &ring, n, i, out)
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		fr := foldRune(r)
		if fr < 0 {
			i += size
			continue
		}
		k := utf8.EncodeRune(buf[:], fr)
		for j := 0; j < k; j++ {
			ring[n&(ringSize-1)] = int32(i)
			n++
			s = trans[s+int32(class[buf[j]])]
			if s < 0 {
				s = -s - 1
				out = e.matched(text, from, m.out[s/nclass], &ring, n, i+size, out)
			}
		}
		i += size
	}
	return out
}

// matched records the phrases that end at folded byte n, input offset end.
func (e *Engine) matched(text string, from int, pats []int32, ring *[ringSize]int32, n, end int, out []Finding) []Finding {
	if end <= from {
		return out
	}
	for _, p := range pats {
		ph := &e.phrases[p]
		start := int(ring[(n-e.ac.lengths[p])&(ringSize-1)])
		if ph.wordStart && start > 0 && asciiAlnum(text[start-1]) {
			continue
		}
		if ph.wordEnd && end < len(text) && asciiAlnum(text[end]) {
			continue
		}
		out = append(out, Finding{Category: ph.category, Stage: StagePhrase, Rule: ph.list, Action: ph.action, Start: start, End: end})
	}
	return out
}
