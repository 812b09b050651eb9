package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"golang.org/x/sys/cpu"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/transformer"
)

// Version is the engine's version, reported by Info.
const Version = "0.1.0"

// DefaultKVCacheBytes is the KV-cache memory each loaded model may use
// for cached decoding unless WithKVCacheBytes says otherwise.
const DefaultKVCacheBytes = 512 << 20

// Option configures an Engine.
type Option func(*Engine)

// WithKVCacheBytes sets the KV-cache budget of each loaded model (rounded
// down to whole blocks, at least one).
func WithKVCacheBytes(n int64) Option { return func(e *Engine) { e.kvBytes = n } }

// Engine is the in-process accel.Backend.
type Engine struct {
	name    string
	k       transformer.Kernels
	kvBytes int64

	mu     sync.RWMutex
	models map[string]*loaded
}

var _ accel.Backend = (*Engine)(nil)

// loaded is one model with its training state.
type loaded struct {
	mu    sync.Mutex
	model *transformer.Model
	opt   *transformer.AdamW // nil for inference-only models
	step  int64              // used when opt is nil
	accum []float32          // sum of micro-batch gradients since the last update
	micro int
	dec   *transformer.Decoder // KV-cached decoding, made on first use
	// scratch decodes whole sequences with early exit (no cache ids): each
	// call prefills them under temporary ids and releases them.
	scratch *transformer.Decoder
}

// New returns an engine named name that runs on kernels k (nil means
// transformer.PortableKernels).
func New(name string, k transformer.Kernels, opts ...Option) *Engine {
	if k == nil {
		k = transformer.PortableKernels()
	}
	e := &Engine{name: name, k: k, kvBytes: DefaultKVCacheBytes, models: map[string]*loaded{}}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Info describes the engine and the CPU features it found.
func (e *Engine) Info(ctx context.Context) (accel.Info, error) {
	if err := ctx.Err(); err != nil {
		return accel.Info{}, err
	}
	return accel.Info{
		Name:            e.name,
		Version:         Version,
		Device:          fmt.Sprintf("cpu: %d threads", runtime.GOMAXPROCS(0)),
		Features:        cpuFeatures(),
		ProtocolVersion: accel.ProtocolVersion,
	}, nil
}

func cpuFeatures() []string {
	var fs []string
	add := func(name string, ok bool) {
		if ok {
			fs = append(fs, name)
		}
	}
	add("avx2", cpu.X86.HasAVX2)
	add("fma", cpu.X86.HasFMA)
	add("avx512f", cpu.X86.HasAVX512F)
	add("avx512vnni", cpu.X86.HasAVX512VNNI)
	add("avx512bf16", cpu.X86.HasAVX512BF16)
	add("avxvnni", cpu.X86.HasAVXVNNI)
	add("amx-tile", cpu.X86.HasAMXTile)
	add("amx-bf16", cpu.X86.HasAMXBF16)
	add("amx-int8", cpu.X86.HasAMXInt8)
	add("asimd", cpu.ARM64.HasASIMD)
	add("sve", cpu.ARM64.HasSVE)
	return fs
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{accel.ErrInvalidArgument}, args...)...)
}

// wrapModelErr maps the runtime's input and checkpoint errors to
// accel.ErrInvalidArgument.
func wrapModelErr(id string, err error) error {
	if errors.Is(err, transformer.ErrInvalidInput) || errors.Is(err, transformer.ErrInvalidConfig) || errors.Is(err, transformer.ErrSafetensors) || errors.Is(err, transformer.ErrKVCacheFull) {
		return fmt.Errorf("%w: model %q: %w", accel.ErrInvalidArgument, id, err)
	}
	return fmt.Errorf("model %q: %w", id, err)
}

// get returns the model under id, locked; the caller unlocks it.
func (e *Engine) get(ctx context.Context, id string) (*loaded, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.mu.RLock()
	l, ok := e.models[id]
	e.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", accel.ErrUnknownModel, id)
	}
	l.mu.Lock()
	if err := ctx.Err(); err != nil {
		l.mu.Unlock()
		return nil, err
	}
	return l, nil
}

