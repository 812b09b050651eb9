package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/pipeline"
)

const wait = 20 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// run calls fn in a goroutine until the test ends, then cancels it and
// waits for it to return.
func run(t *testing.T, what string, fn func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s = %v", what, err)
			}
		case <-time.After(wait):
			t.Errorf("%s did not return after cancel", what)
		}
	})
}

// Fixed results of the test doubles.
var (
	trainRef   = bus.RefOf([]byte("train shard"))
	valRef     = bus.RefOf([]byte("val shard"))
	fakeResult = map[string]string{
		bus.KindDataprep: `{"dataset":"p-clean","ref":"` + bus.RefOf([]byte("corpus")) + `","bytes":4321,"input_documents":12,"documents":10}`,
		bus.KindTokenize: `{"tokenizer":"p","vocab_size":296,"train_refs":["` + trainRef + `"],"val_ref":"` + valRef + `","train_tokens":900,"val_tokens":100}`,
		bus.KindTrain:    `{"parameters":12345,"steps":20,"initial_val_loss":5.5,"final_val_loss":3.25,"tokens_per_sec":1000.5,"plugin_restarts":1}`,
		bus.KindQuantize: `{"ratio":3.9}`,
		bus.KindDistill:  `{"student_val_loss":3.5}`,
		bus.KindPrune:    `{"sparsity":0.5}`,
	}
	fakeText = []string{"甲方", "应当", "付款。"}
)

// child is a job a test double received.
type child struct {
	Kind, Parent string
	Spec         map[string]any
}

// harness is a pipeline service on a real bus, with test doubles serving
// the dataprep, tokenize and train kinds and the inference subject.
type harness struct {
	b *bus.Bus

	mu       sync.Mutex
	children map[string]child      // by job id
	fail     map[string]string     // child job id -> error to fail with
	block    map[string]chan error // child job id -> receives the cause once its ctx ends
	started  chan string           // ids of blocking children that started
	requests []*busv1.GenerateRequest
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	b := bustest.New(t)
	h := &harness{b: b, children: map[string]child{}, fail: map[string]string{}, block: map[string]chan error{}, started: make(chan string, 8)}
	svc, err := pipeline.New(pipeline.Config{Bus: b})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "pipeline Run", svc.Run)
	for _, kind := range []string{bus.KindDataprep, bus.KindTokenize, bus.KindTrain, bus.KindQuantize, bus.KindDistill, bus.KindPrune} {
		run(t, kind+" double", func(ctx context.Context) error {
			return b.ServeJobs(ctx, kind, h.handler(kind), bus.WorkerOptions{})
		})
	}
	sub, err := b.Conn().QueueSubscribe("infer.>", "inference", h.generate)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := b.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) handler(kind string) bus.Handler {
	return func(ctx context.Context, job *bus.Job) ([]byte, error) {
		var spec map[string]any
		if err := json.Unmarshal(job.Spec, &spec); err != nil {
			return nil, err
		}
		h.mu.Lock()
		h.children[job.ID] = child{Kind: kind, Parent: job.Parent, Spec: spec}
		failure, block := h.fail[job.ID], h.block[job.ID]
		h.mu.Unlock()
		job.Progress("fake-"+kind, 1, 1, "fake "+kind+" ran")
		if kind == bus.KindTrain {
			job.Metric("val_loss", 3.25, 20)
			job.Log("fake train log line")
			job.Artifact("checkpoint", "m", bus.RefOf([]byte("ckpt")), 7)
		}
		if block != nil {
			h.started <- job.ID
			<-ctx.Done()
			block <- context.Cause(ctx)
			return nil, ctx.Err()
		}
		if failure != "" {
			return nil, errors.New(failure)
		}
		return []byte(fakeResult[kind]), nil
	}
}

// generate streams fakeText as chunks, or an error chunk for model
// "broken".
func (h *harness) generate(m *nats.Msg) {
	var req busv1.GenerateRequest
	if err := proto.Unmarshal(m.Data, &req); err != nil {
		return
	}
	h.mu.Lock()
	h.requests = append(h.requests, &req)
	h.mu.Unlock()
	send := func(c *busv1.GenerateChunk) {
		data, _ := proto.Marshal(c)
		_ = h.b.Conn().Publish(m.Reply, data)
	}
	if req.Model == "broken" {
		send(&busv1.GenerateChunk{Seq: 1, Error: "model broken is not loaded"})
		return
	}
	for i, text := range fakeText {
		c := &busv1.GenerateChunk{Seq: int64(i + 1), Text: text}
		if i == len(fakeText)-1 {
			c.Done, c.FinishReason, c.CompletionTokens, c.PromptTokens = true, "length", int32(len(fakeText)), 2
		}
		send(c)
	}
}

