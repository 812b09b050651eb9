package inference

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// pluginCount is how many plugin processes the service holds.
func (e *env) pluginCount() int {
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	return len(e.s.plugins)
}

// waitExited waits until process pid is gone.
func waitExited(t *testing.T, pid int) {
	t.Helper()
	bustest.WaitFor(t, 10*time.Second, func() error {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("plugin process %d still runs", pid)
	})
}

func TestSwap(t *testing.T) {
	e := newEnv(t)
	e.register(t, "tiny", e.checkpoint(t, 1, 60))
	req := &busv1.GenerateRequest{Model: "tiny", Prompt: "the cat", MaxTokens: 12}
	want := e.mustGenerate(t, req).text
	first := e.status(t, "tiny").Pid
	ctx := t.Context()

	// cpu -> cpu over the bus: a fresh process serves the same weights.
	replies, err := e.b.SwapBackend(ctx, "tiny", "cpu")
	if err != nil {
		t.Fatalf("swap: %v (replies %v)", err, replies)
	}
	if len(replies) != 1 {
		t.Fatalf("%d swap replies, want 1: %v", len(replies), replies)
	}
	r := replies[0]
	if r.Instance != e.s.Instance() || r.OldBackend != "cpu" || r.Backend != "cpu" || int(r.OldPid) != first || r.Pid == 0 || int(r.Pid) == first {
		t.Errorf("swap reply %v, want cpu -> cpu from pid %d to a new pid", r, first)
	}
	waitExited(t, first)
	if got := e.mustGenerate(t, req).text; got != want {
		t.Errorf("after the swap: %q, want %q", got, want)
	}
	sts, err := e.b.InferenceStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 1 || len(sts[0].Models) != 1 || sts[0].Models[0].Pid != r.Pid || sts[0].Models[0].Backend != "cpu" || sts[0].Models[0].Checkpoint == "" {
		t.Errorf("status %v, want tiny on cpu pid %d", sts, r.Pid)
	}
	serving := int(r.Pid)

	// Swaps that fail leave the model where it was.
	fails := map[string]struct {
		model, backend string
		code, msg      string
	}{
		"backend that does not launch": {"tiny", "cuda", "internal", fmt.Sprintf("the model stays on cpu (pid %d)", serving)},
		"backend that cannot load":     {"tiny", "tpu", "unimplemented", "not implemented"},
		"unknown model":                {"nope", "cpu", "not_found", `model "nope": not found`},
		"invalid backend":              {"tiny", "CPU!", "invalid_argument", `backend "CPU!" must match`},
	}
	for name, tc := range fails {
		t.Run(name, func(t *testing.T) {
			replies, err := e.b.SwapBackend(ctx, tc.model, tc.backend)
			if err == nil || len(replies) != 1 || !strings.Contains(replies[0].Error, tc.msg) {
				t.Fatalf("swap %s to %s: %v, replies %v; want an error containing %q", tc.model, tc.backend, err, replies, tc.msg)
			}
			if code := replies[0].ErrorCode; code != tc.code {
				t.Errorf("error code %q, want %q", code, tc.code)
			}
			if st := e.status(t, "tiny"); st.Pid != serving || st.Backend != "cpu" {
				t.Errorf("after a failed swap tiny is on %s pid %d, want cpu pid %d", st.Backend, st.Pid, serving)
			}
			if n := e.pluginCount(); n != 1 {
				t.Errorf("%d plugins after a failed swap, want 1", n)
			}
			if got := e.mustGenerate(t, req).text; got != want {
				t.Errorf("after a failed swap: %q, want %q", got, want)
			}
		})
	}

	// A second model joins the newest cpu plugin; swapping tiny away keeps
	// that plugin for it, and swapping it after tiny closes the old one.
	e.register(t, "other", e.checkpoint(t, 2, 0))
	otherReq := &busv1.GenerateRequest{Model: "other", Prompt: "the dog", MaxTokens: 8}
	wantOther := e.mustGenerate(t, otherReq).text
	if st := e.status(t, "other"); st.Pid != serving {
		t.Fatalf("other is on pid %d, want the newest cpu plugin %d", st.Pid, serving)
	}
	res, err := e.s.Swap(ctx, "tiny", "cpu")
	if err != nil || !res.Drained || res.OldPid != serving || res.Pid == serving {
		t.Fatalf("swap tiny: %+v, %v", res, err)
	}
	if n := e.pluginCount(); n != 2 {
		t.Errorf("%d plugins with tiny and other on different ones, want 2", n)
	}
	if got := e.mustGenerate(t, otherReq).text; got != wantOther {
		t.Errorf("other after tiny was swapped away from its plugin: %q, want %q", got, wantOther)
	}
	res2, err := e.s.Swap(ctx, "other", "cpu")
	if err != nil || res2.Pid != res.Pid || res2.OldPid != serving {
		t.Fatalf("swap other: %+v, %v; want it on tiny's plugin %d", res2, err, res.Pid)
	}
	waitExited(t, serving)
	if n := e.pluginCount(); n != 1 {
		t.Errorf("%d plugins with both models on one, want 1", n)
	}
	if got := e.mustGenerate(t, req).text; got != want {
		t.Errorf("tiny at the end: %q, want %q", got, want)
	}
	if got := e.mustGenerate(t, otherReq).text; got != wantOther {
		t.Errorf("other at the end: %q, want %q", got, wantOther)
	}
}

