package corpus

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFindSharedData(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "shared", "data")
	deep := filepath.Join(root, "main", "a", "b")
	for _, d := range []string{data, deep} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if got := FindSharedData(deep); got != "" {
		t.Errorf("FindSharedData without corpora = %q, want \"\"", got)
	}
	if err := os.WriteFile(filepath.Join(data, "cn-law.jsonl.gz"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := FindSharedData(deep); got != "" {
		t.Errorf("FindSharedData with one corpus of two = %q, want \"\"", got)
	}
	if err := os.WriteFile(filepath.Join(data, "en-legal.jsonl.gz"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, start := range map[string]string{"below": deep, "at the root": root} {
		if got := FindSharedData(start); got != data {
			t.Errorf("FindSharedData from %s = %q, want %q", name, got, data)
		}
	}
}
