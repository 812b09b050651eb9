package accel

import (
	"context"
	"errors"
	"fmt"
)

// ProtocolVersion is the accelerator plugin protocol version negotiated in
// the go-plugin handshake. A plugin built for another version is refused.
// Version 2 added the compression fields (QAT, sparsity, teacher targets,
// top-k, activation statistics) and gradients through shared memory: a
// version-1 plugin would silently ignore them, and train on its own
// gradients instead of the all-reduced ones it was sent. Version 3 added
// TrainStepStream (gradients reported range by range while the backward
// pass runs): a version-2 plugin lacks it.
const ProtocolVersion = 3

// Sentinel errors. Errors that cross the plugin boundary are mapped back to
// these, so callers test them with errors.Is on either side.
var (
	// ErrNotImplemented: the backend does not implement the call (the tpu
	// stub answers every compute call with it).
	ErrNotImplemented = errors.New("accel: not implemented")
	// ErrUnknownModel: no model with that id is loaded in the backend.
	ErrUnknownModel = errors.New("accel: unknown model")
	// ErrInvalidArgument: the request is malformed (shapes, ids, config).
	ErrInvalidArgument = errors.New("accel: invalid argument")
	// ErrPluginDied: the plugin process exited or stopped answering; state
	// it held (loaded models, gradients) is gone.
	ErrPluginDied = errors.New("accel: plugin died")
	// ErrPluginRestarted: the call failed because the plugin died, and the
	// host has started a fresh one. Loaded models must be loaded again.
	ErrPluginRestarted = errors.New("accel: plugin restarted")
)

// Backend is the accelerator contract: coarse-grained calls that load a
// model, train it a micro-batch at a time, update it, evaluate it, decode
// with it and save it. The plugin host returns one per launched plugin; the
// runtime package implements it in-process.
type Backend interface {
	Info(ctx context.Context) (Info, error)
	LoadModel(ctx context.Context, req LoadRequest) (LoadResult, error)
	TrainStep(ctx context.Context, req TrainStepRequest) (TrainStepResult, error)
	ApplyUpdate(ctx context.Context, req UpdateRequest) (UpdateResult, error)
	Evaluate(ctx context.Context, req EvalRequest) (EvalResult, error)
	DecodeStep(ctx context.Context, req DecodeRequest) (DecodeResult, error)
	SaveWeights(ctx context.Context, req SaveRequest) (SaveResult, error)
	Unload(ctx context.Context, modelID string) error
}

// Info describes a backend.
type Info struct {
	Name            string
	Version         string
	Device          string
	Features        []string
	Stub            bool
	ProtocolVersion int
}

// OptimizerConfig configures AdamW for a model that will be trained.
type OptimizerConfig struct {
	Beta1       float32
	Beta2       float32
	Eps         float32
	WeightDecay float32
	GradClip    float32 // global norm; 0 disables clipping
	// LabelSmoothing mixes the uniform distribution into the training
	// targets: 0 disables it; it must be below 1.
	LabelSmoothing float32
	// Precision of training: PrecisionFP32 (default, "") or PrecisionBF16
	// (bf16 operands, fp32 accumulation and master weights). A backend
	// that cannot train in a precision refuses it with ErrInvalidArgument.
	Precision string
	// QAT is quantization-aware training: the forward pass sees every
	// weight matrix rounded to symmetric per-output-channel INT8 (fake
	// quantization); the gradient passes straight through to the FP32
	// master weights.
	QAT bool
	// KeepSparsity keeps every weight that is exactly zero when the model
	// is loaded at zero through training: the mask of a pruned model
	// during its fine-tune.
	KeepSparsity bool
}

// Training precisions.
const (
	PrecisionFP32 = "fp32"
	PrecisionBF16 = "bf16"
	PrecisionFP16 = "fp16"
)

// DefaultOptimizer is AdamW with the usual GPT settings.
func DefaultOptimizer() OptimizerConfig {
	return OptimizerConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, GradClip: 1.0}
}

// LoadRequest creates a model in the backend under ModelID.
type LoadRequest struct {
	ModelID    string
	ConfigJSON []byte // transformer.Config as JSON
	Weights    []byte // safetensors; empty means initialise from Seed
	Seed       uint64
	Optimizer  *OptimizerConfig // nil for inference-only models
}

// LoadResult reports the loaded model.
type LoadResult struct {
	Parameters uint64
	Step       int64 // optimizer step restored from Weights
}

// TrainStepRequest is one micro-batch: Batch rows of SeqLen inputs and the
// targets that follow them, row-major.
type TrainStepRequest struct {
	ModelID         string
	Batch, SeqLen   int
	Inputs, Targets []int32
	ReturnGradients bool
	// Teacher, when set, makes the step a distillation step: the loss is
	// Alpha·T²·KL(teacher_T ‖ student_T) + (1−Alpha)·CE(targets).
	Teacher *SoftTargets
	// GradientsReady, when set with ReturnGradients, is called while the
	// step runs with ranges [lo, hi) of the flat gradient vector that are
	// final, and vals, their values (valid only during the call: copy what
	// you keep). Every gradient is in exactly one range, and every call
	// has returned before TrainStep returns; calls come one at a time. A
	// backend that streams them calls it layer by layer during the
	// backward pass (last layers first), so that the caller can start
	// communicating; one that cannot calls it once with the whole vector
	// at the end (see ReportGradients). It is not sent across the plugin
	// boundary: the host calls it as the plugin's events arrive. A failed
	// step may have called it for some ranges.
	GradientsReady func(lo, hi int, vals []float32) `json:"-"`
}

