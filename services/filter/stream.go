package filter

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrBlocked: a policy blocked the text. Errors of blocks are *BlockedError.
var ErrBlocked = errors.New("filter: blocked")

// BlockedError says which rule blocked a text, never the text itself.
type BlockedError struct {
	Direction string // "prompt" or "output"
	Category  string
	Stage     string
	Rule      string
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("filter: %s blocked: category %q (%s rule %q)", e.Direction, e.Category, e.Stage, e.Rule)
}

// Is makes a BlockedError match ErrBlocked.
func (e *BlockedError) Is(target error) bool { return target == ErrBlocked }

// ErrorCode is "blocked" (the inference service's error-chunk code).
func (e *BlockedError) ErrorCode() string { return "blocked" }

func blocked(direction string, f Finding) *BlockedError {
	return &BlockedError{Direction: direction, Category: f.Category, Stage: f.Stage, Rule: f.Rule}
}

// Stream checks generated text as it arrives, with the rule stages run
// locally: Push holds back the last Window characters (so a phrase or a
// personal value that spans pieces is seen whole before any of it is
// released), scans the new text together with up to contextBytes of what
// was released before it, and releases the rest, redacted. A block stops
// the stream: every later call returns the same error. A redaction that
// would reach into text already released blocks instead. Not safe for
// concurrent use.
type Stream struct {
	e       *Engine
	ctx     string // tail of the released text (as generated, not redacted)
	held    string
	total   int
	err     error
	observe func(Finding) // called for each block or redaction
}

// contextBytes is how much released text a stream rescans: enough for the
// longest phrase.
const contextBytes = MaxPhraseBytes

// NewStream starts the check of one output; observe (may be nil) sees each
// block or redaction finding, for audit.
func (e *Engine) NewStream(observe func(Finding)) *Stream {
	return &Stream{e: e, observe: observe}
}

// Push adds text and returns what may be released now.
func (s *Stream) Push(text string) (string, error) {
	return s.push(text, false)
}

// Close checks what is held back and returns it.
func (s *Stream) Close() (string, error) {
	return s.push("", true)
}

// Err is the error that stopped the stream, if any.
func (s *Stream) Err() error { return s.err }

func (s *Stream) push(text string, final bool) (string, error) {
	if s.err != nil {
		return "", s.err
	}
	s.total += len(text)
	if s.total > s.e.maxIn {
		s.err = fmt.Errorf("%w: output of %d bytes exceeds the limit of %d", ErrTooLarge, s.total, s.e.maxIn)
		return "", s.err
	}
	if !utf8.ValidString(text) {
		s.err = ErrInvalidUTF8
		return "", s.err
	}
	s.held += text
	all := s.ctx + s.held
	base := len(s.ctx)
	fs := s.e.Find(all, base)
	// The cut: release all but the last Window characters.
	cut := len(s.held)
	if !final {
		for n := 0; n < s.e.window && cut > 0; n++ {
			_, size := utf8.DecodeLastRuneInString(s.held[:cut])
			cut -= size
		}
	}
	var rel []Finding
	for _, f := range fs {
		switch f.Action {
		case Block:
			s.fail(f, "output")
			return "", s.err
		case Redact:
			if f.Start < base {
				s.fail(f, "output")
				return "", s.err
			}
			start, end := f.Start-base, f.End-base
			if start < cut && end > cut {
				cut = start // never release part of a value to redact
			}
		}
	}
	for _, f := range fs {
		if f.Action == Redact && f.End-base <= cut {
			f.Start, f.End = f.Start-base, f.End-base
			rel = append(rel, f)
			if s.observe != nil {
				s.observe(f)
			}
		}
	}
	out := s.held[:cut]
	if len(rel) > 0 {
		out = redact(out, rel)
	}
	released := s.ctx + s.held[:cut]
	s.held = s.held[cut:]
	if len(released) > contextBytes {
		k := len(released) - contextBytes
		for k < len(released) && !utf8.RuneStart(released[k]) {
			k++
		}
		released = released[k:]
	}
	s.ctx = released
	return out, nil
}

func (s *Stream) fail(f Finding, dir string) {
	if s.observe != nil {
		s.observe(f)
	}
	s.err = blocked(dir, f)
}
