package pii

import (
	"errors"
	"fmt"
	"strings"
)

// Type names a kind of personal data. Its value is the name used in configs
// and audit columns.
type Type string

// The detectable types.
const (
	Email      Type = "email"
	CNMobile   Type = "cn_mobile"
	CNLandline Type = "cn_landline"
	CNID       Type = "cn_id"
	BankCard   Type = "bank_card"
	Passport   Type = "passport"
	IPv4       Type = "ipv4"
	USSSN      Type = "us_ssn"
	USPhone    Type = "us_phone"
)

// kind is the dense index of a Type inside the scanner.
type kind uint8

const (
	kEmail kind = iota
	kCNMobile
	kCNLandline
	kCNID
	kBankCard
	kPassport
	kIPv4
	kUSSSN
	kUSPhone
	numKinds
)

var allTypes = [numKinds]Type{Email, CNMobile, CNLandline, CNID, BankCard, Passport, IPv4, USSSN, USPhone}

var placeholders [numKinds]string

func init() {
	for k, t := range allTypes {
		placeholders[k] = "[" + strings.ToUpper(string(t)) + "]"
	}
}

// ErrUnknownType is returned by New for a Config naming a type this package
// does not detect.
var ErrUnknownType = errors.New("pii: unknown type")

// Types returns every detectable type, in a fixed order.
func Types() []Type {
	out := make([]Type, numKinds)
	copy(out, allTypes[:])
	return out
}

func kindOf(t Type) (kind, bool) {
	for k, at := range allTypes {
		if at == t {
			return kind(k), true
		}
	}
	return 0, false
}

// Placeholder returns the text that Scrub puts in place of a match of type t:
// the upper-cased type in brackets, as in "[EMAIL]" and "[CN_ID]". An unknown
// type gets "[PII]".
func Placeholder(t Type) string {
	if k, ok := kindOf(t); ok {
		return placeholders[k]
	}
	return "[PII]"
}

// Match is one detected value: its type and its byte offsets [Start, End) in
// the scanned text. It never carries the value itself.
type Match struct {
	Type       Type
	Start, End int
}

// Config selects what a Scanner detects.
type Config struct {
	// Types to detect; nil or empty means all of Types().
	Types []Type
}

// Scanner finds personal data in text. It holds no per-call state and is
// safe for concurrent use.
type Scanner struct {
	on [numKinds]bool
	// digits is true when any type triggered by a digit run is on.
	digits bool
}

// New returns a Scanner for cfg, or an error wrapping ErrUnknownType.
func New(cfg Config) (*Scanner, error) {
	s := &Scanner{}
	if len(cfg.Types) == 0 {
		for k := range s.on {
			s.on[k] = true
		}
	}
	for _, t := range cfg.Types {
		k, ok := kindOf(t)
		if !ok {
			return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownType, t, allTypes)
		}
		s.on[k] = true
	}
	for k := kCNMobile; k < numKinds; k++ {
		s.digits = s.digits || s.on[k]
	}
	return s, nil
}

// Find returns the matches in text, non-overlapping and ordered by Start.
// Where candidates overlap, the longer one wins. Find returns nil when there
// is none. Text need not be valid UTF-8.
func (s *Scanner) Find(text string) []Match {
	return s.scan(text, nil)
}

// Scrub returns text with every match replaced by Placeholder(match.Type),
// and the matches, whose offsets point into the original text (not the
// scrubbed one), so an audit can record what kind of value was removed and
// where without keeping the value.
func (s *Scanner) Scrub(text string) (string, []Match) {
	ms := s.Find(text)
	if len(ms) == 0 {
		return text, nil
	}
	var b strings.Builder
	b.Grow(len(text))
	prev := 0
	for _, m := range ms {
		b.WriteString(text[prev:m.Start])
		b.WriteString(Placeholder(m.Type))
		prev = m.End
	}
	b.WriteString(text[prev:])
	return b.String(), ms
}
