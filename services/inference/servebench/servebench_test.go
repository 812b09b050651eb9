package servebench

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/llmesh/llmesh/accel/acceltest"
	"github.com/llmesh/llmesh/services/inference/inferencetest"
)

// TestMain doubles as the cpu plugin the benchmark's host launches.
func TestMain(m *testing.M) {
	inferencetest.ServeIfReexec()
	os.Exit(m.Run())
}

// A small run has every result in DESIGN.md's shape, batching on and off
// as partners, and a PyTorch partner reported missing with a reason.
func TestRunSmall(t *testing.T) {
	o := Options{Vocab: 512, Ctx: 64, Embd: 32, Layers: 1, Heads: 2, Clients: []int{1, 4}, PromptTokens: 8, MaxTokens: 8,
		Requests: 4, Rounds: 1, PluginCommand: acceltest.Reexec, Torch: "no/such/decode.py", DecodeSteps: 3}
	results, err := Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range results {
		names = append(names, r.Name)
		if r.Value <= 0 {
			t.Errorf("%s: value %g", r.Name, r.Value)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		switch {
		case r.Name == "serve/single-stream":
			if m["partner"] != "pytorch" || m["partner_value"] != nil || !strings.Contains(r.Note, "not found") {
				t.Errorf("single stream: %s, want a missing PyTorch partner with a reason", b)
			}
		case m["partner"] != "batching off" || m["ratio"] == nil:
			t.Errorf("%s: want batching off as the partner with a ratio", b)
		}
	}
	want := "serve/clients=1/throughput serve/clients=1/latency-p50 serve/clients=1/latency-p99 " +
		"serve/clients=4/throughput serve/clients=4/latency-p50 serve/clients=4/latency-p99 serve/single-stream"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("results %s, want %s", got, want)
	}
}
