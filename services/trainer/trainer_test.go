package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	"github.com/llmesh/llmesh/bus/tensor"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/internal/bpe"
)

// env is a bus with one trainer shard serving it through a real plugin host
// that re-executes this test binary as the cpu backend.
type env struct {
	b *bus.Bus
	s *Service
}

func newEnv(t *testing.T) *env { return newEnvWith(t, nil) }

// newEnvWith is newEnv with the service config adjusted by mod.
func newEnvWith(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	return newEnvBus(t, bustest.New(t), mod)
}

// newEnvOn serves b (a bus already set up) with fast heartbeats.
func newEnvOn(t *testing.T, b *bus.Bus) *env {
	return newEnvBus(t, b, func(c *Config) { c.Heartbeat = 100 * time.Millisecond })
}

func newEnvBus(t *testing.T, b *bus.Bus, mod func(*Config)) *env {
	t.Helper()
	h, err := accel.NewHost(accel.HostConfig{
		Command:        reexec,
		RestartBackoff: time.Millisecond,
		StartTimeout:   20 * time.Second,
		Logger:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Bus: b, Host: h}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("trainer Run: %v", err)
		}
		h.Close()
	})
	return &env{b: b, s: s}
}

// shard stores ids as a token shard (the tokenizer service's format).
func (e *env) shard(t *testing.T, ids []uint16) string {
	t.Helper()
	payload, err := tensor.Encode([]tensor.Tensor{tensor.FromUint16("tokens", []int{len(ids)}, ids)}, map[string]string{"test": "shard"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.b.PutBytes(t.Context(), payload)
	if err != nil {
		t.Fatal(err)
	}
	return info.Ref
}

// repeating is n tokens of the cycle 0, 1, ..., period-1, 0, 1, ...: a stream
// a model learns within a few dozen steps.
func repeating(n, period int) []uint16 {
	ids := make([]uint16, n)
	for i := range ids {
		ids[i] = uint16(i % period)
	}
	return ids
}

// tinySpec is a 30-step job on a tiny model; mod adjusts it.
func (e *env) tinySpec(t *testing.T, mod func(map[string]any)) map[string]any {
	t.Helper()
	ref := e.shard(t, repeating(2000, 7))
	spec := map[string]any{
		"model": "tiny", "train_ref": ref, "val_ref": ref,
		"config": json.RawMessage(tinyConfig),
		"steps":  30, "batch": 4, "lr": 0.01, "warmup": 3,
		"eval_every": 10, "checkpoint_every": 10, "log_every": 5, "seed": 1,
	}
	if mod != nil {
		mod(spec)
	}
	return spec
}

func (e *env) submit(t *testing.T, spec map[string]any) string {
	t.Helper()
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.b.SubmitJob(t.Context(), bus.KindTrain, js, bus.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rec.Id
}

// wait polls the job's record until it has finished.
func (e *env) wait(t *testing.T, id string, timeout time.Duration) *busv1.JobRecord {
	t.Helper()
	var rec *busv1.JobRecord
	bustest.WaitFor(t, timeout, func() error {
		var err error
		if rec, err = e.b.GetJob(t.Context(), id); err != nil {
			return err
		}
		if !bus.Finished(rec.State) {
			return fmt.Errorf("job %s is %s", id, rec.State)
		}
		return nil
	})
	return rec
}

// succeeded waits for the job and decodes its result; it fails t unless the
// job succeeded.
func (e *env) succeeded(t *testing.T, id string) Result {
	t.Helper()
	rec := e.wait(t, id, 60*time.Second)
	if rec.State != busv1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %s: %s: %s", id, rec.State, rec.Error)
	}
	var res Result
	if err := json.Unmarshal(rec.ResultJson, &res); err != nil {
		t.Fatalf("result %s: %v", rec.ResultJson, err)
	}
	return res
}

// failed waits for the job and fails t unless it failed with an error
// containing want.
func (e *env) failed(t *testing.T, id, want string) {
	t.Helper()
	rec := e.wait(t, id, 60*time.Second)
	if rec.State != busv1.JobState_JOB_STATE_FAILED || !strings.Contains(rec.Error, want) {
		t.Fatalf("job %s: %s with error %q, want failed with %q", id, rec.State, rec.Error, want)
	}
}

// events replays the events of a finished job.
func (e *env) events(t *testing.T, id string) []*busv1.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ch, err := e.b.WatchEvents(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var evs []*busv1.Event
	for ev := range ch {
		evs = append(evs, ev)
	}
	if len(evs) == 0 || (evs[len(evs)-1].Type != bus.EventDone && evs[len(evs)-1].Type != bus.EventFailed) {
		t.Fatalf("events of %s did not end in done or failed (%d events)", id, len(evs))
	}
	return evs
}

func TestTrain(t *testing.T) {
	e := newEnv(t)
	spec := e.tinySpec(t, nil)
	id := e.submit(t, spec)
	res := e.succeeded(t, id)

	if res.Model != "tiny" || res.Steps != 30 || res.Backend != "cpu" || res.Parameters == 0 || res.Restarts != 0 {
		t.Errorf("result = %+v", res)
	}
	if want := int64(30 * 4 * 16); res.Tokens != want {
		t.Errorf("tokens = %d, want %d (steps x batch x seq_len)", res.Tokens, want)
	}
	if !(res.FinalLoss < res.InitialLoss-0.5) {
		t.Errorf("validation loss %.4f -> %.4f: not clearly lower on a repeating stream", res.InitialLoss, res.FinalLoss)
	}

	metrics := map[string][]int64{} // name -> steps reported
	var checkpoints []string
	var lastCkptRef string
	for _, ev := range e.events(t, id) {
		switch b := ev.Body.(type) {
		case *busv1.Event_Metric:
			metrics[b.Metric.Name] = append(metrics[b.Metric.Name], b.Metric.Step)
			if b.Metric.Name == "lr" && (b.Metric.Value <= 0 || b.Metric.Value > 0.01+1e-9) {
				t.Errorf("lr %v at step %d outside (0, 0.01]", b.Metric.Value, b.Metric.Step)
			}
		case *busv1.Event_Artifact:
			if b.Artifact.Kind == "checkpoint" {
				checkpoints = append(checkpoints, b.Artifact.Name)
				lastCkptRef = b.Artifact.Ref
				if _, err := e.b.StatObject(t.Context(), b.Artifact.Ref); err != nil {
					t.Errorf("checkpoint %s: %v", b.Artifact.Name, err)
				}
			}
		}
	}
	wantMetrics := map[string][]int64{
		"loss": {5, 10, 15, 20, 25, 30}, "lr": {5, 10, 15, 20, 25, 30},
		"grad_norm": {5, 10, 15, 20, 25, 30}, "tokens_per_sec": {5, 10, 15, 20, 25, 30},
		"val_loss": {0, 10, 20, 30},
	}
	if diff := cmp.Diff(wantMetrics, metrics); diff != "" {
		t.Errorf("metric steps (-want +got):\n%s", diff)
	}
	// The Prometheus exposition has the last value of each metric and the
	// job's totals.
	fams := scrape(t, e.s)
	checkGauges(t, e, fams, id)
	if got := sample(t, fams, "llmesh_trainer_val_loss", id); got != res.FinalLoss {
		t.Errorf("llmesh_trainer_val_loss = %v, want the final validation loss %v", got, res.FinalLoss)
	}
	if got := sample(t, fams, "llmesh_trainer_steps_total", id); got != 30 {
		t.Errorf("llmesh_trainer_steps_total = %v, want 30", got)
	}
	if got := sample(t, fams, "llmesh_trainer_tokens_total", id); got != float64(res.Tokens) {
		t.Errorf("llmesh_trainer_tokens_total = %v, want the result's %d", got, res.Tokens)
	}
	if m := series(fams, "llmesh_trainer_restarts_total", id); m != nil {
		t.Errorf("llmesh_trainer_restarts_total = %v without a restart", m.GetCounter().GetValue())
	}
	wantCkpts := []string{"tiny/step-000000", "tiny/step-000010", "tiny/step-000020", "tiny/step-000030"}
	if diff := cmp.Diff(wantCkpts, checkpoints); diff != "" {
		t.Errorf("checkpoint artifacts (-want +got):\n%s", diff)
	}

	m, err := e.b.GetModel(t.Context(), "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if m.Checkpoint != res.Checkpoint || m.Checkpoint != lastCkptRef || m.Step != 30 || m.JobId != id ||
		m.Parameters != res.Parameters || m.ValLoss != res.FinalLoss || string(m.ConfigJson) != tinyConfig || m.Tokenizer != "" {
		t.Errorf("registered model = %v, want checkpoint %s (the last artifact), config %s, result %+v", m, lastCkptRef, tinyConfig, res)
	}
}

func TestTrainDeterministic(t *testing.T) {
	e := newEnv(t)
	spec := e.tinySpec(t, func(s map[string]any) { s["seed"] = 42; s["steps"] = 12 })
	var results []Result
	for i := range 2 {
		spec["model"] = fmt.Sprintf("det-%d", i)
		results = append(results, e.succeeded(t, e.submit(t, spec)))
	}
	a, b := results[0], results[1]
	if a.InitialLoss != b.InitialLoss || a.FinalLoss != b.FinalLoss || a.FinalTrainLoss != b.FinalTrainLoss {
		t.Errorf("same seed, different runs: val %v -> %v, train %v vs val %v -> %v, train %v",
			a.InitialLoss, a.FinalLoss, a.FinalTrainLoss, b.InitialLoss, b.FinalLoss, b.FinalTrainLoss)
	}
	if a.Checkpoint != b.Checkpoint {
		t.Errorf("same seed, different final checkpoints %s and %s", a.Checkpoint, b.Checkpoint)
	}
}

func TestTrainBadShards(t *testing.T) {
	e := newEnv(t)
	tests := map[string]struct {
		train, val []uint16
		want       string
	}{
		"train id outside the vocabulary": {
			train: append(repeating(100, 7), 64), val: repeating(100, 7),
			want: "train shard: shard sha256-",
		},
		"validation id outside the vocabulary": {
			train: repeating(100, 7), val: append(repeating(50, 7), 70),
			want: "token 70 at 50 is outside the model vocabulary 64",
		},
		"train shard shorter than seq_len+1": {
			train: repeating(16, 7), val: repeating(100, 7),
			want: "train shard has 16 tokens; seq_len 16 needs at least 17",
		},
		"validation shard shorter than seq_len+1": {
			train: repeating(100, 7), val: repeating(3, 7),
			want: "validation shard has 3 tokens; seq_len 16 needs at least 17",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id := e.submit(t, e.tinySpec(t, func(s map[string]any) {
				s["train_ref"], s["val_ref"] = e.shard(t, tc.train), e.shard(t, tc.val)
			}))
			e.failed(t, id, tc.want)
		})
	}
	t.Run("id outside the vocabulary is named", func(t *testing.T) {
		id := e.submit(t, e.tinySpec(t, func(s map[string]any) {
			s["train_ref"] = e.shard(t, append(repeating(100, 7), 64))
		}))
		e.failed(t, id, "token 64 at 100 is outside the model vocabulary 64")
	})
	t.Run("shard without a tokens tensor", func(t *testing.T) {
		payload, err := tensor.Encode([]tensor.Tensor{tensor.FromUint16("ids", []int{100}, repeating(100, 7))}, nil)
		if err != nil {
			t.Fatal(err)
		}
		info, err := e.b.PutBytes(t.Context(), payload)
		if err != nil {
			t.Fatal(err)
		}
		id := e.submit(t, e.tinySpec(t, func(s map[string]any) { s["train_ref"] = info.Ref }))
		e.failed(t, id, `has no "tokens" tensor`)
	})
	t.Run("missing shard", func(t *testing.T) {
		id := e.submit(t, e.tinySpec(t, func(s map[string]any) { s["val_ref"] = valRef }))
		e.failed(t, id, "validation shard")
	})
	t.Run("unknown field", func(t *testing.T) {
		id := e.submit(t, e.tinySpec(t, func(s map[string]any) { s["stpes"] = 3 }))
		e.failed(t, id, `unknown field "stpes"`)
	})
}

// killer watches a job's events and SIGKILLs the plugin process: first when
// the step-10 checkpoint is stored, then (up to kills times in all) each time
// the job logs that it resumed on a new pid.
type killer struct {
	mu     sync.Mutex
	pids   []int
	errs   []error
	kills  int
	killed int
}

func (k *killer) kill(pid int) {
	k.killed++
	k.pids = append(k.pids, pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		k.errs = append(k.errs, fmt.Errorf("kill plugin %d: %w", pid, err))
	}
}

func (k *killer) watch(t *testing.T, b *bus.Bus, id string) (stop func() *killer) {
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := b.WatchEvents(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		pid := 0
		for ev := range ch {
			k.mu.Lock()
			switch body := ev.Body.(type) {
			case *busv1.Event_Log:
				var p int
				if _, err := fmt.Sscanf(body.Log, "backend cpu started (pid %d)", &p); err == nil {
					pid = p
				}
				var step int
				if _, err := fmt.Sscanf(body.Log, "resumed from step %d on backend pid %d", &step, &p); err == nil && k.killed < k.kills {
					k.kill(p)
				}
			case *busv1.Event_Artifact:
				if body.Artifact.Kind == "checkpoint" && strings.HasSuffix(body.Artifact.Name, "step-000010") && k.killed == 0 && pid > 0 {
					k.kill(pid)
				}
			}
			k.mu.Unlock()
		}
	}()
	return func() *killer {
		cancel()
		<-done
		k.mu.Lock()
		defer k.mu.Unlock()
		for _, err := range k.errs {
			t.Error(err)
		}
		return k
	}
}

func TestTrainPluginKilled(t *testing.T) {
	e := newEnv(t)
	spec := e.tinySpec(t, func(s map[string]any) { s["steps"] = 300; s["eval_every"] = 50; s["log_every"] = 50 })
	id := e.submit(t, spec)
	stop := (&killer{kills: 1}).watch(t, e.b, id)
	res := e.succeeded(t, id)
	k := stop()
	if k.killed != 1 {
		t.Fatalf("killed the plugin %d times, want once at the step-10 checkpoint", k.killed)
	}
	if res.Restarts < 1 {
		t.Errorf("plugin_restarts = %d, want at least 1", res.Restarts)
	}
	if got := sample(t, scrape(t, e.s), "llmesh_trainer_restarts_total", id); got != float64(res.Restarts) {
		t.Errorf("llmesh_trainer_restarts_total = %v, want the result's %d", got, res.Restarts)
	}
	if !(res.FinalLoss < res.InitialLoss) {
		t.Errorf("validation loss %.4f -> %.4f after a restart", res.InitialLoss, res.FinalLoss)
	}
	var resumed bool
	for _, ev := range e.events(t, id) {
		if l, ok := ev.Body.(*busv1.Event_Log); ok && strings.HasPrefix(l.Log, "resumed from step ") {
			resumed = true
		}
	}
	if !resumed {
		t.Error("no \"resumed from step\" log event")
	}
}

func TestTrainMaxRestartsExceeded(t *testing.T) {
	e := newEnv(t)
	spec := e.tinySpec(t, func(s map[string]any) { s["steps"] = 5000; s["eval_every"] = 1000; s["max_restarts"] = 1 })
	id := e.submit(t, spec)
	stop := (&killer{kills: 2}).watch(t, e.b, id)
	e.failed(t, id, "backend cpu died 2 times, more than max_restarts 1")
	if k := stop(); k.killed != 2 {
		t.Errorf("killed the plugin %d times, want 2", k.killed)
	}
}

// tokenizer trains a small byte-level BPE tokenizer and registers it as name.
func (e *env) tokenizer(t *testing.T, name string) *busv1.TokenizerRecord {
	return e.tokenizerOf(t, name, 280)
}

// tokenizerOf is tokenizer with vocab tokens.
func (e *env) tokenizerOf(t *testing.T, name string, vocab int) *busv1.TokenizerRecord {
	t.Helper()
	tok, err := bpe.Train(t.Context(), []string{"the cat sat on the mat", "the dog sat on the log", "a cat and a dog"}, bpe.TrainOptions{VocabSize: vocab})
	if err != nil {
		t.Fatal(err)
	}
	js, err := tok.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.b.PutBytes(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	rec := &busv1.TokenizerRecord{Name: name, Ref: info.Ref, VocabSize: int32(tok.VocabSize())}
	if err := e.b.PutTokenizer(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestTrainRegistersTokenizer(t *testing.T) {
	e := newEnv(t)
	tr := e.tokenizer(t, "tok")
	spec := e.tinySpec(t, func(s map[string]any) {
		s["tokenizer"] = "tok"
		s["steps"] = 5
		s["config"] = json.RawMessage(fmt.Sprintf(`{"vocab_size":%d,"n_ctx":16,"n_embd":16,"n_layer":1,"n_head":2}`, tr.VocabSize))
	})
	e.succeeded(t, e.submit(t, spec))
	m, err := e.b.GetModel(t.Context(), "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if m.Tokenizer != tr.Ref {
		t.Errorf("model tokenizer = %q, want the tokenizer's ref %q", m.Tokenizer, tr.Ref)
	}
}

// An unknown tokenizer is a mistake in the spec: the job must fail before it
// spends its steps training a model it cannot register.
func TestTrainUnknownTokenizerFailsEarly(t *testing.T) {
	e := newEnv(t)
	id := e.submit(t, e.tinySpec(t, func(s map[string]any) { s["tokenizer"] = "nope" }))
	e.failed(t, id, `tokenizer "nope"`)
	for _, ev := range e.events(t, id) {
		if p, ok := ev.Body.(*busv1.Event_Progress); ok && p.Progress.Stage == "train" {
			t.Fatalf("job trained (progress %d/%d) before failing on the unknown tokenizer", p.Progress.Done, p.Progress.Total)
		}
	}
}