// LoadModel builds a model from the request's config and either its
// safetensors weights (restoring optimizer state and step when present)
// or a fresh initialisation from Seed.
func (e *Engine) LoadModel(ctx context.Context, req accel.LoadRequest) (accel.LoadResult, error) {
	if err := ctx.Err(); err != nil {
		return accel.LoadResult{}, err
	}
	if req.ModelID == "" {
		return accel.LoadResult{}, invalid("model id is empty")
	}
	cfg, err := transformer.ParseConfig(req.ConfigJSON)
	if err != nil {
		return accel.LoadResult{}, wrapModelErr(req.ModelID, err)
	}
	l := &loaded{}
	var optState *transformer.AdamWState
	if len(req.Weights) > 0 {
		ck, err := transformer.ReadCheckpoint(req.Weights, cfg, e.k)
		if err != nil {
			return accel.LoadResult{}, wrapModelErr(req.ModelID, err)
		}
		l.model, l.step, optState = ck.Model, ck.Step, ck.Optimizer
	} else {
		l.model = transformer.New(cfg, e.k, req.Seed)
	}
	if o := req.Optimizer; o != nil {
		if err := checkOptimizer(*o); err != nil {
			return accel.LoadResult{}, fmt.Errorf("%w (model %q)", err, req.ModelID)
		}
		if err := l.model.SetLabelSmoothing(o.LabelSmoothing); err != nil {
			return accel.LoadResult{}, fmt.Errorf("%w: %v (model %q)", accel.ErrInvalidArgument, err, req.ModelID)
		}
		switch o.Precision {
		case "", accel.PrecisionFP32:
		case accel.PrecisionBF16:
			l.model.SetBF16(true)
		case accel.PrecisionFP16:
			return accel.LoadResult{}, fmt.Errorf("%w: precision fp16 (with dynamic loss scaling) is for the cuda backend; this backend trains in fp32 or bf16 (model %q)", accel.ErrInvalidArgument, req.ModelID)
		default:
			return accel.LoadResult{}, fmt.Errorf("%w: precision %q is not fp32, bf16 or fp16 (model %q)", accel.ErrInvalidArgument, o.Precision, req.ModelID)
		}
		l.opt = transformer.NewAdamW(transformer.AdamWConfig{
			Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, WeightDecay: o.WeightDecay, GradClip: o.GradClip,
		}, l.model)
		if optState != nil {
			if err := l.opt.SetState(*optState); err != nil {
				return accel.LoadResult{}, wrapModelErr(req.ModelID, err)
			}
		} else if l.step > 0 {
			_ = l.opt.SetState(transformer.AdamWState{M: l.opt.State().M, V: l.opt.State().V, Step: l.step})
		}
		if o.QAT {
			if err := l.model.SetQAT(true); err != nil {
				return accel.LoadResult{}, wrapModelErr(req.ModelID, err)
			}
		}
		if o.KeepSparsity {
			// The weights that are zero now (a pruned model's) stay zero.
			if err := l.opt.SetMask(transformer.ZeroMask(l.model)); err != nil {
				return accel.LoadResult{}, wrapModelErr(req.ModelID, err)
			}
		}
	}
	e.mu.Lock()
	e.models[req.ModelID] = l
	e.mu.Unlock()
	return accel.LoadResult{Parameters: uint64(l.model.NumParams()), Step: l.step}, nil
}

func checkOptimizer(o accel.OptimizerConfig) error {
	finite := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	switch {
	case !finite(o.Beta1) || o.Beta1 < 0 || o.Beta1 >= 1:
		return invalid("optimizer beta1 %v is outside [0, 1)", o.Beta1)
	case !finite(o.Beta2) || o.Beta2 < 0 || o.Beta2 >= 1:
		return invalid("optimizer beta2 %v is outside [0, 1)", o.Beta2)
	case !finite(o.Eps) || o.Eps <= 0:
		return invalid("optimizer eps %v must be positive", o.Eps)
	case !finite(o.WeightDecay) || o.WeightDecay < 0:
		return invalid("optimizer weight_decay %v must be non-negative", o.WeightDecay)
	case !finite(o.GradClip) || o.GradClip < 0:
		return invalid("optimizer grad_clip %v must be non-negative", o.GradClip)
	}
	return nil
}