// A plugin that stays dead fails requests with a retryable error once the
// retry window ends, not later and not with a hang.
func TestGeneratePluginGone(t *testing.T) {
	e := newEnvWith(t, accel.HostConfig{MaxRestarts: -1})
	e.register(t, "tiny", e.checkpoint(t, 1, 0))
	req := &busv1.GenerateRequest{Model: "tiny", Prompt: "the cat", MaxTokens: 4}
	e.mustGenerate(t, req)
	if err := syscall.Kill(e.status(t, "tiny").Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := e.generate(t, req)
	var ge *bus.GenerateError
	if !errors.As(err, &ge) || ge.Code != "unavailable" || !strings.Contains(ge.Message, "did not come back within") {
		t.Fatalf("generate on a dead plugin: %v, want an unavailable error saying it did not come back", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the error took %v, want within 1s", d)
	}
}

// outcome is one request of a load run.
type outcome struct {
	start, end time.Time
	err        error
}

// loadRun is clients sending requests in a loop until stopped.
type loadRun struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	out  []outcome
}

// startLoad runs clients that each send req, one after another, until
// stopLoad. Every request has 10 s to finish: one that takes longer hangs.
func (e *env) startLoad(clients int, req *busv1.GenerateRequest) *loadRun {
	l := &loadRun{stop: make(chan struct{})}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				start := time.Now()
				err := e.b.Generate(ctx, req, func(*busv1.GenerateChunk) error { return nil })
				cancel()
				l.mu.Lock()
				l.out = append(l.out, outcome{start, time.Now(), err})
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// stopLoad stops the clients and returns what their requests did; it fails
// the test when the clients do not finish within wait.
func (l *loadRun) stopLoad(t *testing.T, wait time.Duration) []outcome {
	t.Helper()
	close(l.stop)
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatalf("load clients did not finish within %v: a request hangs", wait)
	}
	return l.out
}

// The crash test: kill -9 of the backend 20 times under load. The
// service stays up, every request completes or fails with a retryable
// (unavailable) error within 1 s of a kill, and the backend is back within
// 5 s of each kill.
func TestCrashUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the plugin 20 times under load")
	}
	e := newEnv(t)
	e.register(t, "tiny", e.checkpoint(t, 1, 0))
	req := &busv1.GenerateRequest{Model: "tiny", Prompt: "the cat", MaxTokens: 8}
	e.mustGenerate(t, req)

	const kills, every = 20, 300 * time.Millisecond
	l := e.startLoad(4, req)
	var killed []time.Time
	var recoveries []time.Duration
	last := 0
	for i := range kills {
		var pid int
		bustest.WaitFor(t, 5*time.Second, func() error {
			if pid = e.status(t, "tiny").Pid; pid == 0 || pid == last {
				return fmt.Errorf("no new plugin process after kill %d (pid %d)", i, pid)
			}
			return nil
		})
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: plugin %d: %v", i+1, pid, err)
		}
		at := time.Now()
		killed, last = append(killed, at), pid
		// The backend is back when a request sent after the kill succeeds.
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := e.b.Generate(ctx, &busv1.GenerateRequest{Model: "tiny", Prompt: "a", MaxTokens: 1}, func(*busv1.GenerateChunk) error { return nil })
			cancel()
			if err == nil {
				break
			}
			if time.Since(at) > 5*time.Second {
				t.Fatalf("kill %d: backend not back within 5s: %v", i+1, err)
			}
		}
		recoveries = append(recoveries, time.Since(at))
		if d := every - time.Since(at); d > 0 {
			time.Sleep(d) // pace the kills
		}
	}
	results := l.stopLoad(t, 15*time.Second)

	completed, failed := 0, 0
	var worstErr time.Duration
	for _, r := range results {
		if r.err == nil {
			completed++
			continue
		}
		failed++
		var ge *bus.GenerateError
		if !errors.As(r.err, &ge) || ge.Code != "unavailable" {
			t.Errorf("request failed with a non-retryable error: %v", r.err)
			continue
		}
		// The kill it followed: the latest one before it ended.
		k := killed[0]
		for _, at := range killed {
			if at.Before(r.end) {
				k = at
			}
		}
		if d := r.end.Sub(k); d > worstErr {
			worstErr = d
		}
		if d := r.end.Sub(k); d > time.Second {
			t.Errorf("request failed %v after a kill, want within 1s: %v", d, r.err)
		}
	}
	if completed == 0 {
		t.Errorf("no request completed under %d kills", kills)
	}
	st := e.status(t, "tiny")
	if st.Restarts < kills {
		t.Errorf("plugin restarted %d times after %d kills", st.Restarts, kills)
	}
	if st.InFlight != 0 {
		t.Errorf("%d requests still in flight after the load stopped", st.InFlight)
	}
	e.mustGenerate(t, req)
	t.Logf("%d kills: %d requests completed, %d failed retryably (worst %v after a kill); backend back after median %v, worst %v",
		kills, completed, failed, worstErr, percentile(recoveries, 0.5), percentile(recoveries, 1))
}

