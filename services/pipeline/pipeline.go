package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// Config configures the service.
type Config struct {
	Bus    *bus.Bus
	Logger *slog.Logger
}

// Service orchestrates pipelines.
type Service struct {
	bus *bus.Bus
	log *slog.Logger
}

// New validates cfg and builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Bus == nil {
		return nil, errors.New("pipeline: config needs a bus")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{bus: cfg.Bus, log: log.With("service", "pipeline")}, nil
}

// Run serves pipeline jobs until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	return s.bus.ServeJobs(ctx, "pipeline", s.handle, bus.WorkerOptions{AckWait: time.Minute, Concurrency: 4})
}

// StageResult is one stage of the summary.
type StageResult struct {
	Stage   string          `json:"stage"`
	Job     string          `json:"job,omitempty"`
	Seconds float64         `json:"seconds"`
	Result  json.RawMessage `json:"result,omitempty"`
}

// Sample is one generated text.
type Sample struct {
	Prompt           string `json:"prompt"`
	Text             string `json:"text"`
	CompletionTokens int32  `json:"completion_tokens"`
	FinishReason     string `json:"finish_reason"`
}

// Summary is what a pipeline job reports.
type Summary struct {
	Name           string  `json:"name"`
	Dataset        string  `json:"dataset"`
	Documents      int64   `json:"documents"`
	CorpusBytes    int64   `json:"corpus_bytes"`
	Tokenizer      string  `json:"tokenizer"`
	VocabSize      int64   `json:"vocab_size"`
	TrainTokens    int64   `json:"train_tokens"`
	ValTokens      int64   `json:"val_tokens"`
	Model          string  `json:"model"`
	Parameters     int64   `json:"parameters"`
	Steps          int64   `json:"steps"`
	InitialValLoss float64 `json:"initial_val_loss"`
	FinalValLoss   float64 `json:"final_val_loss"`
	TokensPerSec   float64 `json:"tokens_per_sec"`
	PluginRestarts int64   `json:"plugin_restarts"`
	// Models maps each stage that made a model (train, quantize, distill,
	// prune) to its registered name; SampledModel is the one sampled.
	Models       map[string]string `json:"models"`
	SampledModel string            `json:"sampled_model"`
	Samples      []Sample          `json:"samples"`
	Stages       []StageResult     `json:"stages"`
	Seconds      float64           `json:"seconds"`
}

