package inference

import (
	"context"
	"errors"
	"fmt"
)

// Filter checks prompts and streamed output; *filter.Client implements it.
//
// The filter service and this one never import each other, so the stream
// type is an alias of an interface literal: any package can return the
// identical literal from OpenStream and so implement Filter without naming
// this package.
type Filter interface {
	// CheckPrompt returns the prompt to run (redacted if the policy says so) or an error
	// (blocked: a clear error with code "blocked"; filter required but down: "unavailable").
	CheckPrompt(ctx context.Context, model, prompt string) (string, error)
	// OpenStream starts the output check of one generation.
	OpenStream(ctx context.Context, model string) (FilterStream, error)
}

// FilterStream checks the output of one generation.
type FilterStream = interface {
	// Push adds generated text; it returns the text now safe to release (it may hold
	// some back to look across a window, or redact) or an error when the output is blocked
	// or the filter is required and unreachable.
	Push(text string) (release string, err error)
	// Close ends the output and returns what was still held back.
	Close() (release string, err error)
}

// A filter's errors say what happened through an ErrorCode method
// ("blocked", "unavailable", ...), which becomes the error chunk's code.
// An error without one is reported as "unavailable" when it comes from the
// filter: the service fails closed.
type codedError interface{ ErrorCode() string }

// filterError marks an error that came from the filter.
type filterError struct{ err error }

func (e *filterError) Error() string { return e.err.Error() }
func (e *filterError) Unwrap() error { return e.err }

// ErrorCode is the filter's own code, or "unavailable" when it gave none.
func (e *filterError) ErrorCode() string {
	var c codedError
	if errors.As(e.err, &c) && c.ErrorCode() != "" {
		return c.ErrorCode()
	}
	return "unavailable"
}

func wrapFilter(model, what string, err error) error {
	return &filterError{fmt.Errorf("model %q: filter %s: %w", model, what, err)}
}

// outputFilter passes emitted text through a FilterStream: only what the
// stream releases reaches the client. Without a filter it passes text on.
type outputFilter struct {
	model  string
	stream FilterStream
}

func (s *Service) openFilter(ctx context.Context, model, prompt string) (string, *outputFilter, error) {
	if s.filter == nil {
		return prompt, &outputFilter{model: model}, nil
	}
	p, err := s.filter.CheckPrompt(ctx, model, prompt)
	if err != nil {
		return "", nil, wrapFilter(model, "prompt", err)
	}
	st, err := s.filter.OpenStream(ctx, model)
	if err != nil {
		return "", nil, wrapFilter(model, "open stream", err)
	}
	if st == nil {
		return "", nil, wrapFilter(model, "open stream", errors.New("no stream"))
	}
	return p, &outputFilter{model: model, stream: st}, nil
}

// push returns the text to release now.
func (f *outputFilter) push(text string) (string, error) {
	if f.stream == nil {
		return text, nil
	}
	r, err := f.stream.Push(text)
	if err != nil {
		return r, wrapFilter(f.model, "output", err)
	}
	return r, nil
}

// close returns the text still held back.
func (f *outputFilter) close() (string, error) {
	if f.stream == nil {
		return "", nil
	}
	r, err := f.stream.Close()
	if err != nil {
		return r, wrapFilter(f.model, "output", err)
	}
	return r, nil
}
