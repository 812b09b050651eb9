package filter

import (
	"bufio"
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/llmesh/llmesh/services/internal/pii"
)

// Action is what a category does with text that matches it.
type Action string

// The actions, weakest first.
const (
	Allow  Action = "allow"
	Redact Action = "redact"
	Block  Action = "block"
)

func (a Action) rank() int {
	switch a {
	case Redact:
		return 1
	case Block:
		return 2
	}
	return 0
}

// Limits on policies and inputs.
const (
	DefaultMaxInputBytes = 256 << 10
	MaxInputBytesLimit   = 8 << 20
	MaxPolicyBytes       = 4 << 20
	MaxPhrases           = 200_000
	MaxPhraseBytes       = 256
	MaxRegexes           = 256
	DefaultWindow        = 48
	MaxWindow            = 4096
)

// Policy is the filter configuration of one model (or the default), kept as
// JSON in the filter_policies KV bucket under the model's name ("default"
// for every model without its own). The KV revision is its version.
type Policy struct {
	// Required makes the filter mandatory for the model: when the filter
	// service cannot be reached the request fails (fail closed).
	Required bool `json:"required"`
	// Categories maps a category name to its action.
	Categories map[string]Category `json:"categories"`
	// Phrases are phrase lists matched on folded text.
	Phrases []PhraseList `json:"phrases,omitempty"`
	// Regexes are RE2 expressions matched on the raw text.
	Regexes []RegexRule `json:"regexes,omitempty"`
	// PII runs the shared personal-data detectors.
	PII *PIIRule `json:"pii,omitempty"`
	// Learned runs a trained classifier in the filter service.
	Learned *LearnedRule `json:"learned,omitempty"`
	// Window is how many characters of streamed output are held back so a
	// phrase or value that spans tokens is seen whole; 0 means
	// DefaultWindow.
	Window int `json:"window,omitempty"`
	// MaxInputBytes bounds one checked text; 0 means DefaultMaxInputBytes.
	MaxInputBytes int `json:"max_input_bytes,omitempty"`
}

// Category says what a category does.
type Category struct {
	Action Action `json:"action"`
}

// PhraseList is a list of phrases of one category: inline, or a built-in
// list by name (violence, illegal, hate, self_harm, sexual). A phrase
// ending in "*" matches any ending of its last word; other phrases that
// start or end with a Latin letter or digit match whole words only.
type PhraseList struct {
	Category string   `json:"category"`
	Name     string   `json:"name,omitempty"`
	Builtin  string   `json:"builtin,omitempty"`
	Phrases  []string `json:"phrases,omitempty"`
}

// RegexRule is one regular expression of a category.
type RegexRule struct {
	Category string `json:"category"`
	Name     string `json:"name"`
	Pattern  string `json:"pattern"`
}

// PIIRule selects personal-data types (empty: all) for a category.
type PIIRule struct {
	Category string     `json:"category"`
	Types    []pii.Type `json:"types,omitempty"`
}

// LearnedRule applies a classifier (a model in the registry trained by the
// trainer, see Classifier) to a category: text whose score reaches
// Threshold gets the category.
type LearnedRule struct {
	Category  string  `json:"category"`
	Model     string  `json:"model"`
	Threshold float64 `json:"threshold"`
}

// ErrBadPolicy: a policy did not parse or validate.
var ErrBadPolicy = errors.New("filter: bad policy")

//go:embed lists/*.txt
var listFS embed.FS

// Builtins names the built-in phrase lists.
func Builtins() []string {
	ents, _ := listFS.ReadDir("lists")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".txt"))
	}
	return out
}

// BuiltinPhrases returns the phrases of a built-in list as written (a
// trailing "*" marks a prefix phrase).
func BuiltinPhrases(name string) ([]string, error) { return builtin(name) }