// ReportGradients calls req.GradientsReady, when set, once with the whole
// of grads: what a backend that cannot report ranges while it computes
// does before TrainStep returns.
func ReportGradients(req TrainStepRequest, grads []float32) {
	if req.GradientsReady != nil && req.ReturnGradients && len(grads) > 0 {
		req.GradientsReady(0, len(grads), grads)
	}
}

// SoftTargets are a teacher's top-K logits for every position of a
// micro-batch (Batch·SeqLen·K values each, position-major, best first).
// The teacher's distribution at temperature T is the softmax over its K
// logits; the rest of the vocabulary has probability zero.
type SoftTargets struct {
	K           int
	Indices     []int32
	Logits      []float32
	Temperature float32 // > 0
	Alpha       float32 // in [0, 1]
}

// TrainStepResult holds the micro-batch loss and, if asked, its gradients
// (flat, in parameter order).
type TrainStepResult struct {
	Loss      float64
	Gradients []float32
}

// UpdateRequest applies one optimizer step.
type UpdateRequest struct {
	ModelID      string
	LearningRate float32
	// Gradients replaces the accumulated gradients when set. It is the
	// caller's for the length of the call only (across the plugin boundary
	// it may be a view of shared memory): a backend copies what it keeps.
	Gradients []float32
}

// UpdateResult reports the step.
type UpdateResult struct {
	GradNorm float64
	Step     int64
}

// EvalRequest evaluates the mean cross-entropy of a batch.
type EvalRequest struct {
	ModelID         string
	Batch, SeqLen   int
	Inputs, Targets []int32
	// TopK > 0 also returns each position's K largest logits (a teacher's
	// soft targets for distillation).
	TopK int
	// ActivationStats also returns the largest |x| that entered each
	// linear layer (activation calibration for W8A8 quantization).
	ActivationStats bool
}

// MaxTopK bounds EvalRequest.TopK and SoftTargets.K.
const MaxTopK = 256

// EvalResult is the mean loss over Tokens targets.
type EvalResult struct {
	Loss   float64
	Tokens int64
	// TopKIndices and TopKLogits hold Batch·SeqLen·TopK entries,
	// position-major, largest logit first (only with TopK).
	TopKIndices []int32
	TopKLogits  []float32
	// ActivationMax maps a linear layer's weight tensor name to the
	// largest |x| of its inputs (only with ActivationStats).
	ActivationMax map[string]float32
}

// DecodeRequest asks for the next-token logits of each sequence: one
// batched decode step.
//
// Without CacheIDs every entry of Sequences is a whole sequence and is
// recomputed from scratch. With CacheIDs (parallel to Sequences) the
// backend keeps a KV cache per id: Sequences[i] holds the tokens to append
// to sequence CacheIDs[i] — the whole prompt for an id it has not seen (the
// prefill), usually one sampled token afterwards. Prefills and decodes mix
// freely in one step. Release frees cached sequences before the step runs;
// releasing an unknown id is not an error.
type DecodeRequest struct {
	ModelID   string
	Sequences [][]int32
	CacheIDs  []uint64
	Release   []uint64
	// ExitThreshold > 0 enables early exit on models with exit heads.
	ExitThreshold float32
	// Steps > 1 (with CacheIDs) is multi-step greedy decoding: the backend
	// picks each sequence's argmax token, feeds it back and repeats, up to
	// Steps tokens, stopping a sequence early at a token of StopTokens or
	// at its context; the tokens come back in DecodeResult.Tokens instead
	// of logits. The cache then holds every returned token but the last
	// (which, as after a single step, is fed with the next call).
	Steps      int
	StopTokens []int32
}

// MaxDecodeSteps bounds DecodeRequest.Steps.
const MaxDecodeSteps = 64

// DecodeResult holds one row of vocabulary logits per sequence.
type DecodeResult struct {
	Logits [][]float32
	// CachedTokens is each sequence's length in the KV cache after the
	// step (only with CacheIDs).
	CachedTokens []int
	// ExitLayers is, per sequence, how many layers ran for its last token
	// (n_layer without early exit; nil when the backend does not say).
	ExitLayers []int
	// Tokens is, per sequence, what a multi-step call (Steps > 1) picked.
	Tokens [][]int32
}

// SaveRequest asks for the model's weights.
type SaveRequest struct {
	ModelID       string
	WithOptimizer bool
}

// SaveResult is the model as safetensors plus its JSON config.
type SaveResult struct {
	Safetensors []byte
	ConfigJSON  []byte
	Step        int64
}

// Validate checks the shape of a training or evaluation batch.
func validateBatch(batch, seqLen int, inputs, targets []int32) error {
	if batch <= 0 || seqLen <= 0 {
		return fmt.Errorf("%w: batch %d and seq_len %d must be positive", ErrInvalidArgument, batch, seqLen)
	}
	if len(inputs) != batch*seqLen || len(targets) != batch*seqLen {
		return fmt.Errorf("%w: %d inputs and %d targets for batch %d x seq_len %d", ErrInvalidArgument, len(inputs), len(targets), batch, seqLen)
	}
	return nil
}

// Validate checks the request's shape.
func (r TrainStepRequest) Validate() error {
	return validateBatch(r.Batch, r.SeqLen, r.Inputs, r.Targets)
}

// Validate checks the request's shape.
func (r EvalRequest) Validate() error { return validateBatch(r.Batch, r.SeqLen, r.Inputs, r.Targets) }
