package accel_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
)

// syncBuffer is a log sink tests can read while plugins write to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// reexec launches this test binary as the plugin for role name.
func reexec(name string) (*exec.Cmd, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), testRoleEnv+"="+name)
	return cmd, nil
}

func newHost(t testing.TB, mod func(*accel.HostConfig)) (*accel.Host, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := accel.HostConfig{
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Command:        reexec,
		RestartBackoff: time.Millisecond,
		StartTimeout:   20 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := accel.NewHost(cfg)
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	t.Cleanup(func() {
		h.Close()
		if t.Failed() {
			t.Logf("host logs:\n%s", logs)
		}
	})
	return h, logs
}

func launch(t testing.TB, h *accel.Host, name string) *accel.Plugin {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p, err := h.Launch(ctx, name)
	if err != nil {
		t.Fatalf("Launch %q: %v", name, err)
	}
	return p
}

func loadTiny(t testing.TB, ctx context.Context, b accel.Backend, id, config string) {
	t.Helper()
	opt := accel.DefaultOptimizer()
	if _, err := b.LoadModel(ctx, accel.LoadRequest{ModelID: id, ConfigJSON: []byte(config), Seed: 1, Optimizer: &opt}); err != nil {
		t.Fatalf("LoadModel %q: %v", id, err)
	}
}

func TestLaunchInfo(t *testing.T) {
	h, _ := newHost(t, nil)
	p := launch(t, h, "tpu")
	info, err := p.Info(t.Context())
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Name != "tpu" || !info.Stub || info.Device != "none" || info.ProtocolVersion != accel.ProtocolVersion {
		t.Errorf("Info = %+v, want the tpu stub at protocol %d", info, accel.ProtocolVersion)
	}
	if p.Name() != "tpu" || p.Pid() <= 0 || p.Pid() == os.Getpid() || p.Restarts() != 0 {
		t.Errorf("Name %q Pid %d Restarts %d", p.Name(), p.Pid(), p.Restarts())
	}
}

func TestStubThroughProcess(t *testing.T) {
	h, _ := newHost(t, nil)
	p := launch(t, h, "tpu")
	_, err := p.LoadModel(t.Context(), accel.LoadRequest{ModelID: "m", ConfigJSON: []byte(acceltest.TinyConfigJSON)})
	if !errors.Is(err, accel.ErrNotImplemented) {
		t.Fatalf("LoadModel on tpu: err = %v, want ErrNotImplemented", err)
	}
	if want := "tpu backend: LoadModel not implemented: " + tpuReason; !strings.Contains(err.Error(), want) {
		t.Errorf("LoadModel on tpu: %q does not say %q", err, want)
	}
	if errors.Is(err, accel.ErrPluginDied) || p.Restarts() != 0 {
		t.Errorf("a stub's refusal was taken for a crash: %v, %d restarts", err, p.Restarts())
	}
	acceltest.Run(t, p, acceltest.Options{})
}

func TestConformanceThroughProcess(t *testing.T) {
	h, _ := newHost(t, nil)
	acceltest.Run(t, launch(t, h, "bigram"), acceltest.Options{Reference: acceltest.NewBigram(), Tolerance: 1e-6})
}

func TestLargeMessages(t *testing.T) {
	h, _ := newHost(t, nil)
	p := launch(t, h, "bigram")
	ctx := t.Context()
	// 1300 x 1300 float32 weights: 6.4 MiB each way, over grpc-go's 4 MiB default.
	const config = `{"vocab_size":1300,"n_ctx":8}`
	loadTiny(t, ctx, p, "big", config)
	saved, err := p.SaveWeights(ctx, accel.SaveRequest{ModelID: "big"})
	if err != nil {
		t.Fatalf("SaveWeights of a %d-byte model: %v", 1300*1300*4, err)
	}
	if len(saved.Safetensors) < 6<<20 {
		t.Fatalf("saved %d bytes, want over 6 MiB", len(saved.Safetensors))
	}
	opt := accel.DefaultOptimizer()
	if _, err := p.LoadModel(ctx, accel.LoadRequest{ModelID: "big2", ConfigJSON: saved.ConfigJSON, Weights: saved.Safetensors, Optimizer: &opt}); err != nil {
		t.Fatalf("LoadModel with %d bytes of weights: %v", len(saved.Safetensors), err)
	}
	seqs := [][]int32{{5, 1299}}
	a, err := p.DecodeStep(ctx, accel.DecodeRequest{ModelID: "big", Sequences: seqs})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.DecodeStep(ctx, accel.DecodeRequest{ModelID: "big2", Sequences: seqs})
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Logits[0] {
		if a.Logits[0][i] != b.Logits[0][i] {
			t.Fatalf("logit %d: %v after a round trip, was %v", i, b.Logits[0][i], a.Logits[0][i])
		}
	}
}

// within fails t when f takes longer than d: calls must never hang.
func within[T any](t *testing.T, d time.Duration, what string, f func() T) T {
	t.Helper()
	start := time.Now()
	v := f()
	if el := time.Since(start); el > d {
		t.Fatalf("%s took %v, want under %v", what, el, d)
	}
	return v
}

func kill9(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
}

func TestKillRestart(t *testing.T) {
	tests := map[string]struct {
		waitExited bool // let go-plugin notice the exit before the call
	}{
		"call sees a broken connection": {waitExited: false},
		"exited before the call":        {waitExited: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// The call finds the crash, not the health supervisor.
			h, logs := newHost(t, func(c *accel.HostConfig) { c.HealthInterval = -1 })
			p := launch(t, h, "bigram")
			ctx := t.Context()
			loadTiny(t, ctx, p, "m", acceltest.TinyConfigJSON)
			old := p.Pid()
			kill9(t, old)
			if tc.waitExited {
				deadline := time.Now().Add(5 * time.Second)
				for !p.ProcessExited() {
					if time.Now().After(deadline) {
						t.Fatal("go-plugin did not notice the exit within 5s")
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			err := within(t, 10*time.Second, "the call after kill -9", func() error {
				_, err := p.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", Sequences: [][]int32{{1}}})
				return err
			})
			if !errors.Is(err, accel.ErrPluginRestarted) || !errors.Is(err, accel.ErrPluginDied) {
				t.Fatalf("DecodeStep after kill -9: err = %v, want ErrPluginRestarted and ErrPluginDied", err)
			}
			if p.Restarts() != 1 || p.Pid() == old || p.Pid() <= 0 {
				t.Fatalf("after a restart: Restarts %d, Pid %d (was %d)", p.Restarts(), p.Pid(), old)
			}
			if !strings.Contains(logs.String(), "accelerator plugin died") {
				t.Errorf("the crash was not logged")
			}
			// The model died with the process; the new process works.
			_, err = p.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", Sequences: [][]int32{{1}}})
			if !errors.Is(err, accel.ErrUnknownModel) {
				t.Fatalf("DecodeStep on the new process before reloading: err = %v, want ErrUnknownModel", err)
			}
			loadTiny(t, ctx, p, "m", acceltest.TinyConfigJSON)
			if _, err := p.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", Sequences: [][]int32{{1}}}); err != nil {
				t.Fatalf("DecodeStep after reloading: %v", err)
			}
		})
	}
}

func TestKillDuringCall(t *testing.T) {
	h, _ := newHost(t, nil)
	p := launch(t, h, "bigram")
	pid := p.Pid()
	time.AfterFunc(100*time.Millisecond, func() { syscall.Kill(pid, syscall.SIGKILL) })
	err := within(t, 10*time.Second, "a call whose process was killed", func() error {
		_, err := p.Evaluate(t.Context(), accel.EvalRequest{ModelID: "block"})
		return err
	})
	if !errors.Is(err, accel.ErrPluginRestarted) {
		t.Fatalf("Evaluate in flight during kill -9: err = %v, want ErrPluginRestarted", err)
	}
}

func TestCrashReportsStderr(t *testing.T) {
	h, logs := newHost(t, nil)
	p := launch(t, h, "bigram")
	_, err := p.LoadModel(t.Context(), accel.LoadRequest{ModelID: "crash", ConfigJSON: []byte(acceltest.TinyConfigJSON)})
	if !errors.Is(err, accel.ErrPluginRestarted) {
		t.Fatalf("LoadModel that crashes the plugin: err = %v, want ErrPluginRestarted", err)
	}
	if !strings.Contains(logs.String(), "test plugin crashing on purpose") {
		t.Errorf("the crash log does not carry the plugin's last stderr lines:\n%s", logs)
	}
	if _, err := p.Evaluate(t.Context(), accel.EvalRequest{ModelID: "none", Batch: 1, SeqLen: 1, Inputs: []int32{1}, Targets: []int32{1}}); !errors.Is(err, accel.ErrUnknownModel) {
		t.Errorf("call on the restarted plugin: err = %v, want ErrUnknownModel", err)
	}
}

func TestMaxRestartsExhausted(t *testing.T) {
	h, _ := newHost(t, func(c *accel.HostConfig) { c.MaxRestarts = 1 })
	p := launch(t, h, "bigram")
	ctx := t.Context()
	call := func() error {
		return within(t, 10*time.Second, "a call on a killed plugin", func() error {
			_, err := p.SaveWeights(ctx, accel.SaveRequest{ModelID: "m"})
			return err
		})
	}
	kill9(t, p.Pid())
	if err := call(); !errors.Is(err, accel.ErrPluginRestarted) {
		t.Fatalf("first crash: err = %v, want ErrPluginRestarted", err)
	}
	kill9(t, p.Pid())
	err := call()
	if !errors.Is(err, accel.ErrPluginDied) || errors.Is(err, accel.ErrPluginRestarted) {
		t.Fatalf("second crash in a row with MaxRestarts 1: err = %v, want ErrPluginDied only", err)
	}
	if !strings.Contains(err.Error(), "giving up") {
		t.Errorf("error %q does not say the host gave up", err)
	}
	if err2 := call(); !errors.Is(err2, accel.ErrPluginDied) {
		t.Errorf("call after giving up: err = %v, want ErrPluginDied", err2)
	}
	if p.Pid() != 0 {
		t.Errorf("Pid after giving up = %d, want 0", p.Pid())
	}
}

func TestRestartCountResetsAfterSuccess(t *testing.T) {
	h, _ := newHost(t, func(c *accel.HostConfig) { c.MaxRestarts = 1 })
	p := launch(t, h, "bigram")
	ctx := t.Context()
	for i := range 3 {
		kill9(t, p.Pid())
		_, err := p.SaveWeights(ctx, accel.SaveRequest{ModelID: "m"})
		if !errors.Is(err, accel.ErrPluginRestarted) {
			t.Fatalf("crash %d: err = %v, want ErrPluginRestarted", i, err)
		}
		// A call the process answers (even with an error) resets the count.
		if _, err := p.SaveWeights(ctx, accel.SaveRequest{ModelID: "m"}); !errors.Is(err, accel.ErrUnknownModel) {
			t.Fatalf("after crash %d: err = %v, want ErrUnknownModel", i, err)
		}
	}
}

func TestCallerCancelIsNotACrash(t *testing.T) {
	h, _ := newHost(t, nil)
	p := launch(t, h, "bigram")
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	err := within(t, 5*time.Second, "a cancelled call", func() error {
		_, err := p.Evaluate(ctx, accel.EvalRequest{ModelID: "block"})
		return err
	})
	if !errors.Is(err, context.Canceled) || errors.Is(err, accel.ErrPluginDied) {
		t.Fatalf("cancelled Evaluate: err = %v, want context.Canceled, not ErrPluginDied", err)
	}
	if p.Restarts() != 0 {
		t.Fatalf("a cancelled call restarted the plugin")
	}
	loadTiny(t, t.Context(), p, "m", acceltest.TinyConfigJSON)
}

func TestNotAPlugin(t *testing.T) {
	tests := map[string]struct {
		cmd     func() *exec.Cmd
		timeout time.Duration
		want    string
	}{
		"exits at once":    {func() *exec.Cmd { return exec.Command("/bin/true") }, 20 * time.Second, "/bin/true"},
		"never handshakes": {func() *exec.Cmd { return exec.Command("/bin/sleep", "60") }, 500 * time.Millisecond, "/bin/sleep"},
		"prints garbage":   {func() *exec.Cmd { return exec.Command("/bin/echo", "hello") }, 20 * time.Second, "/bin/echo"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h, _ := newHost(t, func(c *accel.HostConfig) {
				c.StartTimeout = tc.timeout
				c.Command = func(string) (*exec.Cmd, error) { return tc.cmd(), nil }
			})
			err := within(t, tc.timeout+5*time.Second, "launching a non-plugin", func() error {
				_, err := h.Launch(t.Context(), "fake")
				return err
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"fake"`) {
				t.Fatalf("Launch of a non-plugin: err = %v, want it to name %q and the backend", err, tc.want)
			}
		})
	}
}

func TestProtocolVersionMismatch(t *testing.T) {
	for _, role := range []string{"badversion", "badinfo"} {
		t.Run(role, func(t *testing.T) {
			h, _ := newHost(t, nil)
			_, err := h.Launch(t.Context(), role)
			if !errors.Is(err, accel.ErrIncompatiblePlugin) {
				t.Fatalf("Launch of a plugin at another protocol version: err = %v, want ErrIncompatiblePlugin", err)
			}
			if !strings.Contains(err.Error(), "version") {
				t.Errorf("error %q does not mention the version", err)
			}
		})
	}
}

func TestDiscovery(t *testing.T) {
	dir := t.TempDir()
	// A discovered plugin: a script that re-execs this test binary.
	script := fmt.Sprintf("#!/bin/sh\nexec %q \"$@\"\n", os.Args[0])
	if err := os.WriteFile(filepath.Join(dir, accel.BinaryPrefix+"tpu"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, accel.BinaryPrefix+"noexec"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	h, _ := newHost(t, func(c *accel.HostConfig) {
		c.Command = nil
		c.PluginDir = dir
		c.Env = []string{testRoleEnv + "=tpu"}
	})
	path, err := h.Resolve("tpu")
	if err != nil || path != filepath.Join(dir, accel.BinaryPrefix+"tpu") {
		t.Fatalf("Resolve(tpu) = %q, %v", path, err)
	}
	p := launch(t, h, "tpu")
	if info, _ := p.Info(t.Context()); info.Name != "tpu" {
		t.Fatalf("discovered plugin Info = %+v", info)
	}
	for _, name := range []string{"noexec", "missing"} {
		_, err := h.Launch(t.Context(), name)
		if !errors.Is(err, accel.ErrPluginNotFound) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "$PATH") {
			t.Errorf("Launch(%q): err = %v, want ErrPluginNotFound naming %s and $PATH", name, err, dir)
		}
	}
	if _, err := h.Resolve("../etc"); !errors.Is(err, accel.ErrInvalidArgument) {
		t.Errorf("Resolve(../etc): err = %v, want ErrInvalidArgument", err)
	}
}

func TestHostConfigValidate(t *testing.T) {
	tests := map[string]accel.HostConfig{
		"bad name":         {Plugins: map[string]string{"Bad/Name": "/bin/x"}},
		"empty path":       {Plugins: map[string]string{"cpu": ""}},
		"missing dir":      {PluginDir: "/nonexistent/llmesh"},
		"negative backoff": {RestartBackoff: -time.Second},
		"bad env":          {Env: []string{"NOEQUALS"}},
		"short checksum":   {Checksums: map[string]string{"cpu": "abcd"}},
		"non-hex checksum": {Checksums: map[string]string{"cpu": strings.Repeat("zz", 32)}},
		"checksum name":    {Checksums: map[string]string{"../cpu": strings.Repeat("ab", 32)}},
		"health timeout":   {HealthTimeout: -time.Second},
		"health failures":  {HealthFailures: -1},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if err := cfg.Validate(); !errors.Is(err, accel.ErrInvalidArgument) {
				t.Fatalf("Validate: err = %v, want ErrInvalidArgument", err)
			}
		})
	}
	var ok accel.HostConfig
	if err := ok.Validate(); err != nil {
		t.Fatalf("zero HostConfig: %v", err)
	}
}

func TestCloseStopsPlugins(t *testing.T) {
	h, _ := newHost(t, nil)
	p := launch(t, h, "tpu")
	q := launch(t, h, "bigram")
	pids := []int{p.Pid(), q.Pid()}
	h.Close()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			// Reaped by go-plugin's Wait, so the pid must be gone.
			t.Errorf("process %d still runs after Host.Close", pid)
		}
	}
	if _, err := p.Info(t.Context()); !errors.Is(err, accel.ErrClosed) {
		t.Errorf("Info after Close: err = %v, want ErrClosed", err)
	}
	if _, err := h.Launch(t.Context(), "tpu"); !errors.Is(err, accel.ErrClosed) {
		t.Errorf("Launch after Close: err = %v, want ErrClosed", err)
	}
}

func TestRoundTripLatency(t *testing.T) {
	h, _ := newHost(t, nil)
	p := launch(t, h, "bigram")
	ctx := t.Context()
	loadTiny(t, ctx, p, "m", acceltest.TinyConfigJSON)
	req := accel.DecodeRequest{ModelID: "m", Sequences: [][]int32{{1, 2}}}
	const n = 300
	for range 20 {
		if _, err := p.DecodeStep(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for range n {
		if _, err := p.DecodeStep(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("DecodeStep round trip through the plugin process (tiny model, 32 logits): %v per call", time.Since(start)/n)
}

func BenchmarkRoundTrip(b *testing.B) {
	h, err := accel.NewHost(accel.HostConfig{Command: reexec})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	p, err := h.Launch(b.Context(), "bigram")
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	opt := accel.DefaultOptimizer()
	if _, err := p.LoadModel(ctx, accel.LoadRequest{ModelID: "m", ConfigJSON: []byte(acceltest.TinyConfigJSON), Optimizer: &opt}); err != nil {
		b.Fatal(err)
	}
	req := accel.DecodeRequest{ModelID: "m", Sequences: [][]int32{{1, 2}}}
	for b.Loop() {
		if _, err := p.DecodeStep(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