// builtin reads a built-in list: one phrase a line, "#" comments.
func builtin(name string) ([]string, error) {
	data, err := listFS.ReadFile("lists/" + name + ".txt")
	if err != nil {
		return nil, fmt.Errorf("no built-in phrase list %q (have %v)", name, Builtins())
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

// DefaultPolicy is the policy of a model when the bucket has none: the
// built-in lists block, personal data is redacted, and the filter is not
// required (a mesh without a filter service still serves).
func DefaultPolicy() *Policy {
	p := &Policy{Categories: map[string]Category{"pii": {Redact}}}
	for _, b := range Builtins() {
		p.Categories[b] = Category{Block}
		p.Phrases = append(p.Phrases, PhraseList{Category: b, Builtin: b})
	}
	p.PII = &PIIRule{Category: "pii"}
	return p
}

// ParsePolicy decodes and validates a policy. Unknown fields, unknown
// categories, actions or PII types, regexes that do not compile and lists
// over the limits are errors wrapping ErrBadPolicy.
func ParsePolicy(data []byte) (*Policy, error) {
	if len(data) > MaxPolicyBytes {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrBadPolicy, len(data), MaxPolicyBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPolicy, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the policy object", ErrBadPolicy)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks a policy; Compile calls it.
func (p *Policy) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadPolicy, fmt.Sprintf(format, args...))
	}
	if len(p.Categories) == 0 {
		return bad("no categories")
	}
	for name, c := range p.Categories {
		if name == "" {
			return bad("a category has an empty name")
		}
		if !slices.Contains([]Action{Allow, Redact, Block}, c.Action) {
			return bad("category %q: action %q (want allow, redact or block)", name, c.Action)
		}
	}
	cat := func(what, name string) error {
		if _, ok := p.Categories[name]; !ok {
			return bad("%s: category %q is not declared", what, name)
		}
		return nil
	}
	n := 0
	for i, l := range p.Phrases {
		if err := cat(fmt.Sprintf("phrases[%d]", i), l.Category); err != nil {
			return err
		}
		if (l.Builtin == "") == (len(l.Phrases) == 0) {
			return bad("phrases[%d]: give either builtin or phrases", i)
		}
		if l.Builtin != "" {
			if _, err := builtin(l.Builtin); err != nil {
				return bad("phrases[%d]: %v", i, err)
			}
		}
		for j, ph := range l.Phrases {
			if len(ph) > MaxPhraseBytes {
				return bad("phrases[%d][%d]: %d bytes exceeds %d", i, j, len(ph), MaxPhraseBytes)
			}
			switch f := foldString(strings.TrimSuffix(ph, "*")); {
			case f == "":
				return bad("phrases[%d][%d] %q has no letter or digit", i, j, ph)
			case len(f) > MaxPhraseBytes:
				return bad("phrases[%d][%d]: folded to %d bytes, over %d", i, j, len(f), MaxPhraseBytes)
			}
		}
		n += len(l.Phrases)
	}
	if n > MaxPhrases {
		return bad("%d phrases exceed %d", n, MaxPhrases)
	}
	if len(p.Regexes) > MaxRegexes {
		return bad("%d regexes exceed %d", len(p.Regexes), MaxRegexes)
	}
	for i, r := range p.Regexes {
		if err := cat(fmt.Sprintf("regexes[%d]", i), r.Category); err != nil {
			return err
		}
		if r.Pattern == "" {
			return bad("regexes[%d] %q: empty pattern", i, r.Name)
		}
		re, err := regexp.Compile(r.Pattern)
		if err != nil {
			return bad("regexes[%d] %q: %v", i, r.Name, err)
		}
		if re.MatchString("") {
			return bad("regexes[%d] %q matches the empty string", i, r.Name)
		}
	}
	if p.PII != nil {
		if err := cat("pii", p.PII.Category); err != nil {
			return err
		}
		if _, err := pii.New(pii.Config{Types: p.PII.Types}); err != nil {
			return bad("pii: %v", err)
		}
	}
	if l := p.Learned; l != nil {
		if err := cat("learned", l.Category); err != nil {
			return err
		}
		if l.Model == "" {
			return bad("learned: no model")
		}
		if !(l.Threshold > 0 && l.Threshold < 1) {
			return bad("learned: threshold %g out of (0, 1)", l.Threshold)
		}
	}
	if p.Window < 0 || p.Window > MaxWindow {
		return bad("window %d out of [0, %d]", p.Window, MaxWindow)
	}
	if p.MaxInputBytes < 0 || p.MaxInputBytes > MaxInputBytesLimit {
		return bad("max_input_bytes %d out of [0, %d]", p.MaxInputBytes, MaxInputBytesLimit)
	}
	return nil
}
