package quantizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/transformer"
	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/internal/finetune"
	"github.com/llmesh/llmesh/services/internal/jobspec"
)

// ErrAlreadyQuantized: the source model holds INT8 tensors already.
var ErrAlreadyQuantized = errors.New("quantizer: model is already quantized")

// Launcher starts accelerator plugins; *accel.Host is one.
type Launcher interface {
	Launch(ctx context.Context, backend string) (*accel.Plugin, error)
}

// QuantizeFunc turns an FP32 checkpoint (safetensors, no optimizer
// state) of config cfg into an INT8 one. actMax, when not nil, holds each
// linear layer's calibrated input maximum (static activation scales).
type QuantizeFunc func(ck []byte, cfg transformer.Config, actMax map[string]float32) ([]byte, error)

// Config configures the service.
type Config struct {
	Bus    *bus.Bus
	Host   Launcher
	Logger *slog.Logger
	// Quantize is the quantization itself (default: accel/transformer's).
	Quantize QuantizeFunc
}

// Service runs quantize jobs.
type Service struct {
	bus      *bus.Bus
	host     Launcher
	log      *slog.Logger
	quantize QuantizeFunc
}

// New validates cfg and builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Bus == nil || cfg.Host == nil {
		return nil, errors.New("quantizer: config needs a bus and a plugin host")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := cfg.Quantize
	if q == nil {
		q = defaultQuantize
	}
	return &Service{bus: cfg.Bus, host: cfg.Host, log: log.With("service", "quantizer"), quantize: q}, nil
}

// Run serves quantize jobs until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	return s.bus.ServeJobs(ctx, bus.KindQuantize, s.handle, bus.WorkerOptions{AckWait: time.Minute})
}

// Result is what a quantize job reports.
type Result struct {
	// Model is the registered name of the quantized model ("" if none).
	Model  string `json:"model,omitempty"`
	Source string `json:"source"`
	Mode   string `json:"mode"`
	// Checkpoint is the object ref of the quantized safetensors.
	Checkpoint string `json:"checkpoint"`
	Parameters uint64 `json:"parameters"`
	// BytesBefore is the FP32 weights file (without optimizer state),
	// BytesAfter the INT8 one; Ratio is before over after.
	BytesBefore int64   `json:"bytes_before"`
	BytesAfter  int64   `json:"bytes_after"`
	Ratio       float64 `json:"ratio"`
	// Validation loss and perplexity of the FP32 source and the INT8
	// model, on the same EvalTokens validation tokens; PerplexityChange is
	// after/before - 1.
	ValLossBefore    float64 `json:"val_loss_before"`
	ValLossAfter     float64 `json:"val_loss_after"`
	PerplexityBefore float64 `json:"perplexity_before"`
	PerplexityAfter  float64 `json:"perplexity_after"`
	PerplexityChange float64 `json:"perplexity_change"`
	EvalTokens       int64   `json:"eval_tokens"`
	// QATSteps of quantization-aware fine-tuning, and the FP32 master
	// weights' validation loss after it.
	QATSteps     int     `json:"qat_steps,omitempty"`
	ValLossQAT   float64 `json:"val_loss_qat,omitempty"`
	CalibBatches int     `json:"calib_batches,omitempty"`
	// ActivationLayers is how many layers got a static activation scale.
	ActivationLayers int      `json:"activation_layers,omitempty"`
	TrainRefs        []string `json:"train_refs,omitempty"`
	ValRef           string   `json:"val_ref"`
	Backend          string   `json:"backend"`
	Seconds          float64  `json:"seconds"`
}

