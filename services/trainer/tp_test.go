package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel/transformer"
	"github.com/llmesh/llmesh/bus/tensor"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/internal/jobspec"
)

// tpConfig has two layers and two heads: a group of two splits both.
const tpConfig = `{"vocab_size":64,"n_ctx":16,"n_embd":24,"n_layer":2,"n_head":2}`

// A tensor-parallel job on two shards follows the loss curve of a
// one-shard job (same seed, same batches, gradient accumulation and label
// smoothing), all-reducing activations over the bus, and registers a full
// checkpoint that loads in the normal path.
func TestTensorParallelMatchesOneShard(t *testing.T) {
	e := newEnvWith(t, func(c *Config) {
		c.Heartbeat = 100 * time.Millisecond
		c.ChunkBytes = 4 << 10 // activations travel in several pieces
		c.TensorThreads = 1
	})
	spec := func(shards int, model, parallel string) map[string]any {
		return e.dpSpec(t, shards, func(s map[string]any) {
			s["model"] = model
			s["config"] = json.RawMessage(tpConfig)
			s["label_smoothing"] = 0.05
			s["batch"], s["grad_accum"] = 3, 2 // 6 rows a step, in two micro-batches
			if parallel != "" {
				s["parallel"] = parallel
			}
		})
	}
	one := e.submit(t, spec(1, "one", ""))
	r1 := e.succeeded(t, one)
	two := e.submit(t, spec(2, "tp", ParallelTensor))
	r2 := e.succeeded(t, two)

	if r2.Parallel != ParallelTensor || r2.Shards != 2 || r2.Steps != 24 || r2.Tokens != r1.Tokens {
		t.Errorf("results: one %+v, tensor-parallel %+v", r1, r2)
	}
	// Per step: 4 allreduces per layer per micro-batch and one for the
	// gradient norm.
	if want := int64(24 * (2*4*2 + 1)); r2.AllReduces != want || r2.AllReduceSeconds <= 0 || r2.AllReduceWaitSeconds <= 0 {
		t.Errorf("%d allreduces in %.3f s (%.3f s waited), want %d", r2.AllReduces, r2.AllReduceSeconds, r2.AllReduceWaitSeconds, want)
	}
	// Rank 0 counts every step and times each step's allreduces.
	fams := scrape(t, e.s)
	checkGauges(t, e, fams, two)
	if got := sample(t, fams, "llmesh_trainer_steps_total", two); got != 24 {
		t.Errorf("llmesh_trainer_steps_total = %v, want 24", got)
	}
	if got := sample(t, fams, "llmesh_trainer_tokens_total", two); got != float64(r2.Tokens) {
		t.Errorf("llmesh_trainer_tokens_total = %v, want the result's %d", got, r2.Tokens)
	}
	h := series(fams, "llmesh_trainer_allreduce_seconds", two).GetHistogram()
	if h.GetSampleCount() != 24 || math.Abs(h.GetSampleSum()-r2.AllReduceSeconds) > 1e-6 {
		t.Errorf("llmesh_trainer_allreduce_seconds: %d samples of %v s in all, want 24 of %v s", h.GetSampleCount(), h.GetSampleSum(), r2.AllReduceSeconds)
	}
	c1, c2 := e.curve(t, one), e.curve(t, two)
	if len(c1) != 24 || len(c2) != 24 {
		t.Fatalf("loss logged at %d and %d steps, want 24 each", len(c1), len(c2))
	}
	// The products are split and summed in another order (and run on
	// other kernels than the plugin's): the curves agree to float32
	// rounding, amplified a little by AdamW.
	var worst float64
	for step, l1 := range c1 {
		d := math.Abs(c2[step]-l1) / l1
		worst = max(worst, d)
		if d > 0.01 {
			t.Errorf("step %d: loss %.5f tensor-parallel, %.5f on one shard (%.2g relative)", step, c2[step], l1, d)
		}
	}
	t.Logf("loss curves: largest relative difference %.2g; final validation loss %.5f (one shard), %.5f (tensor-parallel); allreduce %.0f%% of the run, %.0f%% waited for",
		worst, r1.FinalLoss, r2.FinalLoss, 100*r2.AllReduceSeconds/r2.Seconds, 100*r2.AllReduceWaitSeconds/r2.Seconds)
	if d := math.Abs(r2.FinalLoss-r1.FinalLoss) / r1.FinalLoss; d > 0.01 {
		t.Errorf("final validation loss %.5f tensor-parallel, %.5f on one shard", r2.FinalLoss, r1.FinalLoss)
	}
	// AdamW hardly sees the gradient's scale; its norm does.
	n1, n2 := metricCurve(t, e, one, "grad_norm"), metricCurve(t, e, two, "grad_norm")
	for step, g1 := range n1 {
		if d := math.Abs(n2[step]-g1) / g1; d > 0.01 {
			t.Errorf("step %d: gradient norm %.5f tensor-parallel, %.5f on one shard", step, n2[step], g1)
		}
	}
	if !(r2.FinalLoss < r2.InitialLoss-0.5) {
		t.Errorf("tensor-parallel: validation loss %.4f -> %.4f, not clearly lower", r2.InitialLoss, r2.FinalLoss)
	}

	// The registered checkpoint is the full model: it loads unsplit and
	// gives the job's final validation loss.
	rec, err := e.b.GetModel(t.Context(), "tp")
	if err != nil {
		t.Fatal(err)
	}
	w, err := e.b.GetObject(t.Context(), rec.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := transformer.ReadCheckpoint(w, transformer.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Step != 24 || ck.Optimizer == nil || ck.Optimizer.Step != 24 || ck.Model.NumParams() != int(r2.Parameters) {
		t.Errorf("checkpoint at step %d with %d parameters (optimizer %v), want step 24 and %d", ck.Step, ck.Model.NumParams(), ck.Optimizer != nil, r2.Parameters)
	}
	var sp Spec
	js, _ := json.Marshal(spec(2, "tp", ParallelTensor))
	if err := jobspec.Decode("train", js, &sp); err != nil {
		t.Fatal(err)
	}
	set, err := e.b.GetTensors(t.Context(), sp.ValRef)
	if err != nil {
		t.Fatal(err)
	}
	tt, _ := set.Get("tokens")
	u, err := tensor.Uint16s(tt)
	if err != nil {
		t.Fatal(err)
	}
	val := make([]int32, len(u))
	for i, v := range u {
		val[i] = int32(v)
	}
	// The trainer's evaluation windows (run.evaluate).
	B, T := sp.Batch, sp.SeqLen
	windows := (len(val) - 1) / T
	n := min(sp.EvalBatches*B, windows)
	stride := max(windows/n, 1)
	var sum float64
	for start := 0; start < n; start += B {
		rows := min(B, n-start)
		in, tgt := make([]int32, rows*T), make([]int32, rows*T)
		for i := range rows {
			off := (start + i) * stride * T
			copy(in[i*T:], val[off:off+T])
			copy(tgt[i*T:], val[off+1:off+T+1])
		}
		l, err := ck.Model.Loss(in, tgt, rows, T)
		if err != nil {
			t.Fatal(err)
		}
		sum += l * float64(rows*T)
	}
	if got := sum / float64(n*T); math.Abs(got-r2.FinalLoss) > 1e-4*r2.FinalLoss {
		t.Errorf("the registered checkpoint's validation loss is %.6f, the job reported %.6f", got, r2.FinalLoss)
	}
}

// metricCurve is a metric of a job per step, from its events.
func metricCurve(t *testing.T, e *env, id, name string) map[int64]float64 {
	t.Helper()
	out := map[int64]float64{}
	for _, ev := range e.events(t, id) {
		if m, ok := ev.Body.(*busv1.Event_Metric); ok && m.Metric.Name == name {
			out[m.Metric.Step] = m.Metric.Value
		}
	}
	if len(out) == 0 {
		t.Fatalf("job %s reported no %s", id, name)
	}
	return out
}

func TestSpecParallel(t *testing.T) {
	base := `"model":"m","train_ref":"` + trainRef + `","val_ref":"` + valRef + `","config":` + tpConfig
	tests := map[string]struct {
		spec    string
		wantErr string
	}{
		"tensor":               {spec: `{` + base + `,"shards":2,"parallel":"tensor"}`},
		"data":                 {spec: `{` + base + `,"shards":2,"parallel":"data"}`},
		"tensor of one":        {spec: `{` + base + `,"shards":1,"parallel":"tensor"}`},
		"unknown mode":         {spec: `{` + base + `,"shards":2,"parallel":"pipeline"}`, wantErr: `parallel "pipeline"`},
		"tensor without shard": {spec: `{` + base + `,"parallel":"tensor"}`, wantErr: "needs shards"},
		"heads not divisible":  {spec: `{` + base + `,"shards":3,"parallel":"tensor"}`, wantErr: "3 shards must divide n_head 2"},
		"elastic group":        {spec: `{` + base + `,"shards":2,"min_shards":1,"parallel":"tensor"}`, wantErr: "fixed size"},
		"bf16":                 {spec: `{` + base + `,"shards":2,"precision":"bf16","parallel":"tensor"}`, wantErr: "fp32"},
		"cuda backend":         {spec: `{` + base + `,"shards":2,"backend":"cuda","parallel":"tensor"}`, wantErr: `not on backend "cuda"`},
		"exit heads": {spec: `{` + strings.Replace(base, `"n_head":2`, `"n_head":2,"exit_layers":[1]`, 1) + `,"shards":2,"parallel":"tensor"}`,
			wantErr: "early-exit"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var s Spec
			err := jobspec.Decode("train", []byte(tc.spec), &s)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.Parallel == ParallelTensor && (s.MinShards != s.Shards || s.MaxShards != s.Shards) {
					t.Errorf("tensor-parallel group of %d: min_shards %d, max_shards %d", s.Shards, s.MinShards, s.MaxShards)
				}
				if name == "data" && s.Parallel != "" {
					t.Errorf("parallel %q, want the default", s.Parallel)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// A tensor-parallel shard that goes away mid-run makes its peer's
// allreduce time out; the group re-forms with a waiting shard from the
// last checkpoint (a full model, re-sliced) and ends where an
// uninterrupted run ends.
func TestTensorParallelShardLost(t *testing.T) {
	e := newEnvWith(t, func(c *Config) {
		c.Heartbeat = 100 * time.Millisecond
		c.TensorThreads = 1
	})
	spec := e.dpSpec(t, 2, func(s map[string]any) {
		s["config"] = json.RawMessage(tpConfig)
		s["parallel"] = ParallelTensor
		s["collective_timeout_s"] = 2
	})
	ref, errs := e.runShards(t, "tp-reference", spec, spec)
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("reference run: %v", err)
	}

	const job = "tp-lost"
	js, _ := json.Marshal(spec)
	run := func(ctx context.Context, res *Result, err *error, wg *sync.WaitGroup) {
		wg.Go(func() { *res, *err = e.s.RunShard(ctx, job, js) })
	}
	var wg sync.WaitGroup
	res := make([]Result, 3)
	errs = make([]error, 3)
	victimCtx, kill := context.WithCancel(t.Context())
	defer kill()
	run(victimCtx, &res[0], &errs[0], &wg)
	run(t.Context(), &res[1], &errs[1], &wg)
	store, err := newCkptStore(t.Context(), e.b, job, 3, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// The spare joins once the first two train (it waits: the group is
	// full), and the victim goes away after the checkpoint at step 8.
	poll := func(what string, done func() bool) {
		deadline := time.Now().Add(30 * time.Second)
		for !done() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(pollEvery)
		}
	}
	poll("the first generation", func() bool {
		m := &member{tkv: store.kv, job: job}
		p, _, err := m.plan(t.Context())
		return err == nil && p.Gen >= 1
	})
	run(t.Context(), &res[2], &errs[2], &wg)
	poll("the checkpoint at step 8", func() bool {
		_, mf, _, err := store.Latest(t.Context())
		return err == nil && mf.Step >= 8
	})
	kill()
	wg.Wait()
	if !errors.Is(errs[0], context.Canceled) {
		t.Errorf("the victim: %v, want context canceled", errs[0])
	}
	for i := 1; i < 3; i++ {
		if errs[i] != nil {
			t.Fatalf("shard %d: %v", i, errs[i])
		}
		r := res[i]
		if r.Steps != 24 || r.Generations < 2 || len(r.ResumedAt) == 0 || r.ResumedAt[0] < 8 {
			t.Errorf("shard %d: %+v, want 24 steps in a later generation resumed at step 8 or after", i, r)
		}
	}
	got, want := res[1].FinalLoss, ref[0].FinalLoss
	t.Logf("final validation loss %.6f after losing a shard, %.6f uninterrupted (resumed at %v)", got, want, res[1].ResumedAt)
	if math.Abs(got-want) > 0.02*want {
		t.Errorf("final validation loss %.5f after losing a shard, %.5f uninterrupted", got, want)
	}
}
