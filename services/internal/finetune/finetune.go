package finetune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/transformer"
	"github.com/llmesh/llmesh/bus"
)

// Source is a model a job starts from: its weights, config and where it
// came from.
type Source struct {
	// Name is the registered model's name ("" for a bare checkpoint).
	Name string
	// Checkpoint is the object ref of the safetensors weights.
	Checkpoint string
	Weights    []byte
	ConfigJSON json.RawMessage
	Config     transformer.Config
	// TokenizerRef is the object ref of the tokenizer the model was
	// trained with ("" when unknown).
	TokenizerRef string
	// TrainRefs and ValRef are the token shards the model was trained and
	// validated on, when the job that made it says (else empty).
	TrainRefs []string
	ValRef    string
}

// Resolve finds a job's source model: a registered model by name, or a
// bare checkpoint ref with its config (and optionally a tokenizer ref).
func Resolve(ctx context.Context, b *bus.Bus, model, checkpoint string, config json.RawMessage) (*Source, error) {
	src := &Source{Name: model, Checkpoint: checkpoint, ConfigJSON: config}
	switch {
	case model != "" && checkpoint != "":
		return nil, errors.New("set a model name or a checkpoint ref, not both")
	case model != "":
		rec, err := b.GetModel(ctx, model)
		if err != nil {
			return nil, err
		}
		if rec.Checkpoint == "" {
			return nil, fmt.Errorf("model %q has no checkpoint", model)
		}
		src.Checkpoint, src.ConfigJSON, src.TokenizerRef = rec.Checkpoint, rec.ConfigJson, rec.Tokenizer
		if rec.JobId != "" {
			src.TrainRefs, src.ValRef = dataOfJob(ctx, b, rec.JobId)
		}
	case checkpoint != "":
		if err := bus.ValidRef(checkpoint); err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		if len(config) == 0 {
			return nil, fmt.Errorf("checkpoint %s needs its config (the transformer config)", checkpoint)
		}
	default:
		return nil, errors.New("a model name or a checkpoint ref is required")
	}
	cfg, err := transformer.ParseConfig(src.ConfigJSON)
	if err != nil {
		return nil, fmt.Errorf("config of %s: %w", src.what(), err)
	}
	src.Config = cfg
	if src.Weights, err = b.GetObject(ctx, src.Checkpoint); err != nil {
		return nil, fmt.Errorf("checkpoint of %s: %w", src.what(), err)
	}
	return src, nil
}

func (s *Source) what() string {
	if s.Name != "" {
		return fmt.Sprintf("model %q", s.Name)
	}
	return "checkpoint " + s.Checkpoint
}

// dataOfJob reads the token shard refs from the spec (or else the result)
// of the job that made a model. Best effort: an unknown job yields none.
func dataOfJob(ctx context.Context, b *bus.Bus, id string) ([]string, string) {
	rec, err := b.GetJob(ctx, id)
	if err != nil {
		return nil, ""
	}
	var d struct {
		TrainRef  string   `json:"train_ref"`
		TrainRefs []string `json:"train_refs"`
		ValRef    string   `json:"val_ref"`
	}
	for _, js := range [][]byte{rec.SpecJson, rec.ResultJson} {
		d.TrainRef, d.TrainRefs, d.ValRef = "", nil, ""
		if json.Unmarshal(js, &d) != nil || d.ValRef == "" {
			continue
		}
		if d.TrainRef != "" {
			d.TrainRefs = append(d.TrainRefs, d.TrainRef)
		}
		return d.TrainRefs, d.ValRef
	}
	return nil, ""
}

// IsQuantized reports whether a safetensors checkpoint holds INT8 tensors
// (a quantized model), and the first such tensor's name.
func IsQuantized(weights []byte) (bool, string, error) {
	st, err := transformer.ReadSafetensors(weights)
	if err != nil {
		return false, "", err
	}
	for _, t := range st.Tensors {
		if t.DType == "I8" || t.DType == "U8" {
			return true, t.Name, nil
		}
	}
	return false, "", nil
}

// Data is a job's token streams and batch shape.
type Data struct {
	Train, Val    []int32
	Batch, SeqLen int
	Seed          uint64
}

// Load reads the training shards (may be none, for evaluation-only jobs)
// and the validation shard, and checks that each holds one window.
func Load(ctx context.Context, b *bus.Bus, trainRefs []string, valRef string, vocab, batch, seqLen int, seed uint64) (*Data, error) {
	d := &Data{Batch: batch, SeqLen: seqLen, Seed: seed}
	for _, ref := range trainRefs {
		ids, err := b.GetTokens(ctx, ref, vocab)
		if err != nil {
			return nil, fmt.Errorf("train shard: %w", err)
		}
		d.Train = append(d.Train, ids...)
	}
	var err error
	if d.Val, err = b.GetTokens(ctx, valRef, vocab); err != nil {
		return nil, fmt.Errorf("validation shard: %w", err)
	}
	if len(d.Val) < seqLen+1 {
		return nil, fmt.Errorf("validation shard has %d tokens; seq_len %d needs at least %d", len(d.Val), seqLen, seqLen+1)
	}
	if len(trainRefs) > 0 && len(d.Train) < seqLen+1 {
		return nil, fmt.Errorf("train shards have %d tokens; seq_len %d needs at least %d", len(d.Train), seqLen, seqLen+1)
	}
	return d, nil
}

