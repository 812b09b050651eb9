package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/inference/servebench"
)

// buildPlugin builds the cpu plugin with the given build tag into dir.
func buildPlugin(t *testing.T, dir, tag string) string {
	t.Helper()
	out := filepath.Join(dir, "llmesh-plugin-cpu")
	cmd := exec.Command("go", "build", "-ldflags", "-X main.build="+tag, "-o", out, "../../plugins/cpu")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build the cpu plugin: %v\n%s", err, msg)
	}
	return out
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// The hot-swap test: the serving benchmark's clients keep the
// service saturated while a rebuilt cpu plugin binary replaces the one on
// disk and the model is swapped cpu → cpu onto it. No request may fail; the
// new process must run the rebuilt binary; latency is logged (p99 during
// the swap against the baseline), not asserted: CI machines are too noisy
// for timed assertions.
func TestHotSwapToRebuiltPluginUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin twice and runs load")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads the running binary from /proc")
	}
	pluginDir, next := t.TempDir(), t.TempDir()
	buildPlugin(t, pluginDir, "first")
	rebuilt := buildPlugin(t, next, "rebuilt")
	want := fileHash(t, rebuilt)
	if want == fileHash(t, filepath.Join(pluginDir, "llmesh-plugin-cpu")) {
		t.Fatal("the two builds are the same binary")
	}

	o := servebench.SwapOptions{
		Options: servebench.Options{Vocab: 300, Ctx: 64, Embd: 64, Layers: 2, Heads: 2,
			PromptTokens: 12, MaxTokens: 24, PluginDir: pluginDir},
		Clients: 16, Baseline: 2 * time.Second, After: time.Second,
		BeforeSwap: func() error {
			// What a deployment does: move the new build over the old
			// one (an atomic rename), then ask for the swap.
			return os.Rename(rebuilt, filepath.Join(pluginDir, "llmesh-plugin-cpu"))
		},
		AfterSwap: func(pid int) error {
			// The new process runs the rebuilt binary.
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/exe", pid))
			if err != nil {
				return err
			}
			if sha256.Sum256(b) != want {
				return fmt.Errorf("plugin pid %d does not run the rebuilt binary", pid)
			}
			return nil
		},
	}
	res, err := servebench.RunSwap(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("swap took %v; %d requests, %d failed; p50/p99 baseline %v/%v (%d), during %v/%v (%d, p99 %.2fx), after %v/%v (%d)",
		res.SwapTook.Round(time.Millisecond), res.Requests, res.Failed,
		res.Base.P50, res.Base.P99, res.Base.N, res.During.P50, res.During.P99, res.During.N,
		float64(res.During.P99)/float64(res.Base.P99), res.After.P50, res.After.P99, res.After.N)
	if res.Failed != 0 {
		t.Errorf("%d of %d requests failed during the swap: %v", res.Failed, res.Requests, res.Errors)
	}
	if res.NewPid == 0 || res.NewPid == res.OldPid {
		t.Fatalf("swap from pid %d to %d: want a new process", res.OldPid, res.NewPid)
	}
	if res.After.N == 0 {
		t.Error("no request completed after the swap")
	}
}
