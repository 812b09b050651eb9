package trainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/llmesh/llmesh/accel"

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

	Steps       int     `json:"steps,omitempty"`
	Batch       int     `json:"batch,omitempty"`
	SeqLen      int     `json:"seq_len,omitempty"`
	LR          float64 `json:"lr,omitempty"`
	MinLR       float64 `json:"min_lr,omitempty"`
	Warmup      int     `json:"warmup,omitempty"`
	WeightDecay float64 `json:"weight_decay,omitempty"`
	GradClip    float64 `json:"grad_clip,omitempty"`
	// LabelSmoothing in [0, 1) mixes the uniform distribution into the
	// training targets.
	LabelSmoothing float64 `json:"label_smoothing,omitempty"`
	// Precision is "fp32" (default) or "bf16" mixed precision (fp32 master
	// weights); "fp16" needs a backend with loss scaling (cuda).
	Precision       string `json:"precision,omitempty"`
	EvalEvery       int    `json:"eval_every,omitempty"`
	EvalBatches     int    `json:"eval_batches,omitempty"`
	CheckpointEvery int    `json:"checkpoint_every,omitempty"`
	LogEvery        int    `json:"log_every,omitempty"`
	Seed            uint64 `json:"seed,omitempty"`
	// MaxRestarts bounds how often a dead plugin is restarted in one job
	// (with shards: how often the ring is re-formed after a failure).
	MaxRestarts int `json:"max_restarts,omitempty"`

	// Shards, when set, trains data-parallel: that many shards (this job
	// and shards-1 train-shard jobs, or any process calling RunShard) join,
	// get ranks, each computes its slice of every global batch, and the
	// gradients are all-reduced over the bus. 1 is a ring of one.
	Shards int `json:"shards,omitempty"`
	// MinShards is the fewest shards a ring re-formed after a failure may
	// have (default 1); MaxShards the most, counting shards that join late
	// at a checkpoint boundary (default shards).
	MinShards int `json:"min_shards,omitempty"`
	MaxShards int `json:"max_shards,omitempty"`
	// JoinTimeout is how long shards wait for each other (seconds,
	// default 60); CollectiveTimeout bounds each wait inside an allreduce
	// (seconds, default 10): a dead peer is noticed within it.
	JoinTimeout       float64 `json:"join_timeout_s,omitempty"`
	CollectiveTimeout float64 `json:"collective_timeout_s,omitempty"`
	// BucketMB is the size of a data-parallel gradient bucket in MiB (0:
	// DefaultBucketMB, 1): each shard all-reduces its gradients bucket by
	// bucket as its backward pass finishes them, from the last layer's
	// down, while the pass goes on. The leading shard's value holds for
	// the ring.
	BucketMB float64 `json:"bucket_mb,omitempty"`
	// KeepCheckpoints is how many checkpoints are kept (default 3).
	KeepCheckpoints int `json:"keep_checkpoints,omitempty"`
	// GradAccum is how many micro-batches of Batch rows make one step
	// (default 1): the global batch is Batch*GradAccum rows.
	GradAccum int `json:"grad_accum,omitempty"`
	// Schedule is "cosine" (warmup, then cosine to min_lr; the default) or
	// "sgdr" (warmup, then cosine restarts every SGDRPeriod steps, the
	// period growing by SGDRMult).
	Schedule   string  `json:"schedule,omitempty"`
	SGDRPeriod int     `json:"sgdr_period,omitempty"`
	SGDRMult   float64 `json:"sgdr_mult,omitempty"`
	// Patience stops training early after that many evaluations without a
	// lower validation loss (0: never).
	Patience int `json:"patience,omitempty"`
	// Parallel is "data" (the default: each shard trains its rows of the
	// batch and the gradients are all-reduced) or "tensor": the shards
	// split every layer (attention heads, MLP columns) and all-reduce
	// activations (see tp.go). Tensor parallelism needs shards to divide
	// n_head and 4·n_embd, a fixed ring (min_shards = max_shards = shards),
	// fp32 and no early-exit heads.
	Parallel string `json:"parallel,omitempty"`

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
	if err := s.validateParallel(); err != nil {
		return err
	}
	if err := s.validateShards(); err != nil {
		return err
	}
	if !(s.LabelSmoothing >= 0 && s.LabelSmoothing < 1) {
		return fmt.Errorf("label_smoothing %g out of range [0, 1)", s.LabelSmoothing)
	}
	switch s.Precision {
	case "", accel.PrecisionFP32, accel.PrecisionBF16, accel.PrecisionFP16:
	default:
		return fmt.Errorf("precision %q is not fp32, bf16 or fp16", s.Precision)
	}
	if s.LR <= 0 || s.LR > 1 || s.MinLR < 0 || s.MinLR > s.LR || s.WeightDecay < 0 || s.GradClip < 0 {
		return fmt.Errorf("lr %g, min_lr %g, weight_decay %g or grad_clip %g out of range", s.LR, s.MinLR, s.WeightDecay, s.GradClip)
	}
	return nil
}