func (s *Service) handle(ctx context.Context, job *bus.Job) ([]byte, error) {
	var sp Spec
	if err := jobspec.Decode("quantize", job.Spec, &sp); err != nil {
		return nil, err
	}
	res, err := s.Quantize(ctx, job, &sp)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// Quantize runs a validated spec for job.
func (s *Service) Quantize(ctx context.Context, job *bus.Job, sp *Spec) (*Result, error) {
	start := time.Now()
	src, err := finetune.Resolve(ctx, s.bus, sp.Model, sp.Checkpoint, sp.Config)
	if err != nil {
		return nil, fmt.Errorf("quantizer: %w", err)
	}
	if q, name, err := finetune.IsQuantized(src.Weights); err != nil {
		return nil, fmt.Errorf("quantizer: checkpoint %s: %w", src.Checkpoint, err)
	} else if q {
		return nil, fmt.Errorf("%w: %s holds int8 tensor %q; quantize its FP32 source instead", ErrAlreadyQuantized, describe(sp), name)
	}
	if err := sp.Refs(src, sp.QATSteps > 0); err != nil {
		return nil, fmt.Errorf("quantizer: %w", err)
	}
	if err := sp.CheckSeqLen(src.Config.NCtx); err != nil {
		return nil, fmt.Errorf("%w: quantize: %w", jobspec.ErrInvalid, err)
	}
	var trainRefs []string
	if sp.QATSteps > 0 {
		trainRefs = sp.TrainRefs
	}
	data, err := finetune.Load(ctx, s.bus, trainRefs, sp.ValRef, src.Config.VocabSize, sp.Batch, sp.SeqLen, sp.Seed)
	if err != nil {
		return nil, fmt.Errorf("quantizer: %w", err)
	}
	windows := data.ValWindows(sp.EvalBatches)
	be, err := s.host.Launch(ctx, sp.Backend)
	if err != nil {
		return nil, fmt.Errorf("quantizer: launch %s backend: %w", sp.Backend, err)
	}
	defer be.Close()
	res := &Result{Source: describe(sp), Mode: sp.Mode, QATSteps: sp.QATSteps, CalibBatches: sp.CalibBatches,
		TrainRefs: trainRefs, ValRef: sp.ValRef, Backend: sp.Backend}
	for _, w := range windows {
		res.EvalTokens += int64(w.Rows * sp.SeqLen)
	}
	// The FP32 reference: its loss, and its weights without optimizer
	// state (the file the INT8 one is compared with and made from).
	fp32ID := job.ID + "-fp32"
	lr, err := be.LoadModel(ctx, accel.LoadRequest{ModelID: fp32ID, ConfigJSON: src.ConfigJSON, Weights: src.Weights})
	if err != nil {
		return nil, fmt.Errorf("quantizer: load %s: %w", res.Source, err)
	}
	res.Parameters = lr.Parameters
	if res.ValLossBefore, err = finetune.Evaluate(ctx, be, fp32ID, sp.SeqLen, windows); err != nil {
		return nil, fmt.Errorf("quantizer: evaluate the FP32 model: %w", err)
	}
	saved, err := be.SaveWeights(ctx, accel.SaveRequest{ModelID: fp32ID})
	if err != nil {
		return nil, fmt.Errorf("quantizer: FP32 weights: %w", err)
	}
	_ = be.Unload(ctx, fp32ID)
	weights := saved.Safetensors
	res.BytesBefore = int64(len(weights))
	job.Log(fmt.Sprintf("%s: %d parameters, %s FP32, validation loss %.4f on %d tokens", res.Source, res.Parameters, humanBytes(res.BytesBefore), res.ValLossBefore, res.EvalTokens))

	if sp.QATSteps > 0 {
		if weights, res.ValLossQAT, err = s.qat(ctx, job, be, sp, src, data, windows, weights); err != nil {
			return nil, err
		}
	}
	var actMax map[string]float32
	if sp.Mode == ModeW8A8 {
		if actMax, err = s.calibrate(ctx, job, be, sp, src, data, weights); err != nil {
			return nil, err
		}
		res.ActivationLayers = len(actMax)
	}
	job.Progress("quantize", 0, 1, "rounding weights to int8")
	q, err := s.quantize(weights, src.Config, actMax)
	if err != nil {
		return nil, fmt.Errorf("quantizer: quantize %s: %w", res.Source, err)
	}
	if ok, _, err := finetune.IsQuantized(q); err != nil || !ok {
		return nil, fmt.Errorf("quantizer: the quantized checkpoint of %s holds no int8 tensor (%v)", res.Source, err)
	}
	res.BytesAfter = int64(len(q))
	res.Ratio = float64(res.BytesBefore) / float64(res.BytesAfter)
	job.Progress("quantize", 1, 1, fmt.Sprintf("%s -> %s (%.2fx smaller)", humanBytes(res.BytesBefore), humanBytes(res.BytesAfter), res.Ratio))

	int8ID := job.ID + "-int8"
	if _, err := be.LoadModel(ctx, accel.LoadRequest{ModelID: int8ID, ConfigJSON: src.ConfigJSON, Weights: q}); err != nil {
		return nil, fmt.Errorf("quantizer: the backend %s cannot load the quantized model: %w", sp.Backend, err)
	}
	if res.ValLossAfter, err = finetune.Evaluate(ctx, be, int8ID, sp.SeqLen, windows); err != nil {
		return nil, fmt.Errorf("quantizer: evaluate the INT8 model: %w", err)
	}
	_ = be.Unload(ctx, int8ID)
	res.PerplexityBefore, res.PerplexityAfter = math.Exp(res.ValLossBefore), math.Exp(res.ValLossAfter)
	res.PerplexityChange = res.PerplexityAfter/res.PerplexityBefore - 1
	job.Metric("val_loss_fp32", res.ValLossBefore, 0)
	job.Metric("val_loss_int8", res.ValLossAfter, 0)

	info, err := s.bus.PutBytes(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("quantizer: store the quantized checkpoint: %w", err)
	}
	res.Checkpoint = info.Ref
	name := sp.Output
	if name == "" {
		name = "quantized"
	}
	job.Artifact("quantized", name, info.Ref, info.Size)
	if sp.Output != "" {
		rec := &busv1.ModelRecord{Name: sp.Output, Checkpoint: info.Ref, Tokenizer: src.TokenizerRef, ConfigJson: src.ConfigJSON,
			Parameters: res.Parameters, ValLoss: res.ValLossAfter, CreatedAt: timestamppb.Now(), JobId: job.ID}
		if err := s.bus.PutModel(ctx, rec); err != nil {
			return nil, fmt.Errorf("quantizer: register %s: %w", sp.Output, err)
		}
		res.Model = sp.Output
	}
	res.Seconds = time.Since(start).Seconds()
	job.Log(fmt.Sprintf("%s quantized (%s): %.2fx smaller, perplexity %.3f -> %.3f (%+.2f%%)", res.Source, sp.Mode, res.Ratio,
		res.PerplexityBefore, res.PerplexityAfter, 100*res.PerplexityChange))
	return res, nil
}

// qat fine-tunes the FP32 weights with quantization-aware training and
// returns them (without optimizer state) with their validation loss.
func (s *Service) qat(ctx context.Context, job *bus.Job, be accel.Backend, sp *Spec, src *finetune.Source, data *finetune.Data, windows []finetune.Window, weights []byte) ([]byte, float64, error) {
	id := job.ID + "-qat"
	opt := sp.Optimizer()
	opt.QAT = true
	if _, err := be.LoadModel(ctx, accel.LoadRequest{ModelID: id, ConfigJSON: src.ConfigJSON, Weights: weights, Optimizer: opt}); err != nil {
		return nil, 0, fmt.Errorf("quantizer: load for quantization-aware training: %w", err)
	}
	defer be.Unload(context.WithoutCancel(ctx), id)
	every := max(sp.QATSteps/20, 1)
	_, err := finetune.Train(ctx, be, id, data, sp.Schedule(sp.QATSteps), nil, func(step int, loss float64) {
		if step%every == 0 || step == sp.QATSteps {
			job.Progress("qat", int64(step), int64(sp.QATSteps), fmt.Sprintf("loss %.4f", loss))
		}
	})
	if err != nil {
		return nil, 0, fmt.Errorf("quantizer: quantization-aware training: %w", err)
	}
	vl, err := finetune.Evaluate(ctx, be, id, sp.SeqLen, windows)
	if err != nil {
		return nil, 0, fmt.Errorf("quantizer: evaluate after quantization-aware training: %w", err)
	}
	saved, err := be.SaveWeights(ctx, accel.SaveRequest{ModelID: id})
	if err != nil {
		return nil, 0, fmt.Errorf("quantizer: weights after quantization-aware training: %w", err)
	}
	job.Log(fmt.Sprintf("quantization-aware training: %d steps, FP32 validation loss %.4f", sp.QATSteps, vl))
	return saved.Safetensors, vl, nil
}

// calibrate runs calib_batches validation batches through the model with
// activation statistics on and keeps each layer's largest input.
func (s *Service) calibrate(ctx context.Context, job *bus.Job, be accel.Backend, sp *Spec, src *finetune.Source, data *finetune.Data, weights []byte) (map[string]float32, error) {
	id := job.ID + "-calib"
	if _, err := be.LoadModel(ctx, accel.LoadRequest{ModelID: id, ConfigJSON: src.ConfigJSON, Weights: weights}); err != nil {
		return nil, fmt.Errorf("quantizer: load for calibration: %w", err)
	}
	defer be.Unload(context.WithoutCancel(ctx), id)
	act := map[string]float32{}
	windows := data.ValWindows(sp.CalibBatches)
	for i, w := range windows {
		job.Progress("calibrate", int64(i), int64(len(windows)), "")
		r, err := be.Evaluate(ctx, accel.EvalRequest{ModelID: id, Batch: w.Rows, SeqLen: sp.SeqLen, Inputs: w.In, Targets: w.Tgt, ActivationStats: true})
		if err != nil {
			return nil, fmt.Errorf("quantizer: calibration batch %d: %w", i, err)
		}
		for name, v := range r.ActivationMax {
			if !(v >= 0) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("quantizer: calibration batch %d: layer %q has activation maximum %v", i, name, v)
			}
			act[name] = max(act[name], v)
		}
	}
	if len(act) == 0 {
		return nil, fmt.Errorf("quantizer: backend %s returned no activation statistics, so it cannot calibrate w8a8 (use mode int8)", sp.Backend)
	}
	job.Progress("calibrate", int64(len(windows)), int64(len(windows)), fmt.Sprintf("%d layers", len(act)))
	return act, nil
}

func describe(sp *Spec) string {
	if sp.Model != "" {
		return fmt.Sprintf("model %q", sp.Model)
	}
	return "checkpoint " + sp.Checkpoint
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
