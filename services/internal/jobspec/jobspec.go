// Package jobspec decodes the JSON specs that jobs carry, the same way in
// every service: strictly (an unknown field is an error, so a typo never
// silently falls back to a default) and followed by the spec's own checks.
package jobspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrInvalid is wrapped by every error about a job spec.
var ErrInvalid = errors.New("invalid job spec")

// Validator is a spec that checks itself after decoding (and may fill in
// defaults).
type Validator interface {
	Validate() error
}

// Decode decodes data into v strictly and validates it.
func Decode(kind string, data []byte, v Validator) error {
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, kind, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: %s: trailing data after the spec object", ErrInvalid, kind)
	}
	if err := v.Validate(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, kind, err)
	}
	return nil
}
