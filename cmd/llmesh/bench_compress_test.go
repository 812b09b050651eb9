package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/bus/bustest"
	"github.com/llmesh/llmesh/bus/tensor"
)

// tinyCompress are bench compress flags that run in seconds.
var tinyCompress = []string{"--documents", "60", "--vocab", "300", "--ctx", "16", "--embd", "32", "--layers", "1", "--heads", "2",
	"--student-embd", "16", "--student-layers", "1", "--steps", "20", "--batch", "4", "--qat-steps", "4", "--distill-steps", "10",
	"--prune-steps", "4", "--eval-batches", "1", "--decode-tokens", "4", "--prompt-tokens", "4", "--rounds", "1"}

func useTestPlugins(t *testing.T) {
	prev := compressPluginCommand
	compressPluginCommand = func(string) func(string) (*exec.Cmd, error) { return testPluginCommand }
	t.Cleanup(func() { compressPluginCommand = prev })
}

// TestBenchCompressJSON runs the whole area at a tiny size through the
// services of an embedded stack and checks the report's shape: every line
// has its partner from the same run and says its target.
func TestBenchCompressJSON(t *testing.T) {
	useTestPlugins(t)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append([]string{"bench", "compress", "--json"}, tinyCompress...), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rep struct {
		Area    string          `json:"area"`
		Machine json.RawMessage `json:"machine"`
		Results []struct {
			Name         string   `json:"name"`
			Unit         string   `json:"unit"`
			Value        float64  `json:"value"`
			Partner      string   `json:"partner"`
			PartnerValue *float64 `json:"partner_value"`
			Ratio        *float64 `json:"ratio"`
			Note         string   `json:"note"`
		} `json:"results"`
	}
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("output is not the benchmark JSON: %v", err)
	}
	want := []string{"size/int8", "decode/int8/batch=1", "decode/int8/batch=8", "perplexity/ptq-int8", "perplexity/qat-int8",
		"perplexity/ptq-w8a8", "distill/student-vs-scratch", "distill/student-vs-teacher", "prune/magnitude-50%"}
	if rep.Area != "compress" || len(rep.Results) != len(want) {
		t.Fatalf("area %q, %d results, want %d", rep.Area, len(rep.Results), len(want))
	}
	for i, r := range rep.Results {
		if r.Name != want[i] || r.Partner == "" || r.PartnerValue == nil || *r.PartnerValue <= 0 || r.Ratio == nil || !(r.Value > 0) {
			t.Errorf("result %d: %+v", i, r)
		}
		if r.Name != "perplexity/ptq-w8a8" && !strings.Contains(r.Note, "target ") {
			t.Errorf("%s: note %q names no target", r.Name, r.Note)
		}
	}
	// The INT8 file is several times smaller even at this size.
	if r := rep.Results[0]; *r.Ratio < 2.5 {
		t.Errorf("size ratio %.2f", *r.Ratio)
	}
}

// TestCompressCommands runs llmesh quantize, distill and prune against a
// running stack, and a bad input through each.
func TestCompressCommands(t *testing.T) {
	ctx := context.Background()
	st, err := startStack(ctx, stackConfig{DataDir: t.TempDir(), NATSHost: "127.0.0.1", NATSPort: -1,
		Services: []string{"trainer", "quantizer", "distiller"}, Logger: discardLogger(), PluginCommand: testPluginCommand})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	url := st.server.ClientURL()
	ref := tokenShard(t, st, 3000, 64)
	if _, _, err := awaitJob(ctx, st.bus, "train", map[string]any{"model": "tiny", "train_ref": ref, "val_ref": ref,
		"config": json.RawMessage(`{"vocab_size":64,"n_ctx":16,"n_embd":32,"n_layer":1,"n_head":2}`), "steps": 20, "batch": 4, "lr": 0.01, "seed": 1}, nil, st.Err()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"quantize", []string{"quantize", "--model", "tiny", "--spec", `{"eval_batches":1}`}, 0, "INT8 ("},
		{"quantize again", []string{"quantize", "--model", "tiny-int8"}, 1, "already quantized"},
		{"distill", []string{"distill", "--teacher", "tiny", "--student", `{"n_ctx":16,"n_embd":16,"n_layer":1,"n_head":2}`, "--steps", "5", "--baseline", "--spec", `{"eval_batches":1,"batch":4}`}, 0, "scratch"},
		{"distill vocab", []string{"distill", "--teacher", "tiny", "--student", `{"vocab_size":32,"n_ctx":16,"n_embd":16,"n_layer":1,"n_head":2}`}, 1, "vocabularies differ"},
		{"prune", []string{"prune", "--model", "tiny", "--steps", "3", "--spec", `{"eval_batches":1,"batch":4}`}, 0, "50.0% of"},
		{"prune bad", []string{"prune", "--model", "tiny", "--method", "random"}, 1, `method "random"`},
		{"usage", []string{"quantize"}, 2, "quantize --model M"},
		{"bad extra spec", []string{"prune", "--model", "tiny", "--spec", "[1]"}, 2, "--spec is not a JSON object"},
		{"quantize --json", []string{"quantize", "--model", "tiny", "--output", "tiny-q2", "--json", "--spec", `{"eval_batches":1}`}, 0, `"ratio":`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(ctx, append(tc.args, "--nats", url), &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.want) {
				t.Fatalf("exit %d, want %d with %q; stdout:\n%s\nstderr:\n%s", code, tc.code, tc.want, stdout.String(), stderr.String())
			}
		})
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// tokenShard stores n tokens of a learnable pattern below vocab.
func tokenShard(t *testing.T, st *stack, n, vocab int) string {
	t.Helper()
	ids := make([]uint16, n)
	for i := range ids {
		ids[i] = uint16((i%7)*3%vocab + (i/7)%2)
	}
	payload, err := tensor.Encode([]tensor.Tensor{tensor.FromUint16("tokens", []int{n}, ids)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.bus.PutBytes(t.Context(), payload)
	if err != nil {
		t.Fatal(err)
	}
	return info.Ref
}

// A gzipped JSONL corpus given to bench compress --input is registered,
// decompressed, as a dataset; a corrupt one is a clear error.
func TestBenchInputGzip(t *testing.T) {
	b := bustest.New(t)
	dir := t.TempDir()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	plain := "{\"text\": \"第一条 为了规范民事活动\"}\n{\"text\": \"Article 2. Scope.\"}\n"
	zw.Write([]byte(plain))
	zw.Close()
	path := filepath.Join(dir, "law.jsonl.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := putBenchInput(t.Context(), b, path, dir, "bench-input"); err != nil {
		t.Fatal(err)
	}
	rec, err := b.GetDataset(t.Context(), "bench-input")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Format != "jsonl" || rec.Size != int64(len(plain)) {
		t.Errorf("dataset %+v, want the %d decompressed bytes as jsonl", rec, len(plain))
	}
	bad := filepath.Join(dir, "bad.jsonl.gz")
	if err := os.WriteFile(bad, []byte("not gzip"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := putBenchInput(t.Context(), b, bad, dir, "bench-bad"); err == nil || !strings.Contains(err.Error(), "bad.jsonl.gz") {
		t.Errorf("corrupt gzip: %v, want an error naming the file", err)
	}
}
