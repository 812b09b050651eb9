package tokbench_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/llmesh/llmesh/services/dataprep/democorpus"
	"github.com/llmesh/llmesh/services/tokenizer/tokbench"
)

// The test binary doubles as the training child: with TOKBENCH_TRAIN_CHILD
// set to a text file it runs tokbench.TrainChild and exits.
func TestMain(m *testing.M) {
	if file := os.Getenv("TOKBENCH_TRAIN_CHILD"); file != "" {
		vocab, _ := strconv.Atoi(os.Getenv("TOKBENCH_VOCAB"))
		if err := tokbench.TrainChild(context.Background(), file, vocab, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func childCommand(ctx context.Context, file string, vocab int) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TOKBENCH_TRAIN_CHILD="+file, "TOKBENCH_VOCAB="+strconv.Itoa(vocab))
	return cmd
}

func demoTexts(n int) []string {
	var out []string
	for _, d := range democorpus.Generate(5, n) {
		out = append(out, d.Text)
	}
	return out
}

// TestRunSmall runs every measurement on 100 KB of the demo corpus with the
// HF partner made unreachable (a node binary that does not exist).
func TestRunSmall(t *testing.T) {
	results, err := tokbench.Run(context.Background(), tokbench.Options{
		Texts: demoTexts(80), TextNote: "demo", MB: 0.1, Vocab: 600,
		TrainCommand: childCommand, Node: "no-such-node-binary-llmesh",
	})
	if err != nil {
		t.Fatal(err)
	}
	var names, units []string
	for _, r := range results {
		names = append(names, r.Name)
		units = append(units, r.Unit)
		if r.Value <= 0 {
			t.Errorf("%s: value %g, want > 0", r.Name, r.Value)
		}
		if !strings.Contains(r.Note, "demo") {
			t.Errorf("%s: note %q lacks the text note", r.Name, r.Note)
		}
	}
	wantNames := []string{
		"encode/cl100k_base/threads=1", "encode-batch/cl100k_base/threads=" + strconv.Itoa(runtime.GOMAXPROCS(0)),
		"encode/r50k_base/threads=1", "encode-batch/r50k_base/threads=" + strconv.Itoa(runtime.GOMAXPROCS(0)),
		"train/vocab=600/mb=0.1", "train-peak-rss/vocab=600/mb=0.1",
	}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"MB/s", "MB/s", "MB/s", "MB/s", "s", "MB"}, units); diff != "" {
		t.Errorf("units (-want +got):\n%s", diff)
	}
	for _, r := range results[:4] {
		if r.PartnerValue == nil || r.Ratio == nil || *r.Ratio <= 0 {
			t.Errorf("%s: tiktoken-go partner missing: %+v", r.Name, r)
		}
		if strings.Contains(r.Note, "differ") {
			t.Errorf("%s: %s", r.Name, r.Note)
		}
	}
	for _, r := range results[4:] {
		if r.PartnerValue != nil || r.Ratio != nil || !strings.Contains(r.Note, "node not found") {
			t.Errorf("%s: want a null partner with a node note, got %+v", r.Name, r)
		}
		j, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(j, &m); err != nil {
			t.Fatal(err)
		}
		if v, ok := m["partner_value"]; !ok || v != nil {
			t.Errorf("%s JSON %s: want \"partner_value\": null", r.Name, j)
		}
	}
}

func TestResultJSON(t *testing.T) {
	two, half := 2.0, 0.5
	tests := map[string]struct {
		r    tokbench.Result
		want string
	}{
		"no partner": {
			tokbench.Result{Name: "x", Unit: "s", Value: 1},
			`{"name":"x","unit":"s","value":1}`,
		},
		"partner": {
			tokbench.Result{Name: "x", Unit: "MB/s", Value: 1, Partner: "p", PartnerValue: &two, Ratio: &half},
			`{"name":"x","unit":"MB/s","value":1,"partner":"p","partner_value":2,"ratio":0.5}`,
		},
		"partner missing": {
			tokbench.Result{Name: "x", Unit: "s", Value: 1, Partner: "p", Note: "node not found"},
			`{"name":"x","unit":"s","value":1,"partner":"p","partner_value":null,"ratio":null,"note":"node not found"}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := json.Marshal(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	tests := map[string]struct {
		opts tokbench.Options
		want string
	}{
		"no text":    {tokbench.Options{}, "no texts and no data folder"},
		"vocab":      {tokbench.Options{Texts: demoTexts(2), Vocab: 100}, "vocab 100 is below the minimum of 512"},
		"size":       {tokbench.Options{Texts: demoTexts(2), MB: 5000}, "text size 5000 MB is outside 0..1024"},
		"empty":      {tokbench.Options{Texts: []string{""}}, "no text to measure"},
		"bad folder": {tokbench.Options{DataDir: t.TempDir()}, "corpus"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := tokbench.Run(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestFindDataDir(t *testing.T) {
	root := t.TempDir()
	data := root + "/shared/data"
	deep := root + "/main/a/b"
	for _, d := range []string{data, deep} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if got := tokbench.FindDataDir(deep); got != "" {
		t.Errorf("FindDataDir without corpora = %q, want \"\"", got)
	}
	for _, c := range tokbench.Corpora {
		if err := os.WriteFile(data+"/"+c, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := tokbench.FindDataDir(deep); got != data {
		t.Errorf("FindDataDir = %q, want %q", got, data)
	}
}