// TrainBatch is step's training batch: random windows drawn from
// PCG(seed, step), so two runs with one seed see the same data.
func (d *Data) TrainBatch(step int) (in, tgt []int32) {
	B, T := d.Batch, d.SeqLen
	rng := rand.New(rand.NewPCG(d.Seed, uint64(step)))
	in, tgt = make([]int32, B*T), make([]int32, B*T)
	for b := range B {
		off := rng.IntN(len(d.Train) - T)
		copy(in[b*T:], d.Train[off:off+T])
		copy(tgt[b*T:], d.Train[off+1:off+T+1])
	}
	return in, tgt
}

// Window is one evaluation batch.
type Window struct {
	Rows    int
	In, Tgt []int32
}

// ValWindows is a fixed set of up to batches×Batch validation windows,
// spread over the shard: every model of a job is measured on the same
// tokens.
func (d *Data) ValWindows(batches int) []Window {
	B, T := d.Batch, d.SeqLen
	windows := (len(d.Val) - 1) / T
	n := min(batches*B, windows)
	stride := max(windows/n, 1)
	var out []Window
	for start := 0; start < n; start += B {
		rows := min(B, n-start)
		w := Window{Rows: rows, In: make([]int32, rows*T), Tgt: make([]int32, rows*T)}
		for i := range rows {
			off := (start + i) * stride * T
			copy(w.In[i*T:], d.Val[off:off+T])
			copy(w.Tgt[i*T:], d.Val[off+1:off+T+1])
		}
		out = append(out, w)
	}
	return out
}

// Evaluate is the mean validation loss of model id over windows.
func Evaluate(ctx context.Context, be accel.Backend, id string, seqLen int, windows []Window) (float64, error) {
	var sum float64
	var count int64
	for _, w := range windows {
		res, err := be.Evaluate(ctx, accel.EvalRequest{ModelID: id, Batch: w.Rows, SeqLen: seqLen, Inputs: w.In, Targets: w.Tgt})
		if err != nil {
			return 0, err
		}
		sum += res.Loss * float64(res.Tokens)
		count += res.Tokens
	}
	if count == 0 {
		return 0, errors.New("no validation tokens")
	}
	return sum / float64(count), nil
}

// Schedule is linear warmup to LR, then a cosine to MinLR at Steps.
type Schedule struct {
	LR, MinLR     float64
	Warmup, Steps int
}

// At is the learning rate of step (from 0).
func (s Schedule) At(step int) float32 {
	if step < s.Warmup {
		return float32(s.LR * float64(step+1) / float64(s.Warmup))
	}
	p := float64(step-s.Warmup) / float64(max(s.Steps-s.Warmup, 1))
	return float32(s.MinLR + 0.5*(s.LR-s.MinLR)*(1+math.Cos(math.Pi*min(p, 1))))
}

// TeacherFunc returns the soft targets of a batch (distillation).
type TeacherFunc func(ctx context.Context, step int, in, tgt []int32) (*accel.SoftTargets, error)

// Train runs steps optimizer steps on model id (loaded with an optimizer):
// TrainStep on step's batch, with the teacher's soft targets when teacher
// is set, then ApplyUpdate at the schedule's rate. progress, when set, sees
// every step's training loss. It returns the last step's loss.
func Train(ctx context.Context, be accel.Backend, id string, d *Data, sched Schedule, teacher TeacherFunc, progress func(step int, loss float64)) (float64, error) {
	if len(d.Train) < d.SeqLen+1 {
		return 0, errors.New("fine-tuning needs training tokens (train_refs)")
	}
	var loss float64
	for step := range sched.Steps {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		in, tgt := d.TrainBatch(step)
		req := accel.TrainStepRequest{ModelID: id, Batch: d.Batch, SeqLen: d.SeqLen, Inputs: in, Targets: tgt}
		if teacher != nil {
			st, err := teacher(ctx, step, in, tgt)
			if err != nil {
				return 0, fmt.Errorf("step %d: teacher: %w", step, err)
			}
			req.Teacher = st
		}
		res, err := be.TrainStep(ctx, req)
		if err != nil {
			return 0, fmt.Errorf("step %d: %w", step, err)
		}
		if _, err := be.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: id, LearningRate: sched.At(step)}); err != nil {
			return 0, fmt.Errorf("step %d: %w", step, err)
		}
		loss = res.Loss
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return 0, fmt.Errorf("step %d: training loss is %v", step, loss)
		}
		if progress != nil {
			progress(step+1, loss)
		}
	}
	return loss, nil
}