// TrainStep runs one micro-batch forward and backward and adds its
// gradient to the model's accumulator. With a Teacher the loss is the
// distillation objective (see transformer.Model.DistillForwardBackward).
// req.GradientsReady hears each layer's gradients as the backward pass
// finishes them (transformer.Model.SetGradientsReady).
func (e *Engine) TrainStep(ctx context.Context, req accel.TrainStepRequest) (accel.TrainStepResult, error) {
	l, err := e.get(ctx, req.ModelID)
	if err != nil {
		return accel.TrainStepResult{}, err
	}
	defer l.mu.Unlock()
	if err := checkBatch(l.model.Config(), req.ModelID, req.Batch, req.SeqLen, req.Inputs, req.Targets, req.Validate()); err != nil {
		return accel.TrainStepResult{}, err
	}
	if l.model.Quantized() {
		return accel.TrainStepResult{}, wrapModelErr(req.ModelID, transformer.ErrQuantized)
	}
	l.model.ZeroGrads()
	if ready := req.GradientsReady; ready != nil && req.ReturnGradients {
		// Grads holds this micro-batch's gradients only (zeroed above):
		// hand each range over as the backward pass finishes it.
		g := l.model.Grads()
		l.model.SetGradientsReady(func(lo, hi int) { ready(lo, hi, g[lo:hi]) })
		defer l.model.SetGradientsReady(nil)
	}
	var loss float64
	if t := req.Teacher; t != nil {
		if t.K <= 0 || t.K > accel.MaxTopK {
			return accel.TrainStepResult{}, invalid("model %q: teacher k %d is outside [1, %d]", req.ModelID, t.K, accel.MaxTopK)
		}
		loss, err = l.model.DistillForwardBackward(req.Inputs, req.Targets, req.Batch, req.SeqLen, &transformer.SoftTargets{
			K: t.K, Indices: t.Indices, Logits: t.Logits, Temperature: t.Temperature, Alpha: t.Alpha,
		})
	} else {
		loss, err = l.model.ForwardBackward(req.Inputs, req.Targets, req.Batch, req.SeqLen)
	}
	if err != nil {
		return accel.TrainStepResult{}, wrapModelErr(req.ModelID, err)
	}
	g := l.model.Grads()
	if l.accum == nil {
		l.accum = make([]float32, len(g))
	}
	for i, v := range g {
		l.accum[i] += v
	}
	l.micro++
	res := accel.TrainStepResult{Loss: loss}
	if req.ReturnGradients {
		res.Gradients = append([]float32(nil), g...)
	}
	return res, nil
}

func checkBatch(cfg transformer.Config, id string, batch, seqLen int, inputs, targets []int32, shapeErr error) error {
	if shapeErr != nil {
		return fmt.Errorf("model %q: %w", id, shapeErr)
	}
	if seqLen > cfg.NCtx {
		return invalid("model %q: seq_len %d exceeds n_ctx %d", id, seqLen, cfg.NCtx)
	}
	for _, f := range []struct {
		what string
		toks []int32
	}{{"input", inputs}, {"target", targets}} {
		what := f.what
		for i, t := range f.toks {
			if t < 0 || int(t) >= cfg.VocabSize {
				return invalid("model %q: %s token %d at index %d is outside vocab_size %d", id, what, t, i, cfg.VocabSize)
			}
		}
	}
	return nil
}

// ApplyUpdate takes one AdamW step with the mean of the accumulated
// micro-batch gradients, or with req.Gradients when set (for gradients
// all-reduced across shards), and clears the accumulator.
func (e *Engine) ApplyUpdate(ctx context.Context, req accel.UpdateRequest) (accel.UpdateResult, error) {
	l, err := e.get(ctx, req.ModelID)
	if err != nil {
		return accel.UpdateResult{}, err
	}
	defer l.mu.Unlock()
	if l.model.Quantized() {
		return accel.UpdateResult{}, wrapModelErr(req.ModelID, transformer.ErrQuantized)
	}
	if l.opt == nil {
		return accel.UpdateResult{}, invalid("model %q was loaded without an optimizer", req.ModelID)
	}
	if lr := float64(req.LearningRate); math.IsNaN(lr) || math.IsInf(lr, 0) || lr < 0 {
		return accel.UpdateResult{}, invalid("model %q: learning rate %v must be finite and non-negative", req.ModelID, req.LearningRate)
	}
	n := l.model.NumParams()
	if l.accum == nil {
		l.accum = make([]float32, n)
	}
	switch {
	case req.Gradients != nil:
		if len(req.Gradients) != n {
			return accel.UpdateResult{}, invalid("model %q: %d gradients for %d parameters", req.ModelID, len(req.Gradients), n)
		}
		copy(l.accum, req.Gradients) // AdamW clips in place; keep the caller's slice intact
	case l.micro == 0:
		return accel.UpdateResult{}, invalid("model %q: no gradients accumulated since the last update", req.ModelID)
	default:
		inv := 1 / float32(l.micro)
		for i := range l.accum {
			l.accum[i] *= inv
		}
	}
	norm := l.opt.Step(l.model.ParamData(), l.accum, req.LearningRate)
	if l.dec != nil {
		l.dec.Reset() // cached keys and values came from the old weights
	}
	if l.scratch != nil {
		l.scratch.Reset()
	}
	clear(l.accum)
	l.micro = 0
	return accel.UpdateResult{GradNorm: norm, Step: l.opt.StepCount()}, nil
}