// The hot-swap test: cpu -> cpu (a second process of the plugin)
// while clients keep the service busy: no request fails, and p99 latency
// during the swap stays near the baseline.
func TestSwapUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("measures latency under load")
	}
	e := newEnv(t)
	e.register(t, "tiny", e.checkpoint(t, 1, 0))
	req := &busv1.GenerateRequest{Model: "tiny", Prompt: "the cat", MaxTokens: 16}
	e.mustGenerate(t, req)
	old := e.status(t, "tiny").Pid

	l := e.startLoad(4, req)
	time.Sleep(1500 * time.Millisecond) // baseline
	swapStart := time.Now()
	replies, err := e.b.SwapBackend(t.Context(), "tiny", "cpu")
	swapEnd := time.Now()
	if err != nil {
		t.Errorf("swap under load: %v", err)
	}
	time.Sleep(time.Second) // after
	results := l.stopLoad(t, 15*time.Second)

	var base, during, after []time.Duration
	for _, r := range results {
		if r.err != nil {
			t.Errorf("request failed during a swap: %v", r.err)
			continue
		}
		d := r.end.Sub(r.start)
		switch {
		case r.end.Before(swapStart):
			base = append(base, d)
		case r.start.Before(swapEnd):
			during = append(during, d)
		default:
			after = append(after, d)
		}
	}
	if len(replies) != 1 || int(replies[0].OldPid) != old || replies[0].Pid == 0 || int(replies[0].Pid) == old {
		t.Fatalf("swap replies %v, want one from pid %d to a new one", replies, old)
	}
	waitExited(t, old)
	if st := e.status(t, "tiny"); int32(st.Pid) != replies[0].Pid || st.Restarts != 0 {
		t.Errorf("status after the swap: %+v, want pid %d and no restarts", st, replies[0].Pid)
	}
	if len(base) == 0 || len(during) == 0 {
		t.Fatalf("%d baseline and %d during-swap requests; cannot compare", len(base), len(during))
	}
	b50, b99 := percentile(base, 0.5), percentile(base, 0.99)
	d50, d99 := percentile(during, 0.5), percentile(during, 0.99)
	t.Logf("swap cpu->cpu took %v (server %dms); latency baseline p50 %v p99 %v (%d requests), during swap p50 %v p99 %v (%d requests, p99 %.2fx), after p50 %v (%d requests)",
		swapEnd.Sub(swapStart).Round(time.Millisecond), replies[0].Millis, b50, b99, len(base), d50, d99, len(during),
		float64(d99)/float64(b99), percentile(after, 0.5), len(after))
	// The target is p99 during the swap at most 2x the baseline; a
	// latency is measured and logged (docs/benchmarks.md records it), not
	// asserted: CI machines are too noisy for timed assertions.
}

// percentile is the q-quantile (nearest rank) of ds; 0 when empty.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return s[i].Round(10 * time.Microsecond)
}
