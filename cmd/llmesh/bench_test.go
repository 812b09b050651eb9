package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/llmesh/llmesh/services/dataprep/democorpus"
)

// writeCorpora writes tiny stand-ins for the shared corpora into a folder.
func writeCorpora(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"cn-law.jsonl.gz", "en-legal.jsonl.gz"} {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(democorpus.Bytes(7, 40))
		zw.Close()
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBenchTokenizerJSON(t *testing.T) {
	prev := trainChildCommand
	trainChildCommand = func() func(context.Context, string, int) *exec.Cmd { return nil }
	t.Cleanup(func() { trainChildCommand = prev })

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bench", "tokenizer", "--json", "--mb", "0.05", "--vocab", "600", "--data", writeCorpora(t)}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rep struct {
		Area    string `json:"area"`
		Machine struct {
			CPU      string   `json:"cpu"`
			Cores    int      `json:"cores"`
			Features []string `json:"features"`
		} `json:"machine"`
		Results []map[string]any `json:"results"`
	}
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("output is not the benchmark JSON: %v", err)
	}
	if rep.Area != "tokenizer" || rep.Machine.Cores < 1 || rep.Machine.CPU == "" || rep.Machine.Features == nil {
		t.Errorf("area %q, machine %+v", rep.Area, rep.Machine)
	}
	if len(rep.Results) != 6 {
		t.Fatalf("%d results, want 6 (2 encodings × 2, train seconds, train RSS)", len(rep.Results))
	}
	for _, r := range rep.Results {
		for _, k := range []string{"name", "unit", "value", "partner", "partner_value", "ratio"} {
			if _, ok := r[k]; !ok {
				t.Errorf("result %v lacks %q", r["name"], k)
			}
		}
		if r["partner_value"] == nil && r["note"] == nil {
			t.Errorf("result %v: partner_value null without a note", r["name"])
		}
	}
}

func TestBenchUsage(t *testing.T) {
	tests := map[string][]string{
		"no area":      {"bench"},
		"unknown area": {"bench", "kernels-xyz"},
		"bad only":     {"bench", "tokenizer", "--only", "decode"},
		"extra arg":    {"bench", "tokenizer", "x"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2 (usage); stderr %s", code, stderr.String())
			}
		})
	}
}