// Evaluate returns the mean cross-entropy of a batch and, with TopK, each
// position's TopK largest logits (see transformer.Model.TopK).
// With ActivationStats it also returns the largest |x| that entered each
// weight matrix, by tensor name (the calibration of static INT8
// activation scales, see transformer.QuantOptions). An INT8 model
// (loaded from a quantized checkpoint) evaluates on the INT8 kernels.
func (e *Engine) Evaluate(ctx context.Context, req accel.EvalRequest) (res accel.EvalResult, err error) {
	l, err := e.get(ctx, req.ModelID)
	if err != nil {
		return accel.EvalResult{}, err
	}
	defer l.mu.Unlock()
	if err := checkBatch(l.model.Config(), req.ModelID, req.Batch, req.SeqLen, req.Inputs, req.Targets, req.Validate()); err != nil {
		return accel.EvalResult{}, err
	}
	if req.ActivationStats {
		// The calibration pass of static INT8 activations: the largest |x|
		// entering each weight matrix, by its tensor name.
		l.model.StartActivationStats()
		defer func() {
			if st := l.model.StopActivationStats(); err == nil {
				res.ActivationMax = st
			}
		}()
	}
	if req.TopK != 0 {
		if req.TopK < 0 || req.TopK > accel.MaxTopK {
			return accel.EvalResult{}, invalid("model %q: top_k %d is outside [1, %d]", req.ModelID, req.TopK, accel.MaxTopK)
		}
		tk, err := l.model.TopK(req.Inputs, req.Targets, req.Batch, req.SeqLen, req.TopK)
		if err != nil {
			return accel.EvalResult{}, wrapModelErr(req.ModelID, err)
		}
		return accel.EvalResult{Loss: tk.Loss, Tokens: int64(req.Batch * req.SeqLen), TopKIndices: tk.Indices, TopKLogits: tk.Logits}, nil
	}
	loss, err := l.model.Loss(req.Inputs, req.Targets, req.Batch, req.SeqLen)
	if err != nil {
		return accel.EvalResult{}, wrapModelErr(req.ModelID, err)
	}
	return accel.EvalResult{Loss: loss, Tokens: int64(req.Batch * req.SeqLen)}, nil
}

// DecodeStep returns next-token logits for each sequence. Without
// CacheIDs every sequence is recomputed whole and sequences longer than
// n_ctx keep their last n_ctx tokens. With CacheIDs the step runs on the
// model's KV cache (see transformer.Decoder): Release first, then each
// sequence's tokens are appended to its cached id.
func (e *Engine) DecodeStep(ctx context.Context, req accel.DecodeRequest) (accel.DecodeResult, error) {
	l, err := e.get(ctx, req.ModelID)
	if err != nil {
		return accel.DecodeResult{}, err
	}
	defer l.mu.Unlock()
	if req.Steps < 0 || req.Steps > accel.MaxDecodeSteps {
		return accel.DecodeResult{}, invalid("model %q: steps %d out of range [0, %d]", req.ModelID, req.Steps, accel.MaxDecodeSteps)
	}
	if len(req.CacheIDs) == 0 {
		if req.Steps > 1 {
			return accel.DecodeResult{}, invalid("model %q: multi-step decoding (steps %d) needs cache ids", req.ModelID, req.Steps)
		}
		if len(req.Release) > 0 && l.dec != nil {
			l.dec.Release(req.Release...)
		}
		if len(req.Sequences) == 0 && len(req.Release) > 0 {
			return accel.DecodeResult{}, nil
		}
		if req.ExitThreshold != 0 {
			return e.exitDecode(l, req)
		}
		logits, err := l.model.NextLogits(req.Sequences)
		if err != nil {
			return accel.DecodeResult{}, wrapModelErr(req.ModelID, err)
		}
		return accel.DecodeResult{Logits: logits}, nil
	}
	if req.Steps > 1 {
		return e.multiDecode(l, req)
	}
	return e.cachedDecode(l, req)
}

// SaveWeights returns the model as safetensors (GPT-2 names, F32) with
// its config and step, and the optimizer moments when asked.
func (e *Engine) SaveWeights(ctx context.Context, req accel.SaveRequest) (accel.SaveResult, error) {
	l, err := e.get(ctx, req.ModelID)
	if err != nil {
		return accel.SaveResult{}, err
	}
	defer l.mu.Unlock()
	step := l.step
	var st *transformer.AdamWState
	if l.opt != nil {
		step = l.opt.StepCount()
		if req.WithOptimizer {
			s := l.opt.State()
			st = &s
		}
	} else if req.WithOptimizer {
		return accel.SaveResult{}, invalid("model %q has no optimizer state to save", req.ModelID)
	}
	var buf bytes.Buffer
	if err := transformer.WriteCheckpoint(&buf, l.model, step, st); err != nil {
		return accel.SaveResult{}, wrapModelErr(req.ModelID, err)
	}
	return accel.SaveResult{Safetensors: buf.Bytes(), ConfigJSON: l.model.Config().JSON(), Step: step}, nil
}

// Unload drops the model.
func (e *Engine) Unload(ctx context.Context, modelID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.models[modelID]; !ok {
		return fmt.Errorf("%w: %q", accel.ErrUnknownModel, modelID)
	}
	delete(e.models, modelID)
	return nil
}
