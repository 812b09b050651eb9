package label

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Abstain is the vote of a labeling function that does not apply.
const Abstain = -1

// Label names of the default configuration, in class-index order.
const (
	Contract   = "contract"
	Judgment   = "judgment"
	Statute    = "statute"
	Regulation = "regulation"
	Other      = "other"
)

// DefaultLabels are the document types of the default configuration.
var DefaultLabels = []string{Contract, Judgment, Statute, Regulation, Other}

// Kinds of labeling function.
const (
	KindKeywords      = "keywords"       // keyword counts over Field (default "text")
	KindTitleKeywords = "title_keywords" // keywords over the title
	KindRegex         = "regex"          // Go regexp over Field
	KindHeuristic     = "heuristic"      // a built-in rule, see Heuristics
)

// Built-in heuristics. Threshold is the parameter each one reads.
const (
	// HeuristicHasArticles: at least Threshold (default 3) lines start with
	// an article heading, 第…条 in Chinese or Arabic numerals.
	HeuristicHasArticles = "has_articles"
	// HeuristicHasChapters: at least Threshold (default 2) lines start with
	// a chapter heading 第…章.
	HeuristicHasChapters = "has_chapters"
	// HeuristicShortDoc: the text has fewer than Threshold (default 200)
	// characters.
	HeuristicShortDoc = "short_doc"
	// HeuristicCaseNumber: the first 1000 bytes carry a Chinese case
	// number such as （2022）粤0304民初28116号, or "Case No.".
	HeuristicCaseNumber = "case_number"
	// HeuristicLawTitle: the title, less a trailing parenthetical, ends in
	// 法 but not 办法, or names a 法修正案.
	HeuristicLawTitle = "law_title"
)

// Heuristics lists the built-in heuristics.
var Heuristics = []string{HeuristicHasArticles, HeuristicHasChapters, HeuristicShortDoc, HeuristicCaseNumber, HeuristicLawTitle}

// Fields a keyword or regex function reads.
const (
	FieldText  = "text"
	FieldTitle = "title"
)

// maxClasses bounds the label list: votes are stored as int8.
const maxClasses = 127

// Errors returned by ParseConfig and Validate; wrapped with the offending
// function's name and the detail.
var (
	ErrConfig           = errors.New("label: invalid config")
	ErrUnknownLabel     = fmt.Errorf("%w: unknown label", ErrConfig)
	ErrUnknownKind      = fmt.Errorf("%w: unknown kind", ErrConfig)
	ErrUnknownHeuristic = fmt.Errorf("%w: unknown heuristic", ErrConfig)
	ErrBadRegex         = fmt.Errorf("%w: bad regex", ErrConfig)
	ErrDuplicateName    = fmt.Errorf("%w: duplicate function name", ErrConfig)
)

// Config is a set of labeling functions over a list of labels.
type Config struct {
	// Labels are the classes; a vote is an index into Labels. Empty means
	// DefaultLabels.
	Labels []string `json:"labels,omitempty"`
	// Functions are the labeling functions, one column of the matrix each.
	Functions []FunctionSpec `json:"functions"`

	compiled *compiled
}

// FunctionSpec declares one labeling function.
type FunctionSpec struct {
	Name  string `json:"name"`
	Label string `json:"label"`
	Kind  string `json:"kind"`

	// Any: keywords whose occurrences (overlapping, summed over all Any
	// keywords) must number at least MinCount. All: keywords that must each
	// occur at least once. A keyword function needs Any or All or both.
	Any []string `json:"any,omitempty"`
	All []string `json:"all,omitempty"`
	// MinCount is the minimum number of Any occurrences for keyword
	// functions and of matches for regex functions; 0 means 1.
	MinCount int `json:"min_count,omitempty"`
	// IgnoreCase folds ASCII letters when matching keywords (use (?i) in
	// a pattern for regex functions).
	IgnoreCase bool `json:"ignore_case,omitempty"`
	// Field is what keywords and regex functions read: "text" (default)
	// or "title". title_keywords always reads the title.
	Field string `json:"field,omitempty"`

	// Pattern is the regexp of a regex function (Go RE2 syntax).
	Pattern string `json:"pattern,omitempty"`

	// Heuristic names a built-in rule; Threshold is its parameter (0 means
	// the rule's default).
	Heuristic string `json:"heuristic,omitempty"`
	Threshold int    `json:"threshold,omitempty"`
}

