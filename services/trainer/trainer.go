package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/internal/jobspec"
)

// Launcher starts accelerator plugins; *accel.Host is one.
type Launcher interface {
	Launch(ctx context.Context, backend string) (*accel.Plugin, error)
}

// Config configures the service.
type Config struct {
	Bus    *bus.Bus
	Host   Launcher
	Logger *slog.Logger
	// Heartbeat is how often a shard of a data-parallel job rewrites its
	// membership record (0: DefaultHeartbeat); a record 4 heartbeats old
	// is a dead shard.
	Heartbeat time.Duration
	// ChunkBytes bounds one allreduce message (0: the collective default).
	ChunkBytes int
	// ShardConcurrency is how many train-shard jobs this instance runs at
	// once (default 4).
	ShardConcurrency int
	// TensorBoardDir, when set, receives a TensorBoard event file per
	// data-parallel job (<dir>/<job>/events.out.tfevents.*), written by
	// the shard that is rank 0.
	TensorBoardDir string
	// TensorThreads is how many threads each shard of a tensor-parallel
	// job runs its math on (0: GOMAXPROCS). Tensor-parallel shards compute
	// in the trainer process, not in a plugin (see tp.go).
	TensorThreads int
}

// Service is one trainer shard.
type Service struct {
	bus        *bus.Bus
	host       Launcher
	log        *slog.Logger
	heartbeat  time.Duration
	chunkBytes int
	shardConc  int
	tbDir      string
	tpThreads  int
	gauges     gauges
}

// Result is what a train job reports.
type Result struct {
	Model          string  `json:"model"`
	Checkpoint     string  `json:"checkpoint"`
	Parameters     uint64  `json:"parameters"`
	Steps          int     `json:"steps"`
	Tokens         int64   `json:"tokens"`
	InitialLoss    float64 `json:"initial_val_loss"`
	FinalLoss      float64 `json:"final_val_loss"`
	FinalTrainLoss float64 `json:"final_train_loss"`
	TokensPerSec   float64 `json:"tokens_per_sec"`
	Seconds        float64 `json:"seconds"`
	Restarts       int     `json:"plugin_restarts"`
	Backend        string  `json:"backend"`

	// Data-parallel jobs only: the most shards that trained at once, the
	// last generation of the ring, the steps resumed from after a
	// re-form, this shard's rank in the last generation, its seconds in
	// allreduce; Spare: this shard waited and was not needed.
	Shards           int     `json:"shards,omitempty"`
	Generations      int     `json:"generations,omitempty"`
	ResumedAt        []int   `json:"resumed_at,omitempty"`
	Rank             int     `json:"rank,omitempty"`
	AllReduceSeconds float64 `json:"allreduce_seconds,omitempty"`
	StoppedEarly     bool    `json:"stopped_early,omitempty"`
	Spare            bool    `json:"spare,omitempty"`
	// Parallel is "tensor" for tensor-parallel jobs; AllReduceSeconds
	// then counts the activation and gradient-norm allreduces of the
	// training steps, AllReduces how many there were, and
	// AllReduceWaitSeconds the part of AllReduceSeconds the computation
	// waited for (the backward pass overlaps the rest). In data-parallel
	// jobs AllReduceWaitSeconds is likewise the part of the gradient
	// allreduces (bucket by bucket, Spec.BucketMB) a step waited for after
	// its backward pass.
	Parallel             string  `json:"parallel,omitempty"`
	AllReduces           int64   `json:"allreduces,omitempty"`
	AllReduceWaitSeconds float64 `json:"allreduce_wait_seconds,omitempty"`
}

