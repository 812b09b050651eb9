package trainer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/simd"
	"github.com/llmesh/llmesh/accel/transformer"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// Tensor parallelism: a job with "parallel": "tensor" trains one model
// split across its shards (accel/transformer.TPModel): rank r of W holds
// its heads of every attention layer and its 4·n_embd/W columns of every
// MLP; embeddings, norms, the projection biases and the LM head are
// replicated. Every rank reads the same global batch; each layer's forward
// pass all-reduces two activations ([rows, n_embd] each) and its backward
// pass two input gradients, over the generation's collective.Ring on NATS
// (Arrow pieces, the same ring as data-parallel gradients). The optimizer
// clips by the full gradient norm (one more allreduce of one value).
//
// Where it runs: the accelerator protocol is coarse-grained (one
// TrainStep per micro-batch) and a plugin cannot call back into the host
// in the middle of a step, so a tensor-parallel shard runs the math in the
// trainer process itself, on the CPU kernels of accel/simd
// (Config.TensorThreads threads), not in a plugin: the spec's backend is
// not used. This breaks the rule that math lives behind the accelerator
// contract, for this mode only.
//
// Shards meet, get ranks and recover exactly as data-parallel shards do
// (shard.go), with a fixed group size: a ring that fails re-forms with
// the same number of shards from the last checkpoint. Checkpoints hold the
// full model and optimizer state (gathered from the ranks), so they load
// in the normal, unsplit path and in a group of any valid size.

// Parallel modes of Spec.Parallel.
const (
	ParallelData   = "data"
	ParallelTensor = "tensor"
)

// validateParallel checks and defaults Spec.Parallel (before
// validateShards, which it leaves the group's fixed size to).
func (s *Spec) validateParallel() error {
	switch s.Parallel {
	case "", ParallelData:
		s.Parallel = ""
		return nil
	case ParallelTensor:
	default:
		return fmt.Errorf("parallel %q: want %q or %q", s.Parallel, ParallelData, ParallelTensor)
	}
	c := s.cfg
	switch {
	case s.Shards < 1:
		return errors.New(`parallel "tensor" needs shards (the tensor-parallel group size)`)
	case c.NHead%s.Shards != 0 || 4*c.NEmbd%s.Shards != 0:
		return fmt.Errorf(`parallel "tensor": %d shards must divide n_head %d and the MLP width 4*n_embd %d`, s.Shards, c.NHead, 4*c.NEmbd)
	case (s.MinShards != 0 && s.MinShards != s.Shards) || (s.MaxShards != 0 && s.MaxShards != s.Shards):
		return fmt.Errorf(`parallel "tensor": the group has a fixed size; min_shards %d and max_shards %d must equal shards %d`, s.MinShards, s.MaxShards, s.Shards)
	case s.Precision != "" && s.Precision != accel.PrecisionFP32:
		return fmt.Errorf(`parallel "tensor" trains in fp32; precision %q is for data-parallel jobs`, s.Precision)
	case len(c.ExitLayers) > 0:
		return fmt.Errorf(`parallel "tensor" does not split early-exit heads (exit_layers %v)`, c.ExitLayers)
	case s.Backend != "cpu":
		return fmt.Errorf(`parallel "tensor" computes on the CPU in the trainer process, not on backend %q`, s.Backend)
	}
	s.MinShards, s.MaxShards = s.Shards, s.Shards
	return nil
}

// tpGen is the state of one tensor-parallel generation on this shard.
type tpGen struct {
	*gen
	model *transformer.TPModel
	opt   *transformer.AdamW
	k     transformer.Kernels
	// Allreduce time and count, all calls.
	arTime time.Duration
	arN    int64
}

// allReduce is the TPModel's AllReduceFunc: the generation's ring.
func (t *tpGen) allReduce(ctx context.Context, seq uint64, data []float32) error {
	st, err := t.ring.AllReduce(ctx, seq, data)
	t.arTime += st.Duration
	t.arN++
	return err
}

// runGenTP is runGen for a tensor-parallel job.
func (m *member) runGenTP(ctx context.Context, p planInfo) (Result, error) {
	base, stop, err := m.startGen(ctx, p)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	g := &tpGen{gen: base}
	step, err := m.loadTP(ctx, g)
	if err != nil {
		return Result{}, err
	}
	m.res.Shards = max(m.res.Shards, g.world)
	m.res.Generations = p.Gen
	m.res.Parallel = ParallelTensor
	if p.Gen > 1 {
		m.res.ResumedAt = append(m.res.ResumedAt, step)
	}
	if step > 0 {
		if g.rank == 0 {
			m.em.Log(fmt.Sprintf("resumed from step %d with %d tensor-parallel shards", step, g.world))
		}
	} else {
		vl, err := m.evaluateTP(ctx, g)
		if err != nil {
			return Result{}, err
		}
		m.res.InitialLoss = vl
		if g.rank == 0 {
			g.rep.metric("val_loss", vl, 0)
			m.em.Log(fmt.Sprintf("model %s: %d parameters (%d on each of %d tensor-parallel shards), initial validation loss %.4f",
				m.spec.Model, m.params, g.model.NumParams(), g.world, vl))
		}
	}
	return m.loopTP(ctx, g, step)
}

