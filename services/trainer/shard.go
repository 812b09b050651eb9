package trainer

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/internal/jobspec"
	"github.com/llmesh/llmesh/services/trainer/collective"
)

// Errors of data-parallel jobs.
var (
	// ErrShardsMissing: fewer shards than the job needs joined before its
	// join timeout.
	ErrShardsMissing = errors.New("trainer: not enough shards")
	// ErrShardMismatch: a shard's model config, tokenizer or training
	// settings differ from the job's.
	ErrShardMismatch = errors.New("trainer: shard does not match the job")
	// errJobDone: the job finished while this shard was a spare.
	errJobDone = errors.New("trainer: job finished")
	// errReform: the ring is re-formed at a checkpoint boundary to let
	// waiting shards in.
	errReform = errors.New("trainer: ring re-formed to admit shards")
)

// Membership timing. A shard rewrites its record every Heartbeat; one not
// rewritten for 4 heartbeats counts as dead.
const (
	DefaultHeartbeat = 500 * time.Millisecond
	pollEvery        = 25 * time.Millisecond
)

// memberInfo is a shard's record in the shards bucket, key "<job>.m-<id>".
type memberInfo struct {
	ID     string `json:"id"`
	Joined int64  `json:"joined"` // unix nanoseconds; the earliest live shard leads
	Host   string `json:"host"`
	PID    int    `json:"pid"`
	// ConfigSHA, Tokenizer and Fingerprint say what the shard would train;
	// they must equal the plan's.
	ConfigSHA   string `json:"config_sha"`
	Tokenizer   string `json:"tokenizer"`
	Fingerprint string `json:"fingerprint"`
	// State is "waiting" (for a plan newer than Gen) or "training" (in Gen,
	// its ring subscribed).
	State string `json:"state"`
	Gen   int    `json:"gen"`
}

// planInfo is one generation of a job's ring, key "<job>.plan" in the
// trainer bucket. The leader writes it with compare-and-set.
type planInfo struct {
	Gen         int      `json:"gen"`
	Members     []string `json:"members"` // ids in rank order
	ConfigSHA   string   `json:"config_sha"`
	Tokenizer   string   `json:"tokenizer"`
	Fingerprint string   `json:"fingerprint"`
	// Checkpoint is the manifest to resume from ("" starts fresh) and Step
	// its step.
	Checkpoint string `json:"checkpoint,omitempty"`
	Step       int    `json:"step"`
	Reason     string `json:"reason"`
	Done       bool   `json:"done,omitempty"`
	// BucketBytes is the gradient bucket size every rank uses (the
	// leader's bucket_mb; 0 in plans written before buckets: the default),
	// so that all ranks cut the same buckets.
	BucketBytes int `json:"bucket_bytes,omitempty"`
}

type member struct {
	s      *Service
	em     *bus.Emitter
	job    string
	spec   Spec
	tokRef string
	train  []int32
	val    []int32
	be     *accel.Plugin
	shards jetstream.KeyValue
	tkv    jetstream.KeyValue
	store  *ckptStore
	log    *slog.Logger
	hb     time.Duration

	mu   sync.Mutex
	info memberInfo

	params   uint64
	restarts int
	res      Result
	best     float64
	badEvals int
}

// RunShard runs one shard of data-parallel train job jobID with spec (a
// train job spec with shards set) until the job is trained, this shard is
// not needed (a spare when the job ends) or the job fails. Any number of
// processes may call it for the same job: they meet in the shards bucket.
// It reports on the job's events; only rank 0 reports metrics and
// registers the model.
func (s *Service) RunShard(ctx context.Context, jobID string, specJSON []byte) (Result, error) {
	return s.runShard(ctx, jobID, specJSON, nil)
}

