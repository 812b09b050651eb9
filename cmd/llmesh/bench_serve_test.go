package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Out-of-range flags of bench serve fail before anything starts, naming
// the flag and its range.
func TestBenchServeBadFlags(t *testing.T) {
	for name, args := range map[string][]string{
		"decode steps": {"--decode-steps", "65"},
		"negative":     {"--decode-steps", "-1"},
		"clients":      {"--clients", "0"},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"bench", "serve", "--no-torch"}, args...), &stdout, &stderr)
			if code == 0 || !strings.Contains(stderr.String(), args[0]) {
				t.Errorf("exit %d, stderr %q: want a failure naming %s", code, stderr.String(), args[0])
			}
		})
	}
}