// tpKernels are the kernels a tensor-parallel shard computes on: the best
// accel/simd level of this CPU with the configured threads.
func (m *member) tpKernels() (transformer.Kernels, int) {
	threads := m.s.tpThreads
	opts := []simd.Option{}
	if threads > 0 {
		opts = append(opts, simd.WithThreads(threads))
	}
	k, err := simd.New(opts...)
	if err != nil {
		return transformer.PortableKernels(), threads
	}
	return k, threads
}

// loadTP builds this rank's slice, from the plan's checkpoint (a full
// model) when it has one or fresh from the seed, and returns the step to
// start at.
func (m *member) loadTP(ctx context.Context, g *tpGen) (int, error) {
	sp := m.spec
	k, threads := m.tpKernels()
	g.k = k
	var full *transformer.Model
	var optState *transformer.AdamWState
	step := 0
	m.best, m.badEvals = math.Inf(1), 0
	if g.p.Checkpoint != "" {
		w, ckStep, err := m.resume(ctx, g.p.Checkpoint)
		if err != nil {
			return 0, err
		}
		ck, err := transformer.ReadCheckpoint(w, sp.cfg, k)
		if err != nil {
			return 0, fmt.Errorf("trainer: resume from %s: %w", g.p.Checkpoint, err)
		}
		full, optState, step = ck.Model, ck.Optimizer, ckStep
		if optState == nil {
			optState = &transformer.AdamWState{Step: ck.Step}
		}
	} else {
		full = transformer.New(sp.cfg, k, sp.Seed)
	}
	if err := full.SetLabelSmoothing(float32(sp.LabelSmoothing)); err != nil {
		return 0, err
	}
	tp, err := transformer.NewTP(full, transformer.TPConfig{Rank: g.rank, World: g.world, AllReduce: g.allReduce, Kernels: k, Threads: threads})
	if err != nil {
		return 0, fmt.Errorf("trainer: %w", err)
	}
	tp.SetSeq(1)
	opt := transformer.NewTPAdamW(transformer.AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8,
		WeightDecay: float32(sp.WeightDecay), GradClip: float32(sp.GradClip)}, tp)
	if optState != nil {
		st := transformer.AdamWState{M: opt.State().M, V: opt.State().V, Step: optState.Step}
		if optState.M != nil {
			if st, err = tp.SliceState(*optState); err != nil {
				return 0, fmt.Errorf("trainer: optimizer state of %s: %w", g.p.Checkpoint, err)
			}
		}
		if err := opt.SetState(st); err != nil {
			return 0, err
		}
	}
	g.model, g.opt = tp, opt
	m.params = uint64(tp.FullParams())
	m.res.Parameters = m.params
	return step, nil
}

// evaluateTP is the mean validation loss over the single-shard trainer's
// windows; every rank runs every window (the same value on all).
func (m *member) evaluateTP(ctx context.Context, g *tpGen) (float64, error) {
	B, T := m.spec.Batch, m.spec.SeqLen
	windows := (len(m.val) - 1) / T
	n := min(m.spec.EvalBatches*B, windows)
	stride := max(windows/n, 1)
	var sum, count float64
	for start := 0; start < n; start += B {
		rows := min(B, n-start)
		in, tgt := make([]int32, rows*T), make([]int32, rows*T)
		for i := range rows {
			off := (start + i) * stride * T
			copy(in[i*T:], m.val[off:off+T])
			copy(tgt[i*T:], m.val[off+1:off+T+1])
		}
		loss, err := g.model.Loss(ctx, in, tgt, rows, T)
		if err != nil {
			return 0, err
		}
		sum += loss * float64(rows*T)
		count += float64(rows * T)
	}
	return sum / count, nil
}

// stepTP runs step's global batch (every micro-batch, all rows, on every
// rank) and one optimizer update; it returns the loss, the gradient norm
// and the learning rate.
func (m *member) stepTP(ctx context.Context, g *tpGen, step int) (loss, norm float64, lr float32, err error) {
	sp, T := m.spec, m.spec.SeqLen
	offs := m.windows(step)
	g.model.ZeroGrads()
	in, tgt := make([]int32, sp.Batch*T), make([]int32, sp.Batch*T)
	for a := range sp.GradAccum {
		for i := range sp.Batch {
			off := offs[a*sp.Batch+i]
			copy(in[i*T:], m.train[off:off+T])
			copy(tgt[i*T:], m.train[off+1:off+T+1])
		}
		l, err := g.model.ForwardBackward(ctx, in, tgt, sp.Batch, T)
		if err != nil {
			return 0, 0, 0, err
		}
		loss += l / float64(sp.GradAccum)
	}
	if sp.GradAccum > 1 {
		inv := 1 / float32(sp.GradAccum)
		gr := g.model.Grads()
		for i := range gr {
			gr[i] *= inv
		}
	}
	lr = learningRate(&m.spec, step)
	norm, err = g.opt.StepTP(ctx, g.model, lr)
	return loss, norm, lr, err
}

