package distiller

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/transformer"
	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/internal/finetune"
	"github.com/llmesh/llmesh/services/internal/jobspec"
)

// PruneResult is what a prune job reports.
type PruneResult struct {
	// Model is the registered name of the pruned model ("" if none).
	Model      string  `json:"model,omitempty"`
	Checkpoint string  `json:"checkpoint"`
	Source     string  `json:"source"`
	Method     string  `json:"method"`
	Target     float64 `json:"target_sparsity"`
	Parameters uint64  `json:"parameters"`
	// LinearWeights counts the weights of the linear layers (what
	// pruning acts on); Sparsity is the fraction of them that are zero
	// in the final model; NonzeroParams counts every nonzero parameter.
	LinearWeights int64   `json:"linear_weights"`
	Sparsity      float64 `json:"sparsity"`
	NonzeroParams int64   `json:"nonzero_params"`
	// DenseBytes is the FP32 safetensors file; SparseBytes the same
	// weights stored sparse (the linear layers as a bitmap of nonzeros
	// and their FP32 values, the rest dense).
	DenseBytes  int64 `json:"dense_bytes"`
	SparseBytes int64 `json:"sparse_bytes"`
	// Validation losses on the same EvalTokens tokens: dense, right after
	// pruning, after the fine-tune; PerplexityChange is final over dense
	// perplexity - 1.
	ValLossDense     float64  `json:"val_loss_dense"`
	ValLossPruned    float64  `json:"val_loss_pruned"`
	ValLossFinetuned float64  `json:"val_loss_finetuned"`
	PerplexityDense  float64  `json:"perplexity_dense"`
	PerplexityFinal  float64  `json:"perplexity_final"`
	PerplexityChange float64  `json:"perplexity_change"`
	Steps            int      `json:"steps"`
	EvalTokens       int64    `json:"eval_tokens"`
	TrainRefs        []string `json:"train_refs,omitempty"`
	ValRef           string   `json:"val_ref"`
	Backend          string   `json:"backend"`
	Seconds          float64  `json:"seconds"`
}

