package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/trainer/tbevents"
)

// dpSpec is a data-parallel job on the tiny model: a global batch of 6
// rows (split 3+3 on two shards, 2+2+2 on three).
func (e *env) dpSpec(t *testing.T, shards int, mod func(map[string]any)) map[string]any {
	return e.tinySpec(t, func(s map[string]any) {
		s["shards"] = shards
		s["batch"] = 6
		s["steps"] = 24
		s["log_every"] = 1
		s["eval_every"] = 8
		s["checkpoint_every"] = 4
		s["collective_timeout_s"] = 5
		s["join_timeout_s"] = 30
		if mod != nil {
			mod(s)
		}
	})
}

// curve is the train loss per step of a job, from its metric events.
func (e *env) curve(t *testing.T, id string) map[int64]float64 {
	t.Helper()
	out := map[int64]float64{}
	for _, ev := range e.events(t, id) {
		if m, ok := ev.Body.(*busv1.Event_Metric); ok && m.Metric.Name == "loss" {
			out[m.Metric.Step] = m.Metric.Value
		}
	}
	return out
}

// runShards runs n shards of job id in this process (goroutines, one plugin
// each) and returns their results and errors.
func (e *env) runShards(t *testing.T, id string, specs ...map[string]any) ([]Result, []error) {
	t.Helper()
	res, errs := make([]Result, len(specs)), make([]error, len(specs))
	var wg sync.WaitGroup
	for i, sp := range specs {
		js, err := json.Marshal(sp)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { res[i], errs[i] = e.s.RunShard(t.Context(), id, js) })
	}
	wg.Wait()
	return res, errs
}

