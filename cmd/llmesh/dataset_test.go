package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadDatasetFolder(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("第一条 甲方"), 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "b.md"), []byte("# Title\nbody"), 0o644)
	os.WriteFile(filepath.Join(dir, "skip.bin"), []byte{0, 1}, 0o644)
	data, format, n, err := readDatasetPath(dir, "")
	if err != nil || format != "jsonl" || n != 2 {
		t.Fatalf("readDatasetPath = %q, %d, %v", format, n, err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var doc map[string]string
	if err := json.Unmarshal([]byte(lines[1]), &doc); err != nil || doc["id"] != "sub/b.md" || doc["text"] != "# Title\nbody" {
		t.Fatalf("second line = %s (%v)", lines[1], err)
	}
	os.WriteFile(filepath.Join(dir, "bad.txt"), []byte{0xff, 0xfe}, 0o644)
	if _, _, _, err := readDatasetPath(dir, ""); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("invalid UTF-8 file: %v", err)
	}
	if _, _, _, err := readDatasetPath(t.TempDir(), ""); err == nil {
		t.Fatal("empty folder accepted")
	}
}