// runShard is RunShard; joined, when set, runs once the shard has joined.
func (s *Service) runShard(ctx context.Context, jobID string, specJSON []byte, joined func() error) (Result, error) {
	if err := bus.ValidJobID(jobID); err != nil {
		return Result{}, err
	}
	m := &member{s: s, em: s.bus.Emitter(jobID), job: jobID, hb: s.heartbeat, best: math.Inf(1)}
	if err := jobspec.Decode("train", specJSON, &m.spec); err != nil {
		return Result{}, err
	}
	if m.spec.Shards == 0 {
		return Result{}, errors.New("trainer: RunShard needs a spec with shards set")
	}
	var err error
	if m.tokRef, m.train, m.val, err = s.prepare(ctx, &m.spec); err != nil {
		return Result{}, err
	}
	if m.shards, err = s.bus.KeyValue(ctx, bus.BucketShards); err != nil {
		return Result{}, err
	}
	if m.tkv, err = s.bus.TrainerKV(ctx); err != nil {
		return Result{}, err
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	m.log = s.log.With("job", jobID, "shard", hex.EncodeToString(id[:]))
	if m.store, err = newCkptStore(ctx, s.bus, jobID, m.spec.KeepCheckpoints, m.log); err != nil {
		return Result{}, err
	}
	host, _ := os.Hostname()
	m.info = memberInfo{ID: hex.EncodeToString(id[:]), Joined: time.Now().UnixNano(), Host: host, PID: os.Getpid(),
		ConfigSHA: hashHex(compactJSON(m.spec.Config)), Tokenizer: m.tokRef, Fingerprint: m.fingerprint(), State: "waiting"}
	// Tensor-parallel shards compute in this process (tp.go).
	if m.spec.Parallel != ParallelTensor {
		if m.be, err = s.host.Launch(ctx, m.spec.Backend); err != nil {
			return Result{}, fmt.Errorf("trainer: launch %s backend: %w", m.spec.Backend, err)
		}
		defer m.be.Close()
	}

	hctx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	if err := m.beat(ctx); err != nil {
		return Result{}, err
	}
	go m.heartbeat(hctx)
	defer func() { _ = m.shards.Delete(context.WithoutCancel(ctx), m.key()) }()
	if m.be != nil {
		m.log.Info("shard joined", "pid", m.info.PID, "backend_pid", m.be.Pid())
	} else {
		m.log.Info("shard joined", "pid", m.info.PID, "parallel", m.spec.Parallel)
	}
	if joined != nil {
		if err := joined(); err != nil {
			return Result{}, err
		}
	}

	m.res = Result{Model: m.spec.Model, Backend: m.spec.Backend}
	after, need := 0, m.spec.Shards
	for {
		p, err := m.rendezvous(ctx, after, need)
		if errors.Is(err, errJobDone) {
			m.res.Spare = true
			m.em.Log("a spare shard leaves: the job is done")
			return m.res, nil
		}
		if err != nil {
			return m.res, err
		}
		runGen := m.runGen
		if m.spec.Parallel == ParallelTensor {
			runGen = m.runGenTP
		}
		res, err := runGen(ctx, p)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return m.res, ctx.Err()
		}
		after, need = p.Gen, m.spec.MinShards
		if errors.Is(err, errReform) {
			continue
		}
		if !errors.Is(err, collective.ErrTimeout) && !errors.Is(err, accel.ErrPluginDied) {
			return m.res, err
		}
		m.restarts++
		m.log.Warn("ring failed", "gen", p.Gen, "err", err, "restarts", m.restarts)
		if m.restarts > m.spec.MaxRestarts {
			return m.res, fmt.Errorf("trainer: job %s: ring failed %d times, more than max_restarts %d: %w", m.job, m.restarts, m.spec.MaxRestarts, err)
		}
		m.s.gauges.restart(m.job)
	}
}

func compactJSON(b []byte) []byte {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return b
	}
	out, _ := json.Marshal(v)
	return out
}

// fingerprint covers everything the shards must agree on for their
// gradients to mean the same thing.
func (m *member) fingerprint() string {
	sp := m.spec
	js, _ := json.Marshal([]any{compactJSON(sp.Config), m.tokRef, sp.TrainRefs, sp.ValRef, sp.Seed, sp.Steps, sp.Batch, sp.SeqLen,
		sp.GradAccum, sp.LR, sp.MinLR, sp.Warmup, sp.WeightDecay, sp.GradClip, sp.Schedule, sp.SGDRPeriod, sp.SGDRMult, sp.EvalEvery,
		sp.EvalBatches, sp.CheckpointEvery, sp.Patience, sp.Model, sp.LabelSmoothing, sp.Precision})
	if sp.Parallel == ParallelTensor {
		// Kept out of data-parallel fingerprints, which stay as they were.
		js = append(js, ParallelTensor...)
	}
	return hashHex(js)
}

func (m *member) key() string { return m.job + ".m-" + m.info.ID }

func (m *member) beat(ctx context.Context) error {
	m.mu.Lock()
	js, _ := json.Marshal(m.info)
	m.mu.Unlock()
	if _, err := m.shards.Put(ctx, m.key(), js); err != nil {
		return fmt.Errorf("trainer: shard heartbeat: %w", err)
	}
	return nil
}

func (m *member) heartbeat(ctx context.Context) {
	t := time.NewTicker(m.hb)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.beat(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("heartbeat failed", "err", err)
			}
		}
	}
}

// setState records and publishes the shard's state at once.
func (m *member) setState(ctx context.Context, state string, gen int) error {
	m.mu.Lock()
	m.info.State, m.info.Gen = state, gen
	m.mu.Unlock()
	return m.beat(ctx)
}