// Two shards at the same global batch follow the loss curve of one.
func TestDataParallelMatchesOneShard(t *testing.T) {
	tbDir := t.TempDir()
	e := newEnvWith(t, func(c *Config) {
		c.Heartbeat = 100 * time.Millisecond
		c.ChunkBytes = 4 << 10
		c.TensorBoardDir = tbDir
	})
	one := e.submit(t, e.dpSpec(t, 1, func(s map[string]any) { s["model"] = "one" }))
	r1 := e.succeeded(t, one)
	two := e.submit(t, e.dpSpec(t, 2, func(s map[string]any) { s["model"] = "two" }))
	r2 := e.succeeded(t, two)

	if r1.Shards != 1 || r2.Shards != 2 || r2.Steps != 24 || r2.Tokens != r1.Tokens {
		t.Errorf("results: one %+v, two %+v", r1, r2)
	}
	c1, c2 := e.curve(t, one), e.curve(t, two)
	if len(c1) != 24 || len(c2) != 24 {
		t.Fatalf("loss logged at %d and %d steps, want 24 each", len(c1), len(c2))
	}
	// The shards sum the same per-row gradients in another order: the
	// curves agree to float32 rounding, amplified a little by AdamW.
	var worst float64
	for step, l1 := range c1 {
		d := math.Abs(c2[step]-l1) / l1
		worst = max(worst, d)
		if d > 0.01 {
			t.Errorf("step %d: loss %.5f on two shards, %.5f on one (%.2g relative)", step, c2[step], l1, d)
		}
	}
	t.Logf("loss curves: largest relative difference %.2g; final validation loss %.5f (one shard), %.5f (two)", worst, r1.FinalLoss, r2.FinalLoss)
	if d := math.Abs(r2.FinalLoss-r1.FinalLoss) / r1.FinalLoss; d > 0.01 {
		t.Errorf("final validation loss %.5f on two shards, %.5f on one", r2.FinalLoss, r1.FinalLoss)
	}
	if !(r2.FinalLoss < r2.InitialLoss-0.5) {
		t.Errorf("two shards: validation loss %.4f -> %.4f, not clearly lower", r2.InitialLoss, r2.FinalLoss)
	}
	m, err := e.b.GetModel(t.Context(), "two")
	if err != nil {
		t.Fatal(err)
	}
	if m.Checkpoint != r2.Checkpoint || m.Step != 24 {
		t.Errorf("registered model %v, want checkpoint %s at step 24", m, r2.Checkpoint)
	}

	// The same losses are in the TensorBoard event file and the
	// Prometheus exposition.
	files, err := filepath.Glob(filepath.Join(tbDir, two, "events.out.tfevents.*"))
	if err != nil || len(files) != 1 {
		t.Fatalf("event files of job %s: %v %v", two, files, err)
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := tbevents.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	tb := map[int64]float64{}
	tags := map[string]int{}
	for _, ev := range evs {
		tags[ev.Tag]++
		if ev.Tag == "loss/loss" {
			tb[ev.Step] = float64(ev.Value)
		}
	}
	if len(tb) != 24 || float32(tb[24]) != float32(c2[24]) {
		t.Errorf("tensorboard loss at %d steps, step 24 = %v; events say %v", len(tb), tb[24], c2[24])
	}
	for _, tag := range []string{"lr", "grad_norm", "tokens_per_sec", "allreduce_ms", "loss/val_loss"} {
		if tags[tag] == 0 {
			t.Errorf("no %s scalars in the event file (tags %v)", tag, tags)
		}
	}
	fams := scrape(t, e.s)
	checkGauges(t, e, fams, two)
	// Rank 0 counts every step and times each step's allreduces.
	if n := series(fams, "llmesh_trainer_steps_total", two).GetCounter().GetValue(); n != 24 {
		t.Errorf("llmesh_trainer_steps_total = %v, want 24", n)
	}
	if h := series(fams, "llmesh_trainer_allreduce_seconds", two).GetHistogram(); h.GetSampleCount() != 24 || math.Abs(h.GetSampleSum()-r2.AllReduceSeconds) > 1e-6 {
		t.Errorf("llmesh_trainer_allreduce_seconds: %d samples of %v s in all, want 24 of %v s", h.GetSampleCount(), h.GetSampleSum(), r2.AllReduceSeconds)
	}
	if typ := fams["llmesh_trainer_loss"].GetType(); typ != dto.MetricType_GAUGE {
		t.Errorf("llmesh_trainer_loss is a %v, want a gauge", typ)
	}
	if got := sample(t, fams, "llmesh_trainer_shards", two); got != 2 {
		t.Errorf("shards{job=%q} = %v, want 2", two, got)
	}
	if got := sample(t, fams, "llmesh_trainer_step", two); got != 24 {
		t.Errorf("step{job=%q} = %v, want 24", two, got)
	}
	if got := sample(t, fams, "llmesh_trainer_loss", two); float32(got) != float32(c2[24]) {
		t.Errorf("loss{job=%q} = %v, want the step-24 loss %v", two, got, c2[24])
	}
}

// Shards that disagree on the model config fail with a clear error; the
// job waits visibly for the shards it lacks and then fails.
func TestDataParallelBadShards(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.Heartbeat = 100 * time.Millisecond })
	t.Run("different model config", func(t *testing.T) {
		a := e.dpSpec(t, 2, func(s map[string]any) { s["join_timeout_s"] = 3 })
		b := e.dpSpec(t, 2, func(s map[string]any) {
			s["join_timeout_s"] = 3
			s["config"] = json.RawMessage(`{"vocab_size":64,"n_ctx":16,"n_embd":32,"n_layer":1,"n_head":2}`)
		})
		b["train_ref"], b["val_ref"] = a["train_ref"], a["val_ref"]
		// a joins first and leads.
		errs := make([]error, 2)
		var wg sync.WaitGroup
		wg.Go(func() {
			js, _ := json.Marshal(a)
			_, errs[0] = e.s.RunShard(t.Context(), "mismatch", js)
		})
		time.Sleep(300 * time.Millisecond) // let a join first: it leads
		wg.Go(func() {
			js, _ := json.Marshal(b)
			_, errs[1] = e.s.RunShard(t.Context(), "mismatch", js)
		})
		wg.Wait()
		if !errors.Is(errs[1], ErrShardMismatch) || !strings.Contains(errs[1].Error(), "model config") {
			t.Errorf("second shard: %v, want a model config mismatch", errs[1])
		}
		if !errors.Is(errs[0], ErrShardsMissing) {
			t.Errorf("first shard: %v, want ErrShardsMissing", errs[0])
		}
	})
}