// ParseConfig decodes a JSON config strictly (unknown fields and trailing
// data are errors) and validates it.
func ParseConfig(data []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the config object", ErrConfig)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the config and compiles its matchers. Apply validates an
// unvalidated config itself; call Validate first when the config is shared
// between goroutines or may be invalid.
func (c *Config) Validate() error {
	labels := c.Labels
	if len(labels) == 0 {
		labels = DefaultLabels
	}
	if len(labels) > maxClasses {
		return fmt.Errorf("%w: %d labels exceed the limit of %d", ErrConfig, len(labels), maxClasses)
	}
	index := make(map[string]int, len(labels))
	for i, l := range labels {
		if l == "" {
			return fmt.Errorf("%w: label %d is empty", ErrConfig, i)
		}
		if _, dup := index[l]; dup {
			return fmt.Errorf("%w: label %q listed twice", ErrConfig, l)
		}
		index[l] = i
	}
	if len(c.Functions) == 0 {
		return fmt.Errorf("%w: no labeling functions", ErrConfig)
	}
	b := newCompiler()
	names := make(map[string]int, len(c.Functions))
	for i := range c.Functions {
		f := &c.Functions[i]
		if f.Name == "" {
			return fmt.Errorf("%w: function %d has no name", ErrConfig, i)
		}
		if j, dup := names[f.Name]; dup {
			return fmt.Errorf("%w: %q (functions %d and %d)", ErrDuplicateName, f.Name, j, i)
		}
		names[f.Name] = i
		cls, ok := index[f.Label]
		if !ok {
			return fmt.Errorf("%w: function %q votes %q, not one of %s", ErrUnknownLabel, f.Name, f.Label, strings.Join(labels, ", "))
		}
		if err := b.add(f, int8(cls)); err != nil {
			return fmt.Errorf("function %q: %w", f.Name, err)
		}
	}
	cc := b.build()
	cc.labels = append([]string(nil), labels...)
	c.compiled = cc
	return nil
}

// LabelNames returns the class names in class-index order: Labels, or
// DefaultLabels when Labels is empty.
func (c *Config) LabelNames() []string {
	if len(c.Labels) == 0 {
		return append([]string(nil), DefaultLabels...)
	}
	return append([]string(nil), c.Labels...)
}

// Names returns the function names in column order.
func (c *Config) Names() []string {
	names := make([]string, len(c.Functions))
	for i, f := range c.Functions {
		names[i] = f.Name
	}
	return names
}

func checkKeywords(kind string, words []string) error {
	for _, w := range words {
		if w == "" {
			return fmt.Errorf("%w: empty keyword in %s", ErrConfig, kind)
		}
		if !utf8.ValidString(w) {
			return fmt.Errorf("%w: keyword %q in %s is not valid UTF-8", ErrConfig, w, kind)
		}
	}
	return nil
}

// compileSpec checks the per-kind fields of f.
func checkSpec(f *FunctionSpec) error {
	if f.MinCount < 0 {
		return fmt.Errorf("%w: min_count %d below 0", ErrConfig, f.MinCount)
	}
	if f.Threshold < 0 {
		return fmt.Errorf("%w: threshold %d below 0", ErrConfig, f.Threshold)
	}
	switch f.Field {
	case "", FieldText, FieldTitle:
	default:
		return fmt.Errorf("%w: field %q (want %q or %q)", ErrConfig, f.Field, FieldText, FieldTitle)
	}
	switch f.Kind {
	case KindKeywords, KindTitleKeywords:
		if f.Kind == KindTitleKeywords && f.Field == FieldText {
			return fmt.Errorf("%w: title_keywords reads the title, not field %q", ErrConfig, f.Field)
		}
		if len(f.Any) == 0 && len(f.All) == 0 {
			return fmt.Errorf("%w: %s needs any or all keywords", ErrConfig, f.Kind)
		}
		if err := checkKeywords("any", f.Any); err != nil {
			return err
		}
		if err := checkKeywords("all", f.All); err != nil {
			return err
		}
		if f.Pattern != "" || f.Heuristic != "" || f.Threshold != 0 {
			return fmt.Errorf("%w: %s takes no pattern, heuristic or threshold", ErrConfig, f.Kind)
		}
	case KindRegex:
		if f.Pattern == "" {
			return fmt.Errorf("%w: regex needs a pattern", ErrConfig)
		}
		if len(f.Any) > 0 || len(f.All) > 0 || f.Heuristic != "" || f.IgnoreCase || f.Threshold != 0 {
			return fmt.Errorf("%w: regex takes only pattern, min_count and field (write (?i) for case folding)", ErrConfig)
		}
	case KindHeuristic:
		known := false
		for _, h := range Heuristics {
			known = known || h == f.Heuristic
		}
		if !known {
			return fmt.Errorf("%w: %q (want one of %s)", ErrUnknownHeuristic, f.Heuristic, strings.Join(Heuristics, ", "))
		}
		if len(f.Any) > 0 || len(f.All) > 0 || f.Pattern != "" || f.MinCount != 0 || f.Field != "" || f.IgnoreCase {
			return fmt.Errorf("%w: heuristic takes only heuristic and threshold", ErrConfig)
		}
	default:
		return fmt.Errorf("%w: %q (want %s, %s, %s or %s)", ErrUnknownKind, f.Kind, KindKeywords, KindTitleKeywords, KindRegex, KindHeuristic)
	}
	return nil
}

func compileRegex(pattern string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRegex, err)
	}
	return re, nil
}