// live lists the shards of the job whose records are fresh, earliest
// joined first.
func (m *member) live(ctx context.Context) ([]memberInfo, error) {
	lister, err := m.shards.ListKeysFiltered(ctx, m.job+".>")
	if err != nil {
		return nil, fmt.Errorf("trainer: list shards: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	_ = lister.Stop()
	var out []memberInfo
	for _, k := range keys {
		if !strings.HasPrefix(k, m.job+".m-") {
			continue
		}
		e, err := m.shards.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("trainer: read shard %s: %w", k, err)
		}
		if time.Since(e.Created()) > 4*m.hb {
			continue
		}
		var mi memberInfo
		if json.Unmarshal(e.Value(), &mi) != nil {
			continue
		}
		out = append(out, mi)
	}
	slices.SortFunc(out, func(a, b memberInfo) int {
		return cmp.Or(cmp.Compare(a.Joined, b.Joined), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

func (m *member) plan(ctx context.Context) (planInfo, uint64, error) {
	var p planInfo
	e, err := m.tkv.Get(ctx, m.job+".plan")
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return p, 0, nil
	}
	if err != nil {
		return p, 0, fmt.Errorf("trainer: read plan: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return p, 0, fmt.Errorf("trainer: plan of job %s: %w", m.job, err)
	}
	return p, e.Revision(), nil
}

func (m *member) putPlan(ctx context.Context, p planInfo, rev uint64) error {
	js, _ := json.Marshal(p)
	var err error
	if rev == 0 {
		_, err = m.tkv.Create(ctx, m.job+".plan", js)
	} else {
		_, err = m.tkv.Update(ctx, m.job+".plan", js, rev)
	}
	return err
}

// compatible checks this shard against the job's plan.
func (m *member) compatible(p planInfo) error {
	return m.matches(p.ConfigSHA, p.Tokenizer, p.Fingerprint, "the job's")
}

func (m *member) matches(configSHA, tokenizer, fp, whose string) error {
	switch {
	case configSHA != m.info.ConfigSHA:
		return fmt.Errorf("%w: job %s: this shard's model config (sha256 %.12s) differs from %s (%.12s)", ErrShardMismatch, m.job, m.info.ConfigSHA, whose, configSHA)
	case tokenizer != m.info.Tokenizer:
		return fmt.Errorf("%w: job %s: this shard's tokenizer %q differs from %s %q", ErrShardMismatch, m.job, m.info.Tokenizer, whose, tokenizer)
	case fp != m.info.Fingerprint:
		return fmt.Errorf("%w: job %s: this shard's training settings (data, seed, batch, schedule) differ from %s", ErrShardMismatch, m.job, whose)
	}
	return nil
}

// rendezvous waits for a plan newer than gen after that includes this
// shard. The earliest live shard leads: it writes the plan once need
// shards wait and none still trains in the current generation.
func (m *member) rendezvous(ctx context.Context, after, need int) (planInfo, error) {
	if err := m.setState(ctx, "waiting", after); err != nil {
		return planInfo{}, err
	}
	wait := time.Duration(m.spec.JoinTimeout * float64(time.Second))
	deadline := time.Now().Add(wait)
	var noted time.Time
	for {
		p, rev, err := m.plan(ctx)
		if err != nil {
			return p, err
		}
		if p.Done {
			return p, errJobDone
		}
		if p.Gen > after {
			if err := m.compatible(p); err != nil {
				return p, err
			}
			if slices.Contains(p.Members, m.info.ID) {
				return p, nil
			}
		}
		live, err := m.live(ctx)
		if err != nil {
			return p, err
		}
		var waiting []string
		busy := false
		for _, l := range live {
			switch {
			case l.State == "training" && l.Gen == p.Gen:
				busy = true
			case l.State == "waiting" && l.Fingerprint == m.info.Fingerprint && l.ConfigSHA == m.info.ConfigSHA && l.Tokenizer == m.info.Tokenizer:
				waiting = append(waiting, l.ID)
			}
		}
		if busy {
			// The job makes progress (this shard is a spare, or a peer has
			// not noticed the failure yet): the join deadline restarts.
			deadline = time.Now().Add(wait)
		}
		leader := len(live) > 0 && live[0].ID == m.info.ID
		if len(live) > 0 && !leader {
			// The earliest shard defines the job.
			if err := m.matches(live[0].ConfigSHA, live[0].Tokenizer, live[0].Fingerprint, "the leading shard's"); err != nil {
				return p, err
			}
		}
		if leader && !busy && len(waiting) >= need {
			np := planInfo{Gen: p.Gen + 1, Members: waiting[:min(len(waiting), m.spec.MaxShards)],
				ConfigSHA: m.info.ConfigSHA, Tokenizer: m.info.Tokenizer, Fingerprint: m.info.Fingerprint, Reason: "start",
				BucketBytes: bucketBytes(m.spec.BucketMB)}
			if p.Gen == 0 {
				np.Members = waiting[:m.spec.Shards]
			} else {
				np.Reason = "re-form"
			}
			ref, mf, _, err := m.store.Latest(ctx)
			switch {
			case err == nil:
				np.Checkpoint, np.Step = ref, mf.Step
			case !errors.Is(err, ErrNoCheckpoint):
				return p, err
			case strings.Contains(err.Error(), ": "):
				// Checkpoints exist but none loads.
				m.em.Log(fmt.Sprintf("no loadable checkpoint (%v); starting from the seed", err))
			}
			if err := m.putPlan(ctx, np, rev); err == nil {
				m.em.Log(fmt.Sprintf("generation %d: %d shards (%s), resuming at step %d (%s)", np.Gen, len(np.Members), np.Reason, np.Step, orFresh(np.Checkpoint)))
				continue
			} else if !isConflict(err) {
				return p, fmt.Errorf("trainer: write plan: %w", err)
			}
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("%w: job %s needs %d shards; %d joined within %s", ErrShardsMissing, m.job, need, len(waiting), wait)
		}
		if leader && time.Since(noted) > 2*time.Second {
			noted = time.Now()
			m.em.Log(fmt.Sprintf("waiting for shards: %d of %d joined (deadline in %s)", len(waiting), need, time.Until(deadline).Round(time.Second)))
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

func orFresh(ref string) string {
	if ref == "" {
		return "fresh from the seed"
	}
	return "checkpoint " + ref
}

// barrier waits until every member of p has subscribed its ring.
func (m *member) barrier(ctx context.Context, p planInfo) error {
	timeout := time.Duration(m.spec.CollectiveTimeout * float64(time.Second))
	deadline := time.Now().Add(timeout)
	for {
		live, err := m.live(ctx)
		if err != nil {
			return err
		}
		ready := 0
		for _, l := range live {
			if slices.Contains(p.Members, l.ID) && l.Gen >= p.Gen {
				ready++
			}
		}
		if ready == len(p.Members) {
			return nil
		}
		if time.Now().After(deadline) {
			return &collective.TimeoutError{Rank: slices.Index(p.Members, m.info.ID), Peer: -1, Phase: fmt.Sprintf("barrier of generation %d (%d of %d ready)", p.Gen, ready, len(p.Members)), Waited: timeout}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

// gen is the state of one generation of the ring on this shard.
type gen struct {
	p     planInfo
	rank  int
	world int
	ring  *collective.Ring
	rep   *reporter // rank 0 only
}

// runGen trains in generation p from its checkpoint until the job ends or
// the ring fails.
func (m *member) runGen(ctx context.Context, p planInfo) (Result, error) {
	g, stop, err := m.startGen(ctx, p)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	step, err := m.load(ctx, p)
	if err != nil {
		return Result{}, err
	}
	m.res.Shards = max(m.res.Shards, g.world)
	m.res.Generations = p.Gen
	if p.Gen > 1 {
		m.res.ResumedAt = append(m.res.ResumedAt, step)
	}
	if step > 0 {
		if g.rank == 0 {
			m.em.Log(fmt.Sprintf("resumed from step %d with %d shards", step, g.world))
		}
	} else {
		vl, err := m.evaluate(ctx, g, 0)
		if err != nil {
			return Result{}, err
		}
		m.res.InitialLoss = vl
		if g.rank == 0 {
			g.rep.metric("val_loss", vl, 0)
			m.em.Log(fmt.Sprintf("model %s: %d parameters, initial validation loss %.4f, %d shards", m.spec.Model, m.params, vl, g.world))
		}
	}
	return m.loop(ctx, g, step)
}

// startGen joins generation p — its ring, the reporter on rank 0, the
// "training" state and the barrier — for runGen and runGenTP; stop
// releases what it made.
func (m *member) startGen(ctx context.Context, p planInfo) (g *gen, stop func(), err error) {
	g = &gen{p: p, rank: slices.Index(p.Members, m.info.ID), world: len(p.Members)}
	g.ring, err = collective.New(collective.Config{Conn: m.s.bus.Conn(), Prefix: bus.TrainerSubject(m.job, p.Gen), Rank: g.rank, World: g.world,
		Timeout: time.Duration(m.spec.CollectiveTimeout * float64(time.Second)), ChunkBytes: m.s.chunkBytes})
	if err != nil {
		return nil, nil, err
	}
	stop = g.ring.Close
	if g.rank == 0 {
		if g.rep, err = m.s.newReporter(m.job, m.em); err != nil {
			stop()
			return nil, nil, err
		}
		stop = func() { g.rep.close(); g.ring.Close() }
	}
	if err = m.setState(ctx, "training", p.Gen); err == nil {
		err = m.barrier(ctx, p)
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	return g, stop, nil
}

// resume reads checkpoint ref for this member — refusing one written by
// other training settings — restores the early-stopping state it recorded
// and returns its weights and step.
func (m *member) resume(ctx context.Context, ref string) ([]byte, int, error) {
	mf, w, err := m.store.Load(ctx, ref)
	if err != nil {
		return nil, 0, fmt.Errorf("trainer: resume: %w", err)
	}
	if mf.Fingerprint != m.info.Fingerprint {
		return nil, 0, fmt.Errorf("%w: checkpoint %s was written by other training settings", ErrShardMismatch, ref)
	}
	m.best, m.badEvals = mf.BestValLoss, mf.BadEvals
	if m.best == 0 {
		m.best = math.Inf(1)
	}
	return w, mf.Step, nil
}

// load creates the model in the backend, from the plan's checkpoint when
// it has one, and returns the step to start at.
func (m *member) load(ctx context.Context, p planInfo) (int, error) {
	req := accel.LoadRequest{ModelID: m.job, ConfigJSON: m.spec.Config, Seed: m.spec.Seed,
		Optimizer: &accel.OptimizerConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: float32(m.spec.WeightDecay), GradClip: float32(m.spec.GradClip),
			LabelSmoothing: float32(m.spec.LabelSmoothing), Precision: m.spec.Precision}}
	step := 0
	m.best, m.badEvals = math.Inf(1), 0
	if p.Checkpoint != "" {
		var err error
		if req.Weights, step, err = m.resume(ctx, p.Checkpoint); err != nil {
			return 0, err
		}
	}
	_ = m.be.Unload(ctx, m.job)
	res, err := m.be.LoadModel(ctx, req)
	if err != nil {
		return 0, err
	}
	m.params = res.Parameters
	m.res.Parameters = res.Parameters
	return step, nil
}

// rows is this rank's share [lo, hi) of n rows.
func (g *gen) rows(n int) (int, int) { return g.rank * n / g.world, (g.rank + 1) * n / g.world }

// windows draws step's global batch: Batch*GradAccum random windows from
// PCG(seed, step), the same stream the single-shard trainer draws.
func (m *member) windows(step int) []int {
	rng := mrand.New(mrand.NewPCG(m.spec.Seed, uint64(step)))
	offs := make([]int, m.spec.Batch*m.spec.GradAccum)
	for i := range offs {
		offs[i] = rng.IntN(len(m.train) - m.spec.SeqLen)
	}
	return offs
}

// DefaultBucketMB is Spec.BucketMB's default. Buckets much larger than a
// layer hide less: the buckets holding the first layer and the embeddings
// (finished last) wait for the end of the backward pass anyway. On the
// bench model (4 layers of 3 MiB, 4 MiB of embeddings) 1 MiB buckets hid
// about two thirds of the allreduce time, 4 MiB ones a quarter to a half.
const DefaultBucketMB = 1

// bucketBytes is the bucket size of bucket_mb MiB (0: the default), in
// bytes.
func bucketBytes(mb float64) int {
	if mb == 0 {
		mb = DefaultBucketMB
	}
	return int(mb * (1 << 20))
}

// buckets cuts the n gradients into the pieces all-reduced one by one:
// size each, from the end of the vector down (the backward pass finishes
// the last layers first), the one holding gradient 0 possibly shorter.
// Every rank cuts the same buckets: they depend on n and the plan only.
type buckets struct{ n, size int }

func (g *gen) buckets(n int) buckets {
	b := g.p.BucketBytes
	if b <= 0 {
		b = bucketBytes(DefaultBucketMB)
	}
	return buckets{n: n, size: max(b/4, 1024)}
}

// count is how many buckets there are (at least 1).
func (b buckets) count() int { return max(1, (b.n+b.size-1)/b.size) }

// bounds is bucket k's range.
func (b buckets) bounds(k int) (lo, hi int) {
	hi = b.n - k*b.size
	return max(0, hi-b.size), hi
}

// seqs is how many allreduce sequence numbers one step takes: its
// evaluation, its buckets, the loss and control slots, the final
// evaluation (see member.loop).
func (b buckets) seqs() uint64 { return uint64(b.count()) + 3 }

// arTimes is what one step spent in allreduce: in all (Total), and the
// part the step waited for after its backward pass ended (Exposed; the
// rest overlapped the backward pass).
type arTimes struct{ Total, Exposed time.Duration }

// gradients runs this rank's rows of every micro-batch of step and
// all-reduces the mean gradient over the ring, bucket by bucket from seq
// on, each bucket as soon as the last micro-batch's backward pass has
// finished it; then the loss share and control slot appended after the
// gradients (seq + count of buckets). It returns the reduced vector.
func (m *member) gradients(ctx context.Context, g *gen, step int, seq uint64, control float32) ([]float32, arTimes, error) {
	sp, T := m.spec, m.spec.SeqLen
	offs := m.windows(step)
	n := int(m.params)
	acc := make([]float32, n+2)
	total := float64(len(offs))
	lo, hi := g.rows(sp.Batch)
	rows := hi - lo
	w := float32(float64(rows) / total)
	bk := g.buckets(n)
	var times arTimes

	// The bucket worker all-reduces buckets in order as they are handed
	// over; a failure cancels the step.
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ready := make(chan int, bk.count())
	done := make(chan struct{})
	var arErr error
	go func() {
		defer close(done)
		for k := range ready {
			if arErr != nil {
				continue
			}
			a, b := bk.bounds(k)
			st, err := g.ring.AllReduce(bctx, seq+uint64(k), acc[a:b])
			times.Total += st.Duration
			if err != nil {
				arErr = err
				cancel(err)
			}
		}
	}()
	// left[k] counts bucket k's gradients not yet accumulated; next is the
	// first bucket not handed over.
	left := make([]int, bk.count())
	for k := range left {
		a, b := bk.bounds(k)
		left[k] = b - a
	}
	next := 0
	finished := func(lo, hi int) {
		for k := (n - hi) / bk.size; k < len(left); k++ {
			a, b := bk.bounds(k)
			if b <= lo {
				break
			}
			left[k] -= min(b, hi) - max(a, lo)
		}
		for next < len(left) && left[next] == 0 {
			ready <- next
			next++
		}
	}
	stop := func(err error) ([]float32, arTimes, error) {
		cancel(err)
		close(ready)
		<-done
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case arErr != nil:
			err = arErr // the ring failed first: the step was cancelled for it
		}
		return nil, times, err
	}

	var loss float64
	for a := range sp.GradAccum {
		if rows == 0 {
			break
		}
		in, tgt := make([]int32, rows*T), make([]int32, rows*T)
		for i := range rows {
			off := offs[a*sp.Batch+lo+i]
			copy(in[i*T:], m.train[off:off+T])
			copy(tgt[i*T:], m.train[off+1:off+T+1])
		}
		req := accel.TrainStepRequest{ModelID: m.job, Batch: rows, SeqLen: T, Inputs: in, Targets: tgt, ReturnGradients: true}
		last := a == sp.GradAccum-1
		if last {
			// Accumulate each finished range and hand over the buckets it
			// completes while the backward pass goes on.
			req.GradientsReady = func(lo, hi int, vals []float32) {
				if hi > n {
					return // checked below, from the result
				}
				dst := acc[lo:hi]
				for i, v := range vals {
					dst[i] += v * w
				}
				finished(lo, hi)
			}
		}
		ts, err := m.be.TrainStep(bctx, req)
		if err != nil {
			return stop(err)
		}
		if len(ts.Gradients) != n {
			return stop(fmt.Errorf("trainer: the backend returned %d gradients for a model of %d parameters", len(ts.Gradients), n))
		}
		if !last {
			for i, v := range ts.Gradients {
				acc[i] += v * w
			}
		}
		loss += ts.Loss * float64(rows) / total
	}
	if rows == 0 { // more shards than rows: this rank contributes zeros
		finished(0, n)
	}
	if next != len(left) {
		return stop(fmt.Errorf("trainer: the backend reported %d of %d gradient buckets finished", next, len(left)))
	}
	close(ready)
	waitFrom := time.Now()
	<-done
	if arErr != nil {
		return nil, times, arErr
	}
	acc[n], acc[n+1] = float32(loss), control
	st, err := g.ring.AllReduce(ctx, seq+uint64(len(left)), acc[n:])
	times.Total += st.Duration
	// What the step waited for (bounded by the allreduce time itself: the
	// rest of the wait is scheduling).
	times.Exposed = min(time.Since(waitFrom), times.Total)
	if err != nil {
		return nil, times, err
	}
	return acc, times, nil
}

// evaluate is the mean validation loss over the same windows as the
// single-shard trainer's, split across the ranks.
func (m *member) evaluate(ctx context.Context, g *gen, seq uint64) (float64, error) {
	B, T := m.spec.Batch, m.spec.SeqLen
	windows := (len(m.val) - 1) / T
	n := min(m.spec.EvalBatches*B, windows)
	stride := max(windows/n, 1)
	var mine []int
	for i := g.rank; i < n; i += g.world {
		mine = append(mine, i*stride*T)
	}
	var sum, count float64
	for start := 0; start < len(mine); start += B {
		rows := min(B, len(mine)-start)
		in, tgt := make([]int32, rows*T), make([]int32, rows*T)
		for i := range rows {
			off := mine[start+i]
			copy(in[i*T:], m.val[off:off+T])
			copy(tgt[i*T:], m.val[off+1:off+T+1])
		}
		res, err := m.be.Evaluate(ctx, accel.EvalRequest{ModelID: m.job, Batch: rows, SeqLen: T, Inputs: in, Targets: tgt})
		if err != nil {
			return 0, err
		}
		sum += res.Loss * float64(res.Tokens)
		count += float64(res.Tokens)
	}
	v := []float32{float32(sum), float32(count)}
	if _, err := g.ring.AllReduce(ctx, seq, v); err != nil {
		return 0, err
	}
	return float64(v[0]) / float64(v[1]), nil
}

// stepMetrics is what a finished step of a sharded job reports. For
// data-parallel jobs allReduce counts every gradient bucket, overlapped
// with the backward pass or not, and waited what the step waited for after
// its backward pass; for tensor-parallel ones the step's activation and
// gradient allreduces and the part the computation waited for.
type stepMetrics struct {
	loss, gradNorm    float64
	lr                float32
	allReduce, waited time.Duration
}

// logWindow is the logging window tokens/s is measured over.
type logWindow struct {
	start  time.Time
	tokens int64
}

// stepDone is a sharded loop's bookkeeping after a step (step counts the
// steps done), the same in both modes: the result's totals, rank 0's
// counters and, every LogEvery steps and at the last, its metrics and the
// progress line (kind names the shards in it).
func (m *member) stepDone(rep *reporter, rank, world, step int, st stepMetrics, win *logWindow, kind string) {
	sp := &m.spec
	tokens := int64(sp.Batch * sp.GradAccum * sp.SeqLen)
	m.res.FinalTrainLoss = st.loss
	m.res.Tokens += tokens
	win.tokens += tokens
	if rank != 0 {
		return
	}
	rep.stepDone(tokens)
	rep.allReduced(st.allReduce)
	if step%sp.LogEvery != 0 && step != sp.Steps {
		return
	}
	tps := float64(win.tokens) / time.Since(win.start).Seconds()
	*win = logWindow{start: time.Now()}
	rep.metric("loss", st.loss, step)
	rep.metric("lr", float64(st.lr), step)
	rep.metric("grad_norm", st.gradNorm, step)
	rep.metric("tokens_per_sec", tps, step)
	rep.metric("allreduce_ms", float64(st.allReduce.Microseconds())/1000, step)
	rep.metric("allreduce_wait_ms", float64(st.waited.Microseconds())/1000, step)
	rep.g.set(m.job, "step", float64(step))
	rep.g.set(m.job, "shards", float64(world))
	rep.flush()
	m.em.Progress("train", int64(step), int64(sp.Steps), fmt.Sprintf("loss %.4f, %.0f tok/s, %d %s", st.loss, tps, world, kind))
}

// validated records step's validation loss (rank 0 reports it) and
// reports whether the patience has run out: the loop then stops early.
func (m *member) validated(rep *reporter, rank, step int, vl float64) bool {
	if rank == 0 {
		rep.metric("val_loss", vl, step)
	}
	if vl < m.best {
		m.best, m.badEvals = vl, 0
	} else {
		m.badEvals++
	}
	if m.spec.Patience == 0 || m.badEvals < m.spec.Patience {
		return false
	}
	if rank == 0 {
		m.em.Log(fmt.Sprintf("early stop at step %d: validation loss has not improved for %d evaluations (best %.4f)", step, m.badEvals, m.best))
	}
	m.res.StoppedEarly = true
	return true
}

func (m *member) loop(ctx context.Context, g *gen, step int) (Result, error) {
	sp := m.spec
	start := time.Now()
	win := logWindow{start: time.Now()}
	var arTime, arWait time.Duration
	bk := g.buckets(int(m.params))
	stride := bk.seqs()
	reform := false
	for step < sp.Steps {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		var control float32
		if reform {
			control = 1
		}
		// Allreduce sequence numbers rise through a step: with K buckets,
		// (K+3)s evaluates at step s, the next K reduce its gradient
		// buckets, the next its loss and control slot, and (K+3)s+K+2 is
		// the final evaluation.
		vec, ar, err := m.gradients(ctx, g, step, uint64(step)*stride+1, control)
		if err != nil {
			return Result{}, err
		}
		arTime += ar.Total
		arWait += ar.Exposed
		if vec[len(vec)-1] > 0 {
			if g.rank == 0 {
				m.em.Log(fmt.Sprintf("re-forming the ring at step %d to admit waiting shards", step))
			}
			return Result{}, errReform
		}
		lr := learningRate(&m.spec, step)
		up, err := m.be.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: m.job, LearningRate: lr, Gradients: vec[:len(vec)-2]})
		if err != nil {
			return Result{}, err
		}
		step++
		m.stepDone(g.rep, g.rank, g.world, step, stepMetrics{loss: float64(vec[len(vec)-2]), gradNorm: up.GradNorm, lr: lr,
			allReduce: ar.Total, waited: ar.Exposed}, &win, "shards")
		if step%sp.EvalEvery == 0 && step != sp.Steps {
			vl, err := m.evaluate(ctx, g, uint64(step)*stride)
			if err != nil {
				return Result{}, err
			}
			if m.validated(g.rep, g.rank, step, vl) {
				break
			}
		}
		if step%sp.CheckpointEvery == 0 && step != sp.Steps {
			if g.rank == 0 {
				if _, err := m.save(ctx, g, step); err != nil {
					return Result{}, err
				}
				spare, err := m.spares(ctx, g)
				if err != nil {
					return Result{}, err
				}
				reform = spare
			}
		}
	}
	final, err := m.evaluate(ctx, g, uint64(step)*stride+stride-1)
	if err != nil {
		return Result{}, err
	}
	res := m.res
	res.Steps, res.FinalLoss = step, final
	res.Seconds = time.Since(start).Seconds()
	res.TokensPerSec = float64(res.Tokens) / res.Seconds
	res.AllReduceSeconds, res.AllReduceWaitSeconds = arTime.Seconds(), arWait.Seconds()
	m.log.Info("gradient allreduce", "buckets", bk.count(), "bucket_bytes", 4*bk.size,
		"total_s", arTime.Seconds(), "waited_s", arWait.Seconds(), "hidden_s", (arTime - arWait).Seconds())
	res.Restarts = m.restarts
	res.Rank = g.rank
	if g.rank != 0 {
		// Done when rank 0 has registered the model; if it dies first, the
		// ring re-forms and the job ends again from the last checkpoint.
		return res, m.awaitDone(ctx, g)
	}
	mref, err := m.save(ctx, g, step)
	if err != nil {
		return Result{}, err
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
	// Spares waiting for a generation may leave.
	if p, rev, err := m.plan(ctx); err == nil && p.Gen == g.p.Gen {
		p.Done = true
		_ = m.putPlan(ctx, p, rev)
	}
	m.em.Log(fmt.Sprintf("model %s registered: validation loss %.4f -> %.4f in %d steps on %d shards (%.0f tokens/s)", sp.Model, res.InitialLoss, final, step, g.world, res.TokensPerSec))
	return res, nil
}

// awaitDone waits until rank 0 marks the plan done.
func (m *member) awaitDone(ctx context.Context, g *gen) error {
	timeout := time.Duration(m.spec.CollectiveTimeout * float64(time.Second))
	deadline := time.Now().Add(timeout)
	for {
		p, _, err := m.plan(ctx)
		if err != nil {
			return err
		}
		if p.Done {
			return nil
		}
		if time.Now().After(deadline) {
			return &collective.TimeoutError{Rank: g.rank, Peer: 0, Phase: "registration of the model", Waited: timeout}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

// spares reports whether shards wait to join and the ring may grow.
func (m *member) spares(ctx context.Context, g *gen) (bool, error) {
	if g.world >= m.spec.MaxShards {
		return false, nil
	}
	live, err := m.live(ctx)
	if err != nil {
		return false, err
	}
	for _, l := range live {
		if l.State == "waiting" && !slices.Contains(g.p.Members, l.ID) && l.Fingerprint == m.info.Fingerprint {
			return true, nil
		}
	}
	return false, nil
}

// save writes a checkpoint at step (rank 0 only) and returns its manifest
// ref.
func (m *member) save(ctx context.Context, g *gen, step int) (string, error) {
	w, err := m.be.SaveWeights(ctx, accel.SaveRequest{ModelID: m.job, WithOptimizer: true})
	if err != nil {
		return "", err
	}
	ref, err := m.store.Save(ctx, Manifest{Step: step, Fingerprint: m.info.Fingerprint, Seed: m.spec.Seed, DataPosition: int64(step),
		BestValLoss: finiteOr0(m.best), BadEvals: m.badEvals, World: g.world}, w.Safetensors)
	if err != nil {
		return "", err
	}
	m.em.Artifact("checkpoint", fmt.Sprintf("%s/step-%06d", m.spec.Model, step), ref, int64(len(w.Safetensors)))
	return ref, nil
}

func finiteOr0(v float64) float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0
	}
	return v
}