// New validates cfg and builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Bus == nil || cfg.Host == nil {
		return nil, errors.New("trainer: config needs a bus and a plugin host")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Heartbeat < 0 || cfg.ChunkBytes < 0 || cfg.ShardConcurrency < 0 || cfg.TensorThreads < 0 {
		return nil, errors.New("trainer: negative heartbeat, chunk bytes, shard concurrency or tensor threads")
	}
	s := &Service{bus: cfg.Bus, host: cfg.Host, log: log.With("service", "trainer"), heartbeat: cfg.Heartbeat,
		chunkBytes: cfg.ChunkBytes, shardConc: cfg.ShardConcurrency, tbDir: cfg.TensorBoardDir, tpThreads: cfg.TensorThreads}
	if s.heartbeat == 0 {
		s.heartbeat = DefaultHeartbeat
	}
	if s.shardConc == 0 {
		s.shardConc = 4
	}
	return s, nil
}

// Run serves train and train-shard jobs until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() {
		errc <- s.bus.ServeJobs(ctx, bus.KindTrainShard, s.handleShard, bus.WorkerOptions{AckWait: time.Minute, Concurrency: s.shardConc})
	}()
	err := s.bus.ServeJobs(ctx, bus.KindTrain, s.handle, bus.WorkerOptions{AckWait: time.Minute})
	return errors.Join(err, <-errc)
}

// checkpoint is the last saved state a run can resume from.
type checkpoint struct {
	ref  string
	step int
}

type run struct {
	s       *Service
	job     *bus.Job
	spec    Spec
	be      *accel.Plugin
	train   []int32
	val     []int32
	modelID string
	ckpt    checkpoint
	params  uint64
	tokRef  string // the tokenizer's object ref, resolved before training
	rep     *reporter
}

func (s *Service) handle(ctx context.Context, job *bus.Job) ([]byte, error) {
	r := &run{s: s, job: job, modelID: job.ID}
	if err := jobspec.Decode("train", job.Spec, &r.spec); err != nil {
		return nil, err
	}
	if r.spec.Shards > 0 {
		return s.handleDistributed(ctx, job)
	}
	var err error
	// Metrics go to the job's events, TensorBoard and the Prometheus
	// gauges, as for data-parallel jobs.
	if r.rep, err = s.newReporter(job.ID, job.Emitter); err != nil {
		return nil, err
	}
	defer r.rep.close()
	if r.tokRef, r.train, r.val, err = s.prepare(ctx, &r.spec); err != nil {
		return nil, err
	}
	if r.be, err = s.host.Launch(ctx, r.spec.Backend); err != nil {
		return nil, fmt.Errorf("trainer: launch %s backend: %w", r.spec.Backend, err)
	}
	defer r.be.Close()
	job.Log(fmt.Sprintf("backend %s started (pid %d)", r.spec.Backend, r.be.Pid()))
	return r.run(ctx)
}

// shardJob is the spec of a train-shard job.
type shardJob struct {
	Job  string          `json:"job"`
	Spec json.RawMessage `json:"spec"`
}