func (h *harness) child(t *testing.T, id string) child {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.children[id]
	if !ok {
		t.Fatalf("no child job %s ran", id)
	}
	return c
}

// submit starts a pipeline job from YAML under id.
func (h *harness) submit(t *testing.T, id, yaml string) {
	t.Helper()
	js, _, err := pipeline.ParseYAML([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.b.SubmitJob(testCtx(t), bus.KindPipeline, js, bus.SubmitOptions{ID: id}); err != nil {
		t.Fatal(err)
	}
}

// events follows a job's events until its done or failed event.
func (h *harness) events(t *testing.T, id string) []*busv1.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ch, err := h.b.WatchEvents(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var evs []*busv1.Event
	for ev := range ch {
		evs = append(evs, ev)
	}
	if len(evs) == 0 || (evs[len(evs)-1].Type != bus.EventDone && evs[len(evs)-1].Type != bus.EventFailed) {
		t.Fatalf("events of %s did not end in done or failed within %s (got %d)", id, wait, len(evs))
	}
	return evs
}

// finished waits until a job is in a final state.
func (h *harness) finished(t *testing.T, id string) *busv1.JobRecord {
	t.Helper()
	var rec *busv1.JobRecord
	bustest.WaitFor(t, wait, func() error {
		var err error
		rec, err = h.b.GetJob(context.Background(), id)
		if err != nil {
			return err
		}
		if !bus.Finished(rec.State) {
			return fmt.Errorf("job %s is %s", id, rec.State)
		}
		return nil
	})
	return rec
}

const pipelineYAML = `
name: p
dataset: {builtin: demo, documents: 10, seed: 3}
tokenizer: {vocab_size: 300}
train:
  model: m1
  config: {n_ctx: 16, n_embd: 32, n_layer: 1, n_head: 2}
  steps: 20
  batch: 4
  lr: 0.01
generate: {prompts: ["第一条", "The lessee"], max_tokens: 5, temperature: 0.5, top_k: 3, seed: 7}
`

func TestPipeline(t *testing.T) {
	h := newHarness(t)
	const id = "pipe1"
	h.submit(t, id, pipelineYAML)
	evs := h.events(t, id)
	rec := h.finished(t, id)
	if rec.State != busv1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("pipeline: %s %q, want succeeded", rec.State, rec.Error)
	}

	var sum pipeline.Summary
	if err := json.Unmarshal(rec.ResultJson, &sum); err != nil {
		t.Fatal(err)
	}
	sample := func(prompt string) pipeline.Sample {
		return pipeline.Sample{Prompt: prompt, Text: strings.Join(fakeText, ""), CompletionTokens: 3, FinishReason: "length"}
	}
	want := pipeline.Summary{
		Name: "p", Dataset: "p-clean", Documents: 10, CorpusBytes: 4321,
		Tokenizer: "p", VocabSize: 296, TrainTokens: 900, ValTokens: 100,
		Model: "m1", Parameters: 12345, Steps: 20, InitialValLoss: 5.5, FinalValLoss: 3.25, TokensPerSec: 1000.5, PluginRestarts: 1,
		Models: map[string]string{"train": "m1"}, SampledModel: "m1",
		Samples: []pipeline.Sample{sample("第一条"), sample("The lessee")},
		Stages: []pipeline.StageResult{
			{Stage: "dataprep", Job: id + "-dataprep", Result: json.RawMessage(fakeResult[bus.KindDataprep])},
			{Stage: "tokenize", Job: id + "-tokenize", Result: json.RawMessage(fakeResult[bus.KindTokenize])},
			{Stage: "train", Job: id + "-train", Result: json.RawMessage(fakeResult[bus.KindTrain])},
			{Stage: "generate"},
		},
	}
	ignoreTimes := cmp.Options{
		cmpopts.IgnoreFields(pipeline.Summary{}, "Seconds"),
		cmpopts.IgnoreFields(pipeline.StageResult{}, "Seconds"),
		cmp.Comparer(func(a, b json.RawMessage) bool { return string(a) == string(b) }),
	}
	if diff := cmp.Diff(want, sum, ignoreTimes); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}

	// Children get ids derived from the pipeline's, with Parent set.
	for _, kind := range []string{bus.KindDataprep, bus.KindTokenize, bus.KindTrain} {
		cid := id + "-" + kind
		if c := h.child(t, cid); c.Kind != kind || c.Parent != id {
			t.Errorf("child %s ran as kind %s with parent %q, want %s with parent %s", cid, c.Kind, c.Parent, kind, id)
		}
		crec, err := h.b.GetJob(testCtx(t), cid)
		if err != nil {
			t.Fatal(err)
		}
		if crec.Parent != id || crec.Kind != kind || crec.State != busv1.JobState_JOB_STATE_SUCCEEDED {
			t.Errorf("child record %s: kind %s, parent %q, %s", cid, crec.Kind, crec.Parent, crec.State)
		}
	}

	// Child specs come from the pipeline's stages and earlier results.
	if diff := cmp.Diff(map[string]any{
		"builtin": "demo", "documents": 10.0, "seed": 3.0, "input": "", "output": "p-clean", "min_chars": 0.0, "format": "", "shards": 0.0, "stages": nil,
	}, h.child(t, id+"-dataprep").Spec); diff != "" {
		t.Errorf("dataprep spec (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{
		"dataset": "p-clean", "tokenizer": "p", "vocab_size": 300.0, "min_frequency": 0.0, "val_fraction": 0.0,
	}, h.child(t, id+"-tokenize").Spec); diff != "" {
		t.Errorf("tokenize spec (-want +got):\n%s", diff)
	}
	train := h.child(t, id+"-train").Spec
	gotTrain := map[string]any{}
	for _, k := range []string{"model", "tokenizer", "train_refs", "val_ref", "config", "steps", "batch", "lr"} {
		gotTrain[k] = train[k]
	}
	if diff := cmp.Diff(map[string]any{
		"model": "m1", "tokenizer": "p", "train_refs": []any{trainRef}, "val_ref": valRef, "steps": 20.0, "batch": 4.0, "lr": 0.01,
		// vocab_size is the tokenize result's (296), not the requested 300.
		"config": map[string]any{"n_ctx": 16.0, "n_embd": 32.0, "n_layer": 1.0, "n_head": 2.0, "vocab_size": 296.0},
	}, gotTrain); diff != "" {
		t.Errorf("train spec (-want +got):\n%s", diff)
	}

	// Generation asked the trained model, one seed per prompt.
	h.mu.Lock()
	reqs := h.requests
	h.mu.Unlock()
	wantReqs := []*busv1.GenerateRequest{
		{Model: "m1", Prompt: "第一条", MaxTokens: 5, Temperature: 0.5, TopK: 3, Seed: 7},
		{Model: "m1", Prompt: "The lessee", MaxTokens: 5, Temperature: 0.5, TopK: 3, Seed: 8},
	}
	if diff := cmp.Diff(wantReqs, reqs, cmp.Comparer(func(a, b *busv1.GenerateRequest) bool { return proto.Equal(a, b) })); diff != "" {
		t.Errorf("generate requests (-want +got):\n%s", diff)
	}

	// The children's events are relayed onto the pipeline's own.
	var relayed []string
	for _, ev := range evs {
		if ev.JobId != id {
			t.Errorf("event %s of the pipeline carries job id %s", ev.Type, ev.JobId)
		}
		switch b := ev.Body.(type) {
		case *busv1.Event_Progress:
			if strings.HasPrefix(b.Progress.Stage, "fake-") {
				relayed = append(relayed, b.Progress.Stage+": "+b.Progress.Message)
			}
		case *busv1.Event_Metric:
			relayed = append(relayed, fmt.Sprintf("metric %s=%g@%d", b.Metric.Name, b.Metric.Value, b.Metric.Step))
		case *busv1.Event_Log:
			relayed = append(relayed, "log "+b.Log)
		case *busv1.Event_Artifact:
			relayed = append(relayed, "artifact "+b.Artifact.Kind)
		}
	}
	wantRelayed := []string{
		"fake-dataprep: fake dataprep ran",
		"fake-tokenize: fake tokenize ran",
		"fake-train: fake train ran",
		"metric val_loss=3.25@20",
		"log fake train log line",
		"artifact checkpoint",
	}
	if diff := cmp.Diff(wantRelayed, relayed); diff != "" {
		t.Errorf("relayed child events (-want +got):\n%s", diff)
	}
	if last := evs[len(evs)-1]; last.Type != bus.EventDone || string(last.GetResultJson()) != string(rec.ResultJson) {
		t.Errorf("last pipeline event %s does not carry the summary", last.Type)
	}
}

