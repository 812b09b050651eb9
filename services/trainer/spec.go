package trainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/llmesh/llmesh/accel/transformer"
	"github.com/llmesh/llmesh/bus"
)

// Spec is the spec of a train job.
type Spec struct {
	// Model is the name the trained model is registered under.
	Model string `json:"model"`
	// Tokenizer is the registered tokenizer the token shards were made with.
	Tokenizer string `json:"tokenizer"`
	// TrainRef and ValRef are the object refs of the token shards; a job
	// may instead list several training shards in TrainRefs, which are read
	// in order as one stream.
	TrainRef  string   `json:"train_ref,omitempty"`
	TrainRefs []string `json:"train_refs,omitempty"`
	ValRef    string   `json:"val_ref"`
	// Config is the transformer config (accel/transformer.Config as JSON).
	Config json.RawMessage `json:"config"`
	// Backend is the accelerator plugin to train on.
	Backend string `json:"backend,omitempty"`

	Steps           int     `json:"steps,omitempty"`
	Batch           int     `json:"batch,omitempty"`
	SeqLen          int     `json:"seq_len,omitempty"`
	LR              float64 `json:"lr,omitempty"`
	MinLR           float64 `json:"min_lr,omitempty"`
	Warmup          int     `json:"warmup,omitempty"`
	WeightDecay     float64 `json:"weight_decay,omitempty"`
	GradClip        float64 `json:"grad_clip,omitempty"`
	EvalEvery       int     `json:"eval_every,omitempty"`
	EvalBatches     int     `json:"eval_batches,omitempty"`
	CheckpointEvery int     `json:"checkpoint_every,omitempty"`
	LogEvery        int     `json:"log_every,omitempty"`
	Seed            uint64  `json:"seed,omitempty"`
	// MaxRestarts bounds how often a dead plugin is restarted in one job.
	MaxRestarts int `json:"max_restarts,omitempty"`

	cfg transformer.Config
}

// Validate checks the spec and fills in defaults.
func (s *Spec) Validate() error {
	if err := bus.ValidName(s.Model); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if s.Tokenizer != "" {
		if _, _, err := bus.ParseTokenizerRef(s.Tokenizer); err != nil {
			return err
		}
	}
	if s.TrainRef != "" && len(s.TrainRefs) > 0 {
		return errors.New("set train_ref or train_refs, not both")
	}
	if s.TrainRef != "" {
		s.TrainRefs = []string{s.TrainRef}
	}
	if len(s.TrainRefs) == 0 || s.ValRef == "" {
		return errors.New("train_ref (or train_refs) and val_ref (token shard refs) are required")
	}
	if len(s.TrainRefs) > 1024 {
		return fmt.Errorf("train_refs lists %d shards; the limit is 1024", len(s.TrainRefs))
	}
	if len(s.Config) == 0 {
		return errors.New("config (the transformer config) is required")
	}
	cfg, err := transformer.ParseConfig(s.Config)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	s.cfg = cfg
	if s.Backend == "" {
		s.Backend = "cpu"
	}
	if strings.ContainsAny(s.Backend, "/\\.") {
		return fmt.Errorf("backend %q is not a plain name", s.Backend)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&s.Steps, 200)
	def(&s.Batch, 8)
	def(&s.SeqLen, cfg.NCtx)
	def(&s.EvalBatches, 4)
	def(&s.LogEvery, 10)
	def(&s.MaxRestarts, 3)
	def(&s.Warmup, s.Steps/20)
	def(&s.EvalEvery, max(s.Steps/8, 1))
	def(&s.CheckpointEvery, max(s.Steps/4, 1))
	for name, v := range map[string]int{"steps": s.Steps, "batch": s.Batch, "seq_len": s.SeqLen, "eval_every": s.EvalEvery,
		"eval_batches": s.EvalBatches, "checkpoint_every": s.CheckpointEvery, "log_every": s.LogEvery, "max_restarts": s.MaxRestarts} {
		if v < 1 {
			return fmt.Errorf("%s %d must be positive", name, v)
		}
	}
	if s.Steps > 10_000_000 || s.Batch > 4096 || s.EvalBatches > 1024 {
		return fmt.Errorf("steps %d, batch %d or eval_batches %d above their limits (10000000, 4096, 1024)", s.Steps, s.Batch, s.EvalBatches)
	}
	if s.SeqLen > cfg.NCtx {
		return fmt.Errorf("seq_len %d exceeds the model context n_ctx %d", s.SeqLen, cfg.NCtx)
	}
	if s.Warmup < 0 || s.Warmup > s.Steps {
		return fmt.Errorf("warmup %d out of range [0, steps %d]", s.Warmup, s.Steps)
	}
	if s.LR == 0 {
		s.LR = 3e-3
	}
	if s.MinLR == 0 {
		s.MinLR = s.LR / 10
	}
	if s.WeightDecay == 0 {
		s.WeightDecay = 0.1
	}
	if s.GradClip == 0 {
		s.GradClip = 1
	}
	if s.LR <= 0 || s.LR > 1 || s.MinLR < 0 || s.MinLR > s.LR || s.WeightDecay < 0 || s.GradClip < 0 {
		return fmt.Errorf("lr %g, min_lr %g, weight_decay %g or grad_clip %g out of range", s.LR, s.MinLR, s.WeightDecay, s.GradClip)
	}
	return nil
}
