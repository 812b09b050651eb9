package jobspec

import (
	"errors"
	"fmt"
	"testing"
)

type spec struct {
	Name  string `json:"name"`
	Steps int    `json:"steps"`
}

func (s *spec) Validate() error {
	if s.Steps < 0 {
		return fmt.Errorf("steps %d must not be negative", s.Steps)
	}
	if s.Steps == 0 {
		s.Steps = 10
	}
	return nil
}

func TestDecode(t *testing.T) {
	var s spec
	if err := Decode("train", []byte(`{"name":"m"}`), &s); err != nil {
		t.Fatal(err)
	}
	if s.Steps != 10 || s.Name != "m" {
		t.Fatalf("got %+v", s)
	}
	tests := map[string]string{
		"unknown field": `{"nme":"m"}`,
		"not object":    `[1,2]`,
		"trailing":      `{"name":"m"} {}`,
		"invalid":       `{"steps":-1}`,
		"truncated":     `{"name":`,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			var s spec
			if err := Decode("train", []byte(in), &s); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Decode(%s) = %v, want ErrInvalid", in, err)
			}
		})
	}
}