func (s *Service) handlePrune(ctx context.Context, job *bus.Job) ([]byte, error) {
	var sp PruneSpec
	if err := jobspec.Decode("prune", job.Spec, &sp); err != nil {
		return nil, err
	}
	res, err := s.Prune(ctx, job, &sp)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// Prune runs a validated prune spec for job.
func (s *Service) Prune(ctx context.Context, job *bus.Job, sp *PruneSpec) (*PruneResult, error) {
	start := time.Now()
	src, err := finetune.Resolve(ctx, s.bus, sp.Model, sp.Checkpoint, sp.Config)
	if err != nil {
		return nil, fmt.Errorf("distiller: prune: %w", err)
	}
	what := "checkpoint " + sp.Checkpoint
	if sp.Model != "" {
		what = fmt.Sprintf("model %q", sp.Model)
	}
	if q, _, err := finetune.IsQuantized(src.Weights); err != nil {
		return nil, fmt.Errorf("distiller: prune: %s: %w", what, err)
	} else if q {
		return nil, fmt.Errorf("distiller: prune: %s is quantized; prune its FP32 model (then quantize)", what)
	}
	if err := sp.Refs(src, sp.Steps > 0); err != nil {
		return nil, fmt.Errorf("distiller: prune: %w", err)
	}
	if err := sp.CheckSeqLen(src.Config.NCtx); err != nil {
		return nil, fmt.Errorf("%w: prune: %w", jobspec.ErrInvalid, err)
	}
	var trainRefs []string
	if sp.Steps > 0 {
		trainRefs = sp.TrainRefs
	}
	data, err := finetune.Load(ctx, s.bus, trainRefs, sp.ValRef, src.Config.VocabSize, sp.Batch, sp.SeqLen, sp.Seed)
	if err != nil {
		return nil, fmt.Errorf("distiller: prune: %w", err)
	}
	windows := data.ValWindows(sp.EvalBatches)
	be, err := s.host.Launch(ctx, sp.Backend)
	if err != nil {
		return nil, fmt.Errorf("distiller: launch %s backend: %w", sp.Backend, err)
	}
	defer be.Close()
	res := &PruneResult{Source: what, Method: sp.Method, Target: sp.Sparsity, Steps: sp.Steps, TrainRefs: trainRefs, ValRef: sp.ValRef, Backend: sp.Backend}
	for _, w := range windows {
		res.EvalTokens += int64(w.Rows * sp.SeqLen)
	}
	// The dense model: its loss and its weights without optimizer state.
	did := job.ID + "-dense"
	if _, err := be.LoadModel(ctx, accel.LoadRequest{ModelID: did, ConfigJSON: src.ConfigJSON, Weights: src.Weights}); err != nil {
		return nil, fmt.Errorf("distiller: load %s: %w", what, err)
	}
	if res.ValLossDense, err = finetune.Evaluate(ctx, be, did, sp.SeqLen, windows); err != nil {
		return nil, fmt.Errorf("distiller: evaluate the dense model: %w", err)
	}
	dense, err := be.SaveWeights(ctx, accel.SaveRequest{ModelID: did})
	if err != nil {
		return nil, fmt.Errorf("distiller: dense weights: %w", err)
	}
	_ = be.Unload(ctx, did)

	job.Progress("prune", 0, 1, fmt.Sprintf("%s to %.0f%%", sp.Method, 100*sp.Sparsity))
	pruned, err := s.prune(dense.Safetensors, src.Config, sp.Method, sp.Sparsity)
	if err != nil {
		return nil, fmt.Errorf("distiller: prune %s (%s, sparsity %g): %w", what, sp.Method, sp.Sparsity, err)
	}
	st, err := sparsityOf(pruned)
	if err != nil {
		return nil, fmt.Errorf("distiller: pruned checkpoint: %w", err)
	}
	job.Progress("prune", 1, 1, fmt.Sprintf("%.1f%% of the linear weights zero", 100*st.sparsity()))

	pid := job.ID + "-pruned"
	opt := sp.Optimizer()
	opt.KeepSparsity = true
	lr, err := be.LoadModel(ctx, accel.LoadRequest{ModelID: pid, ConfigJSON: src.ConfigJSON, Weights: pruned, Optimizer: opt})
	if err != nil {
		return nil, fmt.Errorf("distiller: load the pruned model: %w", err)
	}
	defer be.Unload(context.WithoutCancel(ctx), pid)
	res.Parameters = lr.Parameters
	if res.ValLossPruned, err = finetune.Evaluate(ctx, be, pid, sp.SeqLen, windows); err != nil {
		return nil, fmt.Errorf("distiller: evaluate the pruned model: %w", err)
	}
	job.Log(fmt.Sprintf("%s pruned (%s, %.1f%% of the linear weights zero): validation loss %.4f -> %.4f", what, sp.Method, 100*st.sparsity(), res.ValLossDense, res.ValLossPruned))
	final := pruned
	res.ValLossFinetuned = res.ValLossPruned
	if sp.Steps > 0 {
		if _, err := finetune.Train(ctx, be, pid, data, sp.Schedule(sp.Steps), nil, s.progress(job, "fine-tune", sp.Steps)); err != nil {
			return nil, fmt.Errorf("distiller: fine-tune the pruned model: %w", err)
		}
		if res.ValLossFinetuned, err = finetune.Evaluate(ctx, be, pid, sp.SeqLen, windows); err != nil {
			return nil, fmt.Errorf("distiller: evaluate the fine-tuned model: %w", err)
		}
		saved, err := be.SaveWeights(ctx, accel.SaveRequest{ModelID: pid})
		if err != nil {
			return nil, fmt.Errorf("distiller: fine-tuned weights: %w", err)
		}
		final = saved.Safetensors
		if st, err = sparsityOf(final); err != nil {
			return nil, fmt.Errorf("distiller: fine-tuned checkpoint: %w", err)
		}
		// The mask must survive the fine-tune (KeepSparsity); a backend
		// that ignores it would hand back a dense model.
		if st.sparsity() < 0.9*sp.Sparsity && sp.Method == MethodMagnitude {
			return nil, fmt.Errorf("distiller: after the fine-tune only %.1f%% of the linear weights are zero (target %.0f%%): backend %s does not keep sparsity",
				100*st.sparsity(), 100*sp.Sparsity, sp.Backend)
		}
	}
	res.LinearWeights, res.Sparsity, res.NonzeroParams = st.linear, st.sparsity(), st.nonzero
	res.DenseBytes, res.SparseBytes = int64(len(final)), st.sparseBytes
	res.PerplexityDense, res.PerplexityFinal = perplexity(res.ValLossDense), perplexity(res.ValLossFinetuned)
	res.PerplexityChange = res.PerplexityFinal/res.PerplexityDense - 1
	job.Metric("val_loss", res.ValLossFinetuned, int64(sp.Steps))

	info, err := s.bus.PutBytes(ctx, final)
	if err != nil {
		return nil, fmt.Errorf("distiller: store the pruned model: %w", err)
	}
	res.Checkpoint = info.Ref
	name := sp.Output
	if name == "" {
		name = "pruned"
	}
	job.Artifact("pruned", name, info.Ref, info.Size)
	if sp.Output != "" {
		rec := &busv1.ModelRecord{Name: sp.Output, Checkpoint: info.Ref, Tokenizer: src.TokenizerRef, ConfigJson: src.ConfigJSON,
			Parameters: res.Parameters, Step: int64(sp.Steps), ValLoss: res.ValLossFinetuned, CreatedAt: timestamppb.Now(), JobId: job.ID}
		if err := s.bus.PutModel(ctx, rec); err != nil {
			return nil, fmt.Errorf("distiller: register %s: %w", sp.Output, err)
		}
		res.Model = sp.Output
	}
	res.Seconds = time.Since(start).Seconds()
	job.Log(fmt.Sprintf("fine-tuned %d steps: validation loss %.4f (dense %.4f), perplexity %+.2f%%; %.1f%% sparse, %s dense, %s sparse",
		sp.Steps, res.ValLossFinetuned, res.ValLossDense, 100*res.PerplexityChange, 100*res.Sparsity, humanBytes(res.DenseBytes), humanBytes(res.SparseBytes)))
	return res, nil
}

// sparsity counts the zeros of a checkpoint.
type sparsity struct {
	linear, linearZero int64 // weights of the linear layers, and zeros among them
	nonzero            int64 // nonzero parameters of every tensor
	sparseBytes        int64
}

func (s sparsity) sparsity() float64 {
	if s.linear == 0 {
		return 0
	}
	return float64(s.linearZero) / float64(s.linear)
}

// isLinear: a linear layer's weight matrix (attention and MLP
// projections), what pruning acts on.
func isLinear(t transformer.Tensor) bool {
	return len(t.Shape) == 2 && strings.HasSuffix(t.Name, ".weight") && (strings.Contains(t.Name, "attn.c_") || strings.Contains(t.Name, "mlp.c_"))
}

// sparsityOf reads an FP32 checkpoint's parameter tensors (the optimizer
// state, if any, is not counted) and sizes its sparse form: per linear
// matrix a bitmap of nonzeros and their values, every other tensor dense,
// plus the safetensors header as it is.
func sparsityOf(ck []byte) (sparsity, error) {
	var s sparsity
	st, err := transformer.ReadSafetensors(ck)
	if err != nil {
		return s, err
	}
	s.sparseBytes = 8 + int64(binary.LittleEndian.Uint64(ck))
	for _, t := range st.Tensors {
		if strings.HasPrefix(t.Name, "optimizer.") || strings.Contains(t.Name, "adam") {
			continue
		}
		if t.DType != "F32" {
			s.sparseBytes += int64(len(t.Data))
			continue
		}
		n := int64(len(t.Data) / 4)
		var nz int64
		for i := range n {
			if math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:])) != 0 {
				nz++
			}
		}
		s.nonzero += nz
		if isLinear(t) {
			s.linear += n
			s.linearZero += n - nz
			s.sparseBytes += (n+7)/8 + 4*nz
		} else {
			s.sparseBytes += 4 * n
		}
	}
	return s, nil
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