// Shards whose tokenizers differ fail with a clear error naming the
// tokenizers.
func TestDataParallelTokenizerMismatch(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.Heartbeat = 100 * time.Millisecond })
	v1 := e.tokenizer(t, "tok")
	v2 := e.tokenizerOf(t, "tok2", 270)
	cfg := json.RawMessage(fmt.Sprintf(`{"vocab_size":%d,"n_ctx":16,"n_embd":16,"n_layer":1,"n_head":2}`, max(v1.VocabSize, v2.VocabSize)))
	a := e.dpSpec(t, 2, func(s map[string]any) { s["tokenizer"] = "tok"; s["config"] = cfg; s["join_timeout_s"] = 3 })
	b := e.dpSpec(t, 2, func(s map[string]any) { s["tokenizer"] = "tok2"; s["config"] = cfg; s["join_timeout_s"] = 3 })
	b["train_ref"], b["val_ref"] = a["train_ref"], a["val_ref"]
	errs := make([]error, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		js, _ := json.Marshal(a)
		_, errs[0] = e.s.RunShard(t.Context(), "tokmismatch", js)
	})
	time.Sleep(300 * time.Millisecond) // a leads
	wg.Go(func() {
		js, _ := json.Marshal(b)
		_, errs[1] = e.s.RunShard(t.Context(), "tokmismatch", js)
	})
	wg.Wait()
	if !errors.Is(errs[1], ErrShardMismatch) || !strings.Contains(errs[1].Error(), "tokenizer") || !strings.Contains(errs[1].Error(), v1.Ref) {
		t.Errorf("second shard: %v, want a tokenizer mismatch naming %s", errs[1], v1.Ref)
	}
}

// A job asking for more shards than exist waits, says so, and fails at
// its join deadline with a clear message.
func TestDataParallelTooFewShards(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.Heartbeat = 100 * time.Millisecond })
	sp := e.dpSpec(t, 3, func(s map[string]any) { s["join_timeout_s"] = 2.5 })
	_, errs := e.runShards(t, "lonely", sp)
	if !errors.Is(errs[0], ErrShardsMissing) || !strings.Contains(errs[0].Error(), "job lonely needs 3 shards; 1 joined within 2.5s") {
		t.Fatalf("err = %v, want the missing-shards error", errs[0])
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ch, err := e.b.WatchEvents(ctx, "lonely")
	if err != nil {
		t.Fatal(err)
	}
	waited := false
	for ev := range ch {
		if l, ok := ev.Body.(*busv1.Event_Log); ok && strings.HasPrefix(l.Log, "waiting for shards: 1 of 3 joined") {
			waited = true
			cancel()
		}
	}
	if !waited {
		t.Error("no \"waiting for shards\" log event")
	}
}

// A shard that arrives late joins at the next checkpoint boundary: the
// ring re-forms with it and resumes from that checkpoint.
func TestDataParallelLateJoin(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.Heartbeat = 100 * time.Millisecond })
	sp := e.dpSpec(t, 2, func(s map[string]any) {
		s["max_shards"] = 3
		s["steps"] = 40
		s["checkpoint_every"] = 5
	})
	js, err := json.Marshal(sp)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	events, err := e.b.WatchEvents(ctx, "late")
	if err != nil {
		t.Fatal(err)
	}
	res, errs := make([]Result, 3), make([]error, 3)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { res[i], errs[i] = e.s.RunShard(t.Context(), "late", js) })
	}
	// The third shard starts once the first two are past step 8.
	for ev := range events {
		if m, ok := ev.Body.(*busv1.Event_Metric); ok && m.Metric.Name == "loss" && m.Metric.Step >= 8 {
			break
		}
	}
	cancel()
	wg.Go(func() { res[2], errs[2] = e.s.RunShard(t.Context(), "late", js) })
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("shard %d: %v", i, err)
		}
	}
	lead := res[0]
	for _, r := range res {
		if r.Rank == 0 {
			lead = r
		}
	}
	if lead.Shards != 3 || lead.Generations != 2 || len(lead.ResumedAt) != 1 || lead.ResumedAt[0]%5 != 0 || lead.ResumedAt[0] < 10 {
		t.Errorf("leader's result %+v: want 3 shards in generation 2, resumed at a checkpoint step after step 8", lead)
	}
	if lead.Restarts != 0 {
		t.Errorf("restarts = %d: a join is not a failure", lead.Restarts)
	}
}