// validateShards checks and defaults the data-parallel fields.
func (s *Spec) validateShards() error {
	if s.Shards == 0 {
		if s.MinShards != 0 || s.MaxShards != 0 {
			return errors.New("min_shards and max_shards need shards")
		}
	} else {
		if s.MinShards == 0 {
			s.MinShards = 1
		}
		if s.MaxShards == 0 {
			s.MaxShards = s.Shards
		}
	}
	if s.Shards < 0 || s.Shards > 256 || s.MinShards < 0 || s.MinShards > s.Shards || s.MaxShards < s.Shards || s.MaxShards > 256 {
		return fmt.Errorf("shards %d, min_shards %d, max_shards %d: want 1 <= min_shards <= shards <= max_shards <= 256", s.Shards, s.MinShards, s.MaxShards)
	}
	if s.JoinTimeout == 0 {
		s.JoinTimeout = 60
	}
	if s.CollectiveTimeout == 0 {
		s.CollectiveTimeout = 10
	}
	if s.KeepCheckpoints == 0 {
		s.KeepCheckpoints = 3
	}
	if s.GradAccum == 0 {
		s.GradAccum = 1
	}
	if s.Schedule == "" {
		s.Schedule = "cosine"
	}
	switch {
	case s.JoinTimeout < 0 || s.JoinTimeout > 86400 || s.CollectiveTimeout < 0 || s.CollectiveTimeout > 3600:
		return fmt.Errorf("join_timeout_s %g or collective_timeout_s %g out of range (0, 86400] and (0, 3600]", s.JoinTimeout, s.CollectiveTimeout)
	case !(s.BucketMB >= 0 && s.BucketMB <= 1024):
		return fmt.Errorf("bucket_mb %g out of range (0, 1024]", s.BucketMB)
	case s.KeepCheckpoints < 1 || s.KeepCheckpoints > 100:
		return fmt.Errorf("keep_checkpoints %d out of range [1, 100]", s.KeepCheckpoints)
	case s.GradAccum < 1 || s.GradAccum > 1024 || s.Batch*s.GradAccum > 65536:
		return fmt.Errorf("grad_accum %d out of range [1, 1024] (batch x grad_accum at most 65536)", s.GradAccum)
	case s.Patience < 0:
		return fmt.Errorf("patience %d is negative", s.Patience)
	}
	switch s.Schedule {
	case "cosine":
		if s.SGDRPeriod != 0 || s.SGDRMult != 0 {
			return errors.New("sgdr_period and sgdr_mult need schedule \"sgdr\"")
		}
	case "sgdr":
		if s.SGDRPeriod == 0 {
			s.SGDRPeriod = max((s.Steps-s.Warmup)/4, 1)
		}
		if s.SGDRMult == 0 {
			s.SGDRMult = 1
		}
		if s.SGDRPeriod < 1 || s.SGDRMult < 1 || s.SGDRMult > 16 {
			return fmt.Errorf("sgdr_period %d or sgdr_mult %g out of range (period >= 1, 1 <= mult <= 16)", s.SGDRPeriod, s.SGDRMult)
		}
	default:
		return fmt.Errorf("schedule %q: want \"cosine\" or \"sgdr\"", s.Schedule)
	}
	return nil
}
