package finetune

import (
	"fmt"
	"strings"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/bus"
)

// Hyper are the fine-tuning and evaluation fields every compression job
// spec shares (embedded, so they sit at the spec's top level).
type Hyper struct {
	// TrainRefs and ValRef are token shard refs; empty takes those the
	// source model was trained on.
	TrainRefs []string `json:"train_refs,omitempty"`
	ValRef    string   `json:"val_ref,omitempty"`
	// Backend is the accelerator plugin to run on (default cpu).
	Backend     string  `json:"backend,omitempty"`
	Batch       int     `json:"batch,omitempty"`
	SeqLen      int     `json:"seq_len,omitempty"`
	LR          float64 `json:"lr,omitempty"`
	MinLR       float64 `json:"min_lr,omitempty"`
	Warmup      int     `json:"warmup,omitempty"`
	WeightDecay float64 `json:"weight_decay,omitempty"`
	GradClip    float64 `json:"grad_clip,omitempty"`
	// EvalBatches is how many validation batches every loss is measured
	// on (the same windows for every model of the job).
	EvalBatches int    `json:"eval_batches,omitempty"`
	Seed        uint64 `json:"seed,omitempty"`
}

// Check validates the fields and fills defaults; steps is the job's
// number of fine-tuning steps (for the warmup default). seq_len defaults
// to and is checked against the model context later (CheckSeqLen), when
// the model is known.
func (h *Hyper) Check(steps int, defLR float64) error {
	if h.Backend == "" {
		h.Backend = "cpu"
	}
	if strings.ContainsAny(h.Backend, "/\\.") || h.Backend != strings.TrimSpace(h.Backend) {
		return fmt.Errorf("backend %q is not a plain name", h.Backend)
	}
	for _, r := range h.TrainRefs {
		if err := bus.ValidRef(r); err != nil {
			return fmt.Errorf("train_refs: %w", err)
		}
	}
	if len(h.TrainRefs) > 1024 {
		return fmt.Errorf("train_refs lists %d shards; the limit is 1024", len(h.TrainRefs))
	}
	if h.ValRef != "" {
		if err := bus.ValidRef(h.ValRef); err != nil {
			return fmt.Errorf("val_ref: %w", err)
		}
	}
	if h.Batch == 0 {
		h.Batch = 8
	}
	if h.EvalBatches == 0 {
		h.EvalBatches = 8
	}
	if h.LR == 0 {
		h.LR = defLR
	}
	if h.MinLR == 0 {
		h.MinLR = h.LR / 10
	}
	if h.Warmup == 0 {
		h.Warmup = steps / 10
	}
	if h.WeightDecay == 0 {
		h.WeightDecay = 0.1
	}
	if h.GradClip == 0 {
		h.GradClip = 1
	}
	switch {
	case h.Batch < 1 || h.Batch > 4096:
		return fmt.Errorf("batch %d out of range [1, 4096]", h.Batch)
	case h.SeqLen < 0:
		return fmt.Errorf("seq_len %d is negative", h.SeqLen)
	case h.EvalBatches < 1 || h.EvalBatches > 1024:
		return fmt.Errorf("eval_batches %d out of range [1, 1024]", h.EvalBatches)
	case !(h.LR > 0 && h.LR <= 1) || !(h.MinLR >= 0 && h.MinLR <= h.LR):
		return fmt.Errorf("lr %g or min_lr %g out of range (0 < min_lr <= lr <= 1)", h.LR, h.MinLR)
	case h.Warmup < 0 || h.Warmup > max(steps, 0):
		return fmt.Errorf("warmup %d out of range [0, steps %d]", h.Warmup, steps)
	case !(h.WeightDecay >= 0 && h.WeightDecay < 10) || !(h.GradClip >= 0 && h.GradClip < 1e6):
		return fmt.Errorf("weight_decay %g or grad_clip %g out of range", h.WeightDecay, h.GradClip)
	}
	return nil
}

// CheckSeqLen defaults seq_len to the model context and checks it.
func (h *Hyper) CheckSeqLen(nctx int) error {
	if h.SeqLen == 0 {
		h.SeqLen = nctx
	}
	if h.SeqLen > nctx {
		return fmt.Errorf("seq_len %d exceeds the model context n_ctx %d", h.SeqLen, nctx)
	}
	return nil
}

// Schedule is the warmup + cosine schedule over steps.
func (h *Hyper) Schedule(steps int) Schedule {
	return Schedule{LR: h.LR, MinLR: h.MinLR, Warmup: h.Warmup, Steps: steps}
}

// Optimizer is AdamW with the spec's weight decay and clipping.
func (h *Hyper) Optimizer() *accel.OptimizerConfig {
	o := accel.DefaultOptimizer()
	o.WeightDecay, o.GradClip = float32(h.WeightDecay), float32(h.GradClip)
	return &o
}

// Refs fills the token shard refs from the source model's when the spec
// has none, and says what is missing.
func (h *Hyper) Refs(src *Source, needTrain bool) error {
	if len(h.TrainRefs) == 0 {
		h.TrainRefs = src.TrainRefs
	}
	if h.ValRef == "" {
		h.ValRef = src.ValRef
	}
	if h.ValRef == "" {
		return fmt.Errorf("val_ref is required: the job that made %s does not name its validation tokens", src.what())
	}
	if needTrain && len(h.TrainRefs) == 0 {
		return fmt.Errorf("train_refs is required for fine-tuning: the job that made %s does not name its training tokens", src.what())
	}
	return nil
}