// Gradient accumulation: 2 micro-batches of 3 rows make the same step as
// one batch of 6, on one shard and on two (which split each micro-batch
// 1+2: uneven slices are weighted by their rows).
func TestDataParallelGradAccum(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.Heartbeat = 100 * time.Millisecond })
	base := e.dpSpec(t, 1, func(s map[string]any) { s["steps"] = 12; s["eval_every"] = 12 })
	accum := func(shards int) map[string]any {
		s := maps.Clone(base)
		s["batch"], s["grad_accum"], s["shards"] = 3, 2, shards
		return s
	}
	curves := map[string]map[int64]float64{}
	for name, sp := range map[string]map[string]any{"batch6": base, "accum1": accum(1), "accum2": accum(2)} {
		shards := sp["shards"].(int)
		specs := make([]map[string]any, shards)
		for i := range specs {
			specs[i] = sp
		}
		_, errs := e.runShards(t, name, specs...)
		for _, err := range errs {
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		curves[name] = e.curveOf(t, name, 12)
	}
	for _, name := range []string{"accum1", "accum2"} {
		if len(curves[name]) != 12 {
			t.Fatalf("%s: %d logged steps", name, len(curves[name]))
		}
		for step, want := range curves["batch6"] {
			if d := math.Abs(curves[name][step]-want) / want; d > 1e-3 {
				t.Errorf("%s step %d: loss %.6f, batch of 6 %.6f", name, step, curves[name][step], want)
			}
		}
	}
}

// Early stopping: validation on a stream unlike the training one gets
// worse as the model fits the training stream; with patience 2 the job
// stops before its last step, and says so.
func TestDataParallelEarlyStop(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.Heartbeat = 100 * time.Millisecond })
	val := make([]uint16, 500)
	for i := range val {
		val[i] = uint16((i * 5) % 11) // another cycle: what the model learns hurts here
	}
	sp := e.dpSpec(t, 2, func(s map[string]any) {
		s["val_ref"] = e.shard(t, val)
		s["steps"] = 200
		s["eval_every"] = 5
		s["patience"] = 2
		s["lr"] = 0.03
	})
	res, errs := e.runShards(t, "early", sp, sp)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	lead := res[0]
	if res[1].Rank == 0 {
		lead = res[1]
	}
	if !lead.StoppedEarly || lead.Steps >= 200 || lead.Steps%5 != 0 {
		t.Fatalf("result %+v: want an early stop at an evaluation step before 200", lead)
	}
	if res[0].Steps != res[1].Steps {
		t.Errorf("shards stopped at steps %d and %d: they must agree", res[0].Steps, res[1].Steps)
	}
}

// curveOf is curve for a job whose events end without done (RunShard
// called directly): it replays the loss metrics until it has steps of
// them.
func (e *env) curveOf(t *testing.T, id string, steps int) map[int64]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ch, err := e.b.WatchEvents(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]float64{}
	for ev := range ch {
		if m, ok := ev.Body.(*busv1.Event_Metric); ok && m.Metric.Name == "loss" {
			out[m.Metric.Step] = m.Metric.Value
			if len(out) == steps {
				cancel()
			}
		}
	}
	return out
}

// A shard beyond max_shards waits as a spare and leaves when the job is
// done.
func TestDataParallelSpare(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.Heartbeat = 100 * time.Millisecond })
	sp := e.dpSpec(t, 2, nil)
	res, errs := e.runShards(t, "spare", sp, sp, sp)
	spares := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("shard %d: %v", i, err)
		}
		if res[i].Spare {
			spares++
		} else if res[i].Steps != 24 || res[i].Shards != 2 {
			t.Errorf("shard %d: %+v", i, res[i])
		}
	}
	if spares != 1 {
		t.Errorf("%d spares, want 1 (max_shards 2 of 3 shards)", spares)
	}
}