// TestPipelineCompress chains train → quantize → distill (from train) →
// prune (from distill) → generate (from the last model).
func TestPipelineCompress(t *testing.T) {
	h := newHarness(t)
	const id = "pipe-c"
	h.submit(t, id, pipelineYAML+`
quantize: {mode: w8a8, calib_batches: 2}
distill: {from: train, student: {n_ctx: 16, n_embd: 16, n_layer: 1, n_head: 2}, steps: 10, baseline: true}
prune: {sparsity: 0.5, steps: 5, output: small}
`)
	rec := h.finished(t, id)
	if rec.State != busv1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("pipeline: %s %q, want succeeded", rec.State, rec.Error)
	}
	var sum pipeline.Summary
	if err := json.Unmarshal(rec.ResultJson, &sum); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"train": "m1", "quantize": "m1-int8", "distill": "m1-student", "prune": "small"}, sum.Models); diff != "" || sum.SampledModel != "small" {
		t.Errorf("models (-want +got):\n%s; sampled %q", diff, sum.SampledModel)
	}
	var stages []string
	for _, st := range sum.Stages {
		stages = append(stages, st.Stage)
	}
	if diff := cmp.Diff([]string{"dataprep", "tokenize", "train", "quantize", "distill", "prune", "generate"}, stages); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	data := map[string]any{"train_refs": []any{trainRef}, "val_ref": valRef}
	with := func(m map[string]any) map[string]any {
		for k, v := range data {
			m[k] = v
		}
		return m
	}
	for kind, want := range map[string]map[string]any{
		bus.KindQuantize: with(map[string]any{"model": "m1", "output": "m1-int8", "mode": "w8a8", "calib_batches": 2.0}),
		bus.KindDistill: with(map[string]any{"teacher": "m1", "tokenizer": "p", "output": "m1-student", "steps": 10.0, "baseline": true,
			"student": map[string]any{"n_ctx": 16.0, "n_embd": 16.0, "n_layer": 1.0, "n_head": 2.0}}),
		bus.KindPrune: with(map[string]any{"model": "m1-student", "output": "small", "sparsity": 0.5, "steps": 5.0}),
	} {
		if diff := cmp.Diff(want, h.child(t, id+"-"+kind).Spec); diff != "" {
			t.Errorf("%s spec (-want +got):\n%s", kind, diff)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.requests) != 2 || h.requests[0].Model != "small" {
		t.Errorf("generate asked %v, want the pruned model", h.requests)
	}
}