func (m *member) loopTP(ctx context.Context, g *tpGen, step int) (Result, error) {
	sp := m.spec
	start := time.Now()
	win := logWindow{start: time.Now()}
	var arTime, arWait time.Duration
	var arN int64
	for step < sp.Steps {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		ar0, n0, w0 := g.arTime, g.arN, g.model.CommWait()
		loss, norm, lr, err := m.stepTP(ctx, g, step)
		if err != nil {
			return Result{}, err
		}
		stepAR, stepWait := g.arTime-ar0, g.model.CommWait()-w0
		arTime += stepAR
		arWait += stepWait
		arN += g.arN - n0
		step++
		m.stepDone(g.rep, g.rank, g.world, step, stepMetrics{loss: loss, gradNorm: norm, lr: lr, allReduce: stepAR, waited: stepWait},
			&win, "tensor-parallel shards")
		if step%sp.EvalEvery == 0 && step != sp.Steps {
			vl, err := m.evaluateTP(ctx, g)
			if err != nil {
				return Result{}, err
			}
			if m.validated(g.rep, g.rank, step, vl) {
				break
			}
		}
		if step%sp.CheckpointEvery == 0 && step != sp.Steps {
			if _, err := m.saveTP(ctx, g, step); err != nil {
				return Result{}, err
			}
		}
	}
	final, err := m.evaluateTP(ctx, g)
	if err != nil {
		return Result{}, err
	}
	res := m.res
	res.Steps, res.FinalLoss = step, final
	res.Seconds = time.Since(start).Seconds()
	res.TokensPerSec = float64(res.Tokens) / res.Seconds
	res.AllReduceSeconds, res.AllReduces, res.AllReduceWaitSeconds = arTime.Seconds(), arN, arWait.Seconds()
	res.Restarts = m.restarts
	res.Rank = g.rank
	// Every rank takes part in gathering the final checkpoint.
	mref, err := m.saveTP(ctx, g, step)
	if err != nil {
		return Result{}, err
	}
	if g.rank != 0 {
		return res, m.awaitDone(ctx, g.gen)
	}
	mf, _, err := m.store.Load(ctx, mref)
	if err != nil {
		return Result{}, err
	}
	res.Checkpoint = mf.Weights
	g.rep.metric("val_loss", final, step)
	rec := &busv1.ModelRecord{Name: sp.Model, Checkpoint: mf.Weights, Tokenizer: m.tokRef, ConfigJson: sp.Config,
		Parameters: m.params, Step: int64(step), ValLoss: final, CreatedAt: timestamppb.Now(), JobId: m.job}
	if err := m.s.bus.PutModel(ctx, rec); err != nil {
		return Result{}, err
	}
	if p, rev, err := m.plan(ctx); err == nil && p.Gen == g.p.Gen {
		p.Done = true
		_ = m.putPlan(ctx, p, rev)
	}
	m.em.Log(fmt.Sprintf("model %s registered: validation loss %.4f -> %.4f in %d steps on %d tensor-parallel shards (%.0f tokens/s, %.0f%% waiting for allreduces)",
		sp.Model, res.InitialLoss, final, step, g.world, res.TokensPerSec, 100*res.AllReduceWaitSeconds/res.Seconds))
	return res, nil
}

// saveTP gathers the full model and optimizer state from the ranks (all
// ranks call it) and, on rank 0, writes the checkpoint at step; it returns
// the manifest ref on rank 0 and "" elsewhere.
func (m *member) saveTP(ctx context.Context, g *tpGen, step int) (string, error) {
	full, st, err := g.model.GatherModel(ctx, g.opt)
	if err != nil {
		return "", err
	}
	if g.rank != 0 {
		return "", nil
	}
	var buf bytes.Buffer
	if err := transformer.WriteCheckpoint(&buf, full, st.Step, st); err != nil {
		return "", err
	}
	ref, err := m.store.Save(ctx, Manifest{Step: step, Fingerprint: m.info.Fingerprint, Seed: m.spec.Seed, DataPosition: int64(step),
		BestValLoss: finiteOr0(m.best), BadEvals: m.badEvals, World: g.world}, buf.Bytes())
	if err != nil {
		return "", err
	}
	m.em.Artifact("checkpoint", fmt.Sprintf("%s/step-%06d", m.spec.Model, step), ref, int64(buf.Len()))
	return ref, nil
}