// handleDistributed runs a data-parallel job: it asks for shards-1 more
// shards (train-shard jobs any trainer instance may take) and is a shard
// itself.
func (s *Service) handleDistributed(ctx context.Context, job *bus.Job) ([]byte, error) {
	var sp Spec
	if err := jobspec.Decode("train", job.Spec, &sp); err != nil {
		return nil, err
	}
	spec, err := json.Marshal(shardJob{Job: job.ID, Spec: job.Spec})
	if err != nil {
		return nil, err
	}
	// The job's own shard joins first, so it normally leads.
	submit := func() error {
		for i := 1; i < sp.Shards; i++ {
			id := fmt.Sprintf("%s-shard-%d", job.ID, i)
			if _, err := s.bus.SubmitJob(ctx, bus.KindTrainShard, spec, bus.SubmitOptions{ID: id, Parent: job.ID}); err != nil {
				return fmt.Errorf("trainer: submit shard %d: %w", i, err)
			}
		}
		return nil
	}
	res, err := s.runShard(ctx, job.ID, job.Spec, submit)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// Validate checks the train-shard spec (the train spec itself is checked
// by RunShard).
func (j *shardJob) Validate() error {
	if err := bus.ValidJobID(j.Job); err != nil {
		return err
	}
	if len(j.Spec) == 0 {
		return errors.New("spec (the train job's spec) is required")
	}
	return nil
}

func (s *Service) handleShard(ctx context.Context, job *bus.Job) ([]byte, error) {
	var sj shardJob
	if err := jobspec.Decode("train-shard", job.Spec, &sj); err != nil {
		return nil, err
	}
	res, err := s.RunShard(ctx, sj.Job, sj.Spec)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// prepare resolves the tokenizer and reads the token shards of a spec.
func (s *Service) prepare(ctx context.Context, sp *Spec) (tokRef string, train, val []int32, err error) {
	if sp.Tokenizer != "" {
		tr, err := s.bus.GetTokenizer(ctx, sp.Tokenizer)
		if err != nil {
			return "", nil, nil, fmt.Errorf("trainer: %w", err)
		}
		if int(tr.VocabSize) > sp.cfg.VocabSize {
			return "", nil, nil, fmt.Errorf("trainer: tokenizer %q has %d tokens, more than the model's vocab_size %d", tr.Name, tr.VocabSize, sp.cfg.VocabSize)
		}
		tokRef = tr.Ref
	}
	for _, ref := range sp.TrainRefs {
		ids, err := s.bus.GetTokens(ctx, ref, sp.cfg.VocabSize)
		if err != nil {
			return "", nil, nil, fmt.Errorf("trainer: train shard: %w", err)
		}
		train = append(train, ids...)
	}
	if val, err = s.bus.GetTokens(ctx, sp.ValRef, sp.cfg.VocabSize); err != nil {
		return "", nil, nil, fmt.Errorf("trainer: validation shard: %w", err)
	}
	for name, n := range map[string]int{"train": len(train), "validation": len(val)} {
		if n < sp.SeqLen+1 {
			return "", nil, nil, fmt.Errorf("trainer: %s shard has %d tokens; seq_len %d needs at least %d", name, n, sp.SeqLen, sp.SeqLen+1)
		}
	}
	return tokRef, train, val, nil
}

// load (re)creates the model in the backend: from the last checkpoint when
// there is one, otherwise fresh from the seed.
func (r *run) load(ctx context.Context) error {
	req := accel.LoadRequest{
		ModelID:    r.modelID,
		ConfigJSON: r.spec.Config,
		Seed:       r.spec.Seed,
		Optimizer: &accel.OptimizerConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8,
			WeightDecay: float32(r.spec.WeightDecay), GradClip: float32(r.spec.GradClip),
			LabelSmoothing: float32(r.spec.LabelSmoothing), Precision: r.spec.Precision},
	}
	if r.ckpt.ref != "" {
		w, err := r.s.bus.GetObject(ctx, r.ckpt.ref)
		if err != nil {
			return fmt.Errorf("trainer: read checkpoint %s: %w", r.ckpt.ref, err)
		}
		req.Weights = w
	}
	res, err := r.be.LoadModel(ctx, req)
	if err != nil {
		return err
	}
	r.params = res.Parameters
	return nil
}

func (r *run) lr(step int) float32 { return learningRate(&r.spec, step) }

// learningRate is the schedule: linear warmup to lr, then a cosine to
// min_lr over the remaining steps, or (sgdr) cosines restarting every
// period, each period sgdr_mult times the last.
func learningRate(sp *Spec, step int) float32 {
	if step < sp.Warmup {
		return float32(sp.LR * float64(step+1) / float64(sp.Warmup))
	}
	progress := float64(step-sp.Warmup) / float64(max(sp.Steps-sp.Warmup, 1))
	if sp.Schedule == "sgdr" {
		t, period := float64(step-sp.Warmup), float64(sp.SGDRPeriod)
		for t >= period {
			t -= period
			period *= sp.SGDRMult
		}
		progress = t / period
	}
	return float32(sp.MinLR + 0.5*(sp.LR-sp.MinLR)*(1+math.Cos(math.Pi*progress)))
}

// batch draws step's training batch: random windows from an RNG seeded by
// the job seed and the step, so a resumed run sees the same data.
func (r *run) batch(step int) (in, tgt []int32) {
	B, T := r.spec.Batch, r.spec.SeqLen
	rng := rand.New(rand.NewPCG(r.spec.Seed, uint64(step)))
	in, tgt = make([]int32, B*T), make([]int32, B*T)
	for b := range B {
		off := rng.IntN(len(r.train) - T)
		copy(in[b*T:], r.train[off:off+T])
		copy(tgt[b*T:], r.train[off+1:off+T+1])
	}
	return in, tgt
}

// evaluate is the mean loss over a fixed set of validation windows.
func (r *run) evaluate(ctx context.Context) (float64, error) {
	B, T := r.spec.Batch, r.spec.SeqLen
	windows := (len(r.val) - 1) / T
	n := min(r.spec.EvalBatches*B, windows)
	stride := max(windows/n, 1)
	var sum float64
	var count int64
	for start := 0; start < n; start += B {
		rows := min(B, n-start)
		in, tgt := make([]int32, rows*T), make([]int32, rows*T)
		for i := range rows {
			off := (start + i) * stride * T
			copy(in[i*T:], r.val[off:off+T])
			copy(tgt[i*T:], r.val[off+1:off+T+1])
		}
		res, err := r.be.Evaluate(ctx, accel.EvalRequest{ModelID: r.modelID, Batch: rows, SeqLen: T, Inputs: in, Targets: tgt})
		if err != nil {
			return 0, err
		}
		sum += res.Loss * float64(res.Tokens)
		count += res.Tokens
	}
	return sum / float64(count), nil
}

func (r *run) save(ctx context.Context, step int) error {
	res, err := r.be.SaveWeights(ctx, accel.SaveRequest{ModelID: r.modelID, WithOptimizer: true})
	if err != nil {
		return err
	}
	info, err := r.s.bus.PutBytes(ctx, res.Safetensors)
	if err != nil {
		return fmt.Errorf("trainer: store checkpoint: %w", err)
	}
	r.ckpt = checkpoint{ref: info.Ref, step: step}
	r.job.Artifact("checkpoint", fmt.Sprintf("%s/step-%06d", r.spec.Model, step), info.Ref, info.Size)
	return nil
}

// recover handles a failed backend call: when the plugin died (and was
// restarted), reload the last checkpoint and return the step to resume at.
func (r *run) recover(ctx context.Context, err error, restarts *int) (int, error) {
	if !errors.Is(err, accel.ErrPluginDied) || ctx.Err() != nil {
		return 0, err
	}
	*restarts++
	if *restarts > r.spec.MaxRestarts {
		return 0, fmt.Errorf("trainer: backend %s died %d times, more than max_restarts %d: %w", r.spec.Backend, *restarts, r.spec.MaxRestarts, err)
	}
	r.rep.restarted()
	r.job.Log(fmt.Sprintf("backend %s died (%v); restarting from checkpoint at step %d", r.spec.Backend, err, r.ckpt.step))
	r.s.log.Warn("plugin died, resuming", "job", r.job.ID, "step", r.ckpt.step, "err", err)
	var lerr error
	for range 3 { // the host restarts the process; loading may race its start
		if lerr = r.load(ctx); lerr == nil {
			r.job.Log(fmt.Sprintf("resumed from step %d on backend pid %d", r.ckpt.step, r.be.Pid()))
			return r.ckpt.step, nil
		}
		if !errors.Is(lerr, accel.ErrPluginDied) {
			break
		}
	}
	return 0, fmt.Errorf("trainer: reload after plugin restart: %w", lerr)
}

func (r *run) run(ctx context.Context) ([]byte, error) {
	sp := r.spec
	res := Result{Model: sp.Model, Steps: sp.Steps, Backend: sp.Backend}
	// The start: a fresh model, its initial loss and the step-0 checkpoint;
	// a plugin that dies here is restarted like anywhere else.
	var initial float64
	for {
		err := r.load(ctx)
		if err == nil {
			initial, err = r.evaluate(ctx)
		}
		if err == nil {
			err = r.save(ctx, 0)
		}
		if err == nil {
			break
		}
		if _, err = r.recover(ctx, err, &res.Restarts); err != nil {
			return nil, fmt.Errorf("trainer: start: %w", err)
		}
	}
	r.job.Metric("val_loss", initial, 0)
	r.job.Log(fmt.Sprintf("model %s: %d parameters, initial validation loss %.4f", sp.Model, r.params, initial))
	res.Parameters, res.InitialLoss = r.params, initial
	start := time.Now()
	windowStart, windowTokens := time.Now(), 0
	tokensPerStep := int64(sp.Batch * sp.SeqLen)
	var trainLoss, final float64
	for step := 0; ; {
		if step == sp.Steps {
			// The end: a final evaluation and checkpoint, which a dying
			// plugin can interrupt like any other step.
			var err error
			if final, err = r.evaluate(ctx); err == nil {
				err = r.save(ctx, sp.Steps)
			}
			if err == nil {
				break
			}
			if step, err = r.recover(ctx, err, &res.Restarts); err != nil {
				return nil, err
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		in, tgt := r.batch(step)
		lr := r.lr(step)
		ts, err := r.be.TrainStep(ctx, accel.TrainStepRequest{ModelID: r.modelID, Batch: sp.Batch, SeqLen: sp.SeqLen, Inputs: in, Targets: tgt})
		var up accel.UpdateResult
		if err == nil {
			up, err = r.be.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: r.modelID, LearningRate: lr})
		}
		if err != nil {
			if step, err = r.recover(ctx, err, &res.Restarts); err != nil {
				return nil, err
			}
			continue
		}
		step++
		trainLoss = ts.Loss
		res.Tokens += tokensPerStep
		r.rep.stepDone(tokensPerStep)
		windowTokens += int(tokensPerStep)
		if step%sp.LogEvery == 0 || step == sp.Steps {
			tps := float64(windowTokens) / time.Since(windowStart).Seconds()
			windowStart, windowTokens = time.Now(), 0
			r.rep.metric("loss", ts.Loss, step)
			r.rep.metric("lr", float64(lr), step)
			r.rep.metric("grad_norm", up.GradNorm, step)
			r.rep.metric("tokens_per_sec", tps, step)
			r.rep.flush()
			r.job.Progress("train", int64(step), int64(sp.Steps), fmt.Sprintf("loss %.4f, %.0f tok/s", ts.Loss, tps))
		}
		if step%sp.EvalEvery == 0 && step != sp.Steps {
			vl, err := r.evaluate(ctx)
			if err != nil {
				if step, err = r.recover(ctx, err, &res.Restarts); err != nil {
					return nil, err
				}
				continue
			}
			r.rep.metric("val_loss", vl, step)
		}
		if step%sp.CheckpointEvery == 0 && step != sp.Steps {
			if err := r.save(ctx, step); err != nil {
				if step, err = r.recover(ctx, err, &res.Restarts); err != nil {
					return nil, err
				}
				continue
			}
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.TokensPerSec = float64(res.Tokens) / res.Seconds
	res.FinalTrainLoss = trainLoss
	r.rep.metric("val_loss", final, sp.Steps)
	res.FinalLoss, res.Checkpoint = final, r.ckpt.ref

	rec := &busv1.ModelRecord{
		Name: sp.Model, Checkpoint: r.ckpt.ref, Tokenizer: r.tokRef, ConfigJson: sp.Config,
		Parameters: r.params, Step: int64(sp.Steps), ValLoss: final, CreatedAt: timestamppb.Now(), JobId: r.job.ID,
	}
	if err := r.s.bus.PutModel(ctx, rec); err != nil {
		return nil, err
	}
	r.job.Log(fmt.Sprintf("model %s registered: validation loss %.4f -> %.4f in %d steps (%.0f tokens/s)", sp.Model, initial, final, sp.Steps, res.TokensPerSec))
	_ = r.be.Unload(context.WithoutCancel(ctx), r.modelID)
	return json.Marshal(res)
}