func (s *Service) handle(ctx context.Context, job *bus.Job) ([]byte, error) {
	spec, err := ParseSpec(job.Spec)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	sum := Summary{Name: spec.Name, Dataset: spec.Dataset.Output, Tokenizer: spec.Tokenizer.Name, Model: spec.Train.Model}

	// dataprep
	d := spec.Dataset
	var prep struct {
		Documents int64 `json:"documents"`
		Bytes     int64 `json:"bytes"`
	}
	if err := s.stage(ctx, job, &sum, "dataprep", map[string]any{
		"builtin": d.Builtin, "documents": d.Documents, "seed": d.Seed, "input": d.Input, "output": d.Output, "min_chars": d.MinChars,
		"stages": d.Stages, "shards": d.Shards, "format": d.Format,
	}, &prep); err != nil {
		return nil, err
	}
	sum.Documents, sum.CorpusBytes = prep.Documents, prep.Bytes

	// tokenize
	t := spec.Tokenizer
	var tok struct {
		VocabSize   int64    `json:"vocab_size"`
		TrainRefs   []string `json:"train_refs"`
		ValRef      string   `json:"val_ref"`
		TrainTokens int64    `json:"train_tokens"`
		ValTokens   int64    `json:"val_tokens"`
	}
	if err := s.stage(ctx, job, &sum, "tokenize", map[string]any{
		"dataset": d.Output, "tokenizer": t.Name, "vocab_size": t.VocabSize, "min_frequency": t.MinFrequency, "val_fraction": t.ValFraction,
	}, &tok); err != nil {
		return nil, err
	}
	sum.VocabSize, sum.TrainTokens, sum.ValTokens = tok.VocabSize, tok.TrainTokens, tok.ValTokens

	// train
	tr := spec.Train
	cfg := map[string]any{}
	for k, v := range tr.Config {
		cfg[k] = v
	}
	if _, ok := cfg["vocab_size"]; !ok {
		cfg["vocab_size"] = tok.VocabSize
	}
	trainSpec := map[string]any{
		"model": tr.Model, "tokenizer": t.Name, "train_refs": tok.TrainRefs, "val_ref": tok.ValRef, "config": cfg,
		"backend": tr.Backend, "steps": tr.Steps, "batch": tr.Batch, "seq_len": tr.SeqLen, "lr": tr.LR, "min_lr": tr.MinLR,
		"warmup": tr.Warmup, "weight_decay": tr.WeightDecay, "grad_clip": tr.GradClip, "eval_every": tr.EvalEvery,
		"eval_batches": tr.EvalBatches, "checkpoint_every": tr.CheckpointEvery, "log_every": tr.LogEvery, "seed": tr.Seed,
		"max_restarts": tr.MaxRestarts,
	}
	var trained struct {
		Parameters   int64   `json:"parameters"`
		Steps        int64   `json:"steps"`
		Initial      float64 `json:"initial_val_loss"`
		Final        float64 `json:"final_val_loss"`
		TokensPerSec float64 `json:"tokens_per_sec"`
		Restarts     int64   `json:"plugin_restarts"`
	}
	if err := s.stage(ctx, job, &sum, "train", trainSpec, &trained); err != nil {
		return nil, err
	}
	sum.Parameters, sum.Steps, sum.InitialValLoss, sum.FinalValLoss = trained.Parameters, trained.Steps, trained.Initial, trained.Final
	sum.TokensPerSec, sum.PluginRestarts = trained.TokensPerSec, trained.Restarts

	// quantize, distill, prune: each from the model of the stage it names
	models := map[string]string{"train": tr.Model}
	for _, name := range compressStages {
		c := spec.stage(name)
		if c == nil {
			continue
		}
		js := map[string]any{}
		for k, v := range c.Job {
			js[k] = v
		}
		js["output"], js["train_refs"], js["val_ref"] = c.Output, tok.TrainRefs, tok.ValRef
		switch name {
		case "distill":
			js["teacher"], js["tokenizer"] = models[c.From], t.Name
		default:
			js["model"] = models[c.From]
		}
		var out struct{}
		if err := s.stage(ctx, job, &sum, name, js, &out); err != nil {
			return nil, err
		}
		models[name] = c.Output
	}
	sum.Models = models
	sum.SampledModel = models[spec.Generate.Model]

	// generate
	g := spec.Generate
	prompts := g.Prompts
	if len(prompts) == 0 {
		prompts = []string{""}
	}
	genStart := time.Now()
	for i, p := range prompts {
		job.Progress("generate", int64(i), int64(len(prompts)), "sampling from "+sum.SampledModel)
		smp := Sample{Prompt: p}
		err := s.bus.Generate(ctx, &busv1.GenerateRequest{
			Model: sum.SampledModel, Prompt: p, MaxTokens: g.MaxTokens, Temperature: g.Temperature, TopK: g.TopK, Seed: g.Seed + uint64(i),
		}, func(c *busv1.GenerateChunk) error {
			smp.Text += c.Text
			if c.Done {
				smp.CompletionTokens, smp.FinishReason = c.CompletionTokens, c.FinishReason
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("pipeline: generate: %w", err)
		}
		sum.Samples = append(sum.Samples, smp)
	}
	job.Progress("generate", int64(len(prompts)), int64(len(prompts)), "")
	sum.Stages = append(sum.Stages, StageResult{Stage: "generate", Seconds: time.Since(genStart).Seconds()})
	sum.Seconds = time.Since(start).Seconds()
	return json.Marshal(sum)
}

// stage submits one child job, relays its events and decodes its result.
func (s *Service) stage(ctx context.Context, job *bus.Job, sum *Summary, kind string, spec map[string]any, result any) error {
	start := time.Now()
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	childID := job.ID + "-" + kind
	job.Progress(kind, 0, 0, "submitted "+childID)
	if _, err := s.bus.SubmitJob(ctx, kind, specJSON, bus.SubmitOptions{ID: childID, Parent: job.ID}); err != nil {
		return fmt.Errorf("pipeline: submit %s: %w", kind, err)
	}
	events, err := s.bus.WatchEvents(ctx, childID)
	if err != nil {
		return fmt.Errorf("pipeline: watch %s: %w", childID, err)
	}
	var failure string
	for ev := range events {
		switch b := ev.Body.(type) {
		case *busv1.Event_Progress:
			job.Progress(b.Progress.Stage, b.Progress.Done, b.Progress.Total, b.Progress.Message)
		case *busv1.Event_Metric:
			job.Metric(b.Metric.Name, b.Metric.Value, b.Metric.Step)
		case *busv1.Event_Log:
			job.Log(b.Log)
		case *busv1.Event_Artifact:
			job.Artifact(b.Artifact.Kind, b.Artifact.Name, b.Artifact.Ref, b.Artifact.Size)
		case *busv1.Event_Error:
			failure = b.Error
		}
	}
	if err := ctx.Err(); err != nil {
		// The pipeline was cancelled or its worker is stopping: stop the
		// child too, unless this worker is merely shutting down.
		if context.Cause(ctx) != nil && errors.Is(context.Cause(ctx), bus.ErrCancelled) {
			_, _ = s.bus.CancelJob(context.WithoutCancel(ctx), childID)
		}
		return err
	}
	rec, err := s.bus.GetJob(ctx, childID)
	if err != nil {
		return err
	}
	if rec.State != busv1.JobState_JOB_STATE_SUCCEEDED {
		if failure == "" {
			failure = rec.Error
		}
		return fmt.Errorf("pipeline: %s job %s %s: %s", kind, childID, rec.State, failure)
	}
	if err := json.Unmarshal(rec.ResultJson, result); err != nil {
		return fmt.Errorf("pipeline: %s result: %w", kind, err)
	}
	sum.Stages = append(sum.Stages, StageResult{Stage: kind, Job: childID, Seconds: time.Since(start).Seconds(), Result: rec.ResultJson})
	return nil
}
