package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchKernelsJSON runs a tiny `bench kernels` and checks the
// DESIGN.md shape: every result named, OpenBLAS and oneDNN either
// measured (a value and a ratio) or null with a note saying why.
func TestBenchKernelsJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "kernels", "--json", "--sizes", "48", "--threads", "1", "--lowp-size", "40",
		"--min-time", "1ms", "--rounds", "1"}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rep struct {
		Area    string `json:"area"`
		Results []map[string]any
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if rep.Area != "kernels" {
		t.Fatalf("area %q", rep.Area)
	}
	want := []string{"sgemm/n=48/threads=1", "sgemm/n=48/threads=1/vs-gonum", "int8/n=40/threads=1",
		"int8/n=40/threads=1/vs-onednn", "bf16/n=40/threads=1"}
	if len(rep.Results) != len(want) {
		t.Fatalf("%d results, want %d: %s", len(rep.Results), len(want), stdout.String())
	}
	for i, r := range rep.Results {
		if r["name"] != want[i] {
			t.Fatalf("result %d is %v, want %s", i, r["name"], want[i])
		}
		if v, _ := r["value"].(float64); !(v > 0) {
			t.Fatalf("%s: value %v", want[i], r["value"])
		}
		if _, ok := r["partner_value"]; !ok {
			t.Fatalf("%s: no partner_value", want[i])
		}
		if r["partner_value"] == nil && r["note"] == nil {
			t.Fatalf("%s: partner %v missing without a note", want[i], r["partner"])
		}
		if r["partner_value"] != nil && r["ratio"] == nil {
			t.Fatalf("%s: partner measured but no ratio", want[i])
		}
	}
	if code := run(context.Background(), []string{"bench", "kernels", "--clock", "sundial"}, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), "sundial") {
		t.Fatalf("bad --clock accepted (exit %d): %s", code, stderr.String())
	}
}