func TestCompressStageErrors(t *testing.T) {
	base := pipelineYAML
	for name, tc := range map[string]struct{ yaml, want string }{
		"prune from quantize":  {base + "quantize: {}\nprune: {from: quantize}\n", "prune.from quantize"},
		"from a later stage":   {base + "quantize: {from: distill}\ndistill: {student: {}}\n", `quantize.from "distill"`},
		"from a missing stage": {base + "prune: {from: distill}\n", `prune.from "distill"`},
		"pipeline's field":     {base + "quantize: {model: x}\n", "model is set by the pipeline"},
		"no student":           {base + "distill: {steps: 3}\n", "distill.student"},
		"output clash":         {base + "quantize: {output: m1}\n", `"m1" is the model of stage train`},
		"generate model":       {strings.Replace(base, "generate: {", "generate: {model: prune, ", 1) + "quantize: {}\n", `generate.model "prune"`},
		"not a mapping":        {base + "prune: 3\n", "prune"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := pipeline.ParseYAML([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// A vocab_size set in train.config is kept, not replaced by the
// tokenizer's.
func TestPipelineKeepsConfigVocab(t *testing.T) {
	h := newHarness(t)
	h.submit(t, "pipe2", strings.Replace(pipelineYAML, "n_head: 2}", "n_head: 2, vocab_size: 512}", 1))
	if rec := h.finished(t, "pipe2"); rec.State != busv1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("pipeline: %s %q", rec.State, rec.Error)
	}
	cfg, _ := h.child(t, "pipe2-train").Spec["config"].(map[string]any)
	if cfg["vocab_size"] != 512.0 {
		t.Errorf("train config vocab_size = %v, want 512", cfg["vocab_size"])
	}
}

func TestPipelineFailures(t *testing.T) {
	h := newHarness(t)
	tests := map[string]struct {
		failChild string // kind of the child that fails, if any
		model     string
		want      string   // substring of the pipeline's error
		notRun    []string // kinds of children never submitted
	}{
		"dataprep fails": {failChild: bus.KindDataprep, model: "m1", want: "pipeline: dataprep job fd-dataprep JOB_STATE_FAILED: boom in dataprep", notRun: []string{bus.KindTokenize, bus.KindTrain}},
		"tokenize fails": {failChild: bus.KindTokenize, model: "m1", want: "pipeline: tokenize job ft-tokenize JOB_STATE_FAILED: boom in tokenize", notRun: []string{bus.KindTrain}},
		"train fails":    {failChild: bus.KindTrain, model: "m1", want: "pipeline: train job fr-train JOB_STATE_FAILED: boom in train"},
		"generate fails": {model: "broken", want: "pipeline: generate: generate: model broken is not loaded"},
	}
	ids := map[string]string{"dataprep fails": "fd", "tokenize fails": "ft", "train fails": "fr", "generate fails": "fg"}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id := ids[name]
			if tc.failChild != "" {
				h.mu.Lock()
				h.fail[id+"-"+tc.failChild] = "boom in " + tc.failChild
				h.mu.Unlock()
			}
			h.submit(t, id, strings.Replace(pipelineYAML, "model: m1", "model: "+tc.model, 1))
			evs := h.events(t, id)
			rec := h.finished(t, id)
			if rec.State != busv1.JobState_JOB_STATE_FAILED || !strings.Contains(rec.Error, tc.want) {
				t.Errorf("pipeline: %s %q, want failed with %q", rec.State, rec.Error, tc.want)
			}
			if last := evs[len(evs)-1]; last.Type != bus.EventFailed || last.GetError() != rec.Error {
				t.Errorf("last pipeline event: %s %q, want failed %q", last.Type, last.GetError(), rec.Error)
			}
			for _, kind := range tc.notRun {
				if _, err := h.b.GetJob(testCtx(t), id+"-"+kind); !errors.Is(err, bus.ErrNotFound) {
					t.Errorf("child %s after an earlier failure: %v, want not found", kind, err)
				}
			}
		})
	}
}

func TestPipelineCancel(t *testing.T) {
	h := newHarness(t)
	const id = "pipe-c"
	cause := make(chan error, 1)
	h.mu.Lock()
	h.block[id+"-train"] = cause
	h.mu.Unlock()
	h.submit(t, id, pipelineYAML)

	select {
	case started := <-h.started:
		if started != id+"-train" {
			t.Fatalf("blocked child %s started, want %s-train", started, id)
		}
	case <-time.After(wait):
		t.Fatalf("train child did not start within %s", wait)
	}
	if _, err := h.b.CancelJob(testCtx(t), id); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-cause:
		if !errors.Is(err, bus.ErrCancelled) {
			t.Errorf("train child's ctx ended with cause %v, want %v", err, bus.ErrCancelled)
		}
	case <-time.After(wait):
		t.Fatalf("train child still running %s after its pipeline was cancelled", wait)
	}
	if rec := h.finished(t, id+"-train"); rec.State != busv1.JobState_JOB_STATE_CANCELLED {
		t.Errorf("train child: %s %q, want cancelled", rec.State, rec.Error)
	}
	if rec := h.finished(t, id); rec.State != busv1.JobState_JOB_STATE_CANCELLED {
		t.Errorf("pipeline: %s %q, want cancelled", rec.State, rec.Error)
	}
	for _, kind := range []string{bus.KindDataprep, bus.KindTokenize} {
		if rec := h.finished(t, id+"-"+kind); rec.State != busv1.JobState_JOB_STATE_SUCCEEDED {
			t.Errorf("%s child: %s, want it left succeeded", kind, rec.State)
		}
	}
	h.mu.Lock()
	n := len(h.requests)
	h.mu.Unlock()
	if n != 0 {
		t.Errorf("a cancelled pipeline sent %d generate requests", n)
	}
}

func TestNewNeedsBus(t *testing.T) {
	if _, err := pipeline.New(pipeline.Config{}); err == nil {
		t.Error("New without a bus succeeded")
	}
}
