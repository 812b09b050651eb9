package transformer

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/llmesh/llmesh/accel/simd"
)

// Tensor parallelism (Megatron style) splits every layer of the model
// across World ranks that run the same batch in lockstep:
//
//   - attention: rank r owns heads [r·H/W, (r+1)·H/W): its columns of the
//     q, k and v parts of attn.c_attn (weight and bias) and the matching
//     input rows of attn.c_proj's weight;
//   - MLP: rank r owns columns [r·4D/W, (r+1)·4D/W) of mlp.c_fc (and of
//     mlp.c_gate for SwiGLU), weight and bias, and the matching input rows
//     of mlp.c_proj's weight;
//   - everything else — embeddings, norms, the c_proj biases, the tied LM
//     head — is replicated on every rank.
//
// Forward, each layer needs two activation allreduces (the partial
// outputs of attn.c_proj and mlp.c_proj, summed before the replicated
// bias, residual add and norm); backward, two allreduces of the partial
// input gradients of c_attn and c_fc (summed before the norms' backward).
// Replicated parameters see the full, identical activations on every rank,
// so their gradients come out identical without any communication.
//
// The allreduce is the caller's (an AllReduceFunc): in-process for tests,
// package services/trainer/collective's ring over NATS in the trainer.

// AllReduceFunc replaces data, on every rank of a tensor-parallel group, by
// the element-wise sum of all ranks' data. seq numbers the calls: it rises
// by one per call and is the same on every rank for the same call. Every
// rank must end with bit-identical values (the replicated computation that
// follows must not drift apart). It is called on a goroutine of its own
// (so that the backward pass can overlap it with other work), never twice
// at once for one TPModel.
type AllReduceFunc func(ctx context.Context, seq uint64, data []float32) error

// TPConfig places a TPModel in its group.
type TPConfig struct {
	// Rank and World: this rank and the group size. World must divide
	// n_head and 4·n_embd.
	Rank, World int
	// AllReduce sums activations and gradients across the group.
	AllReduce AllReduceFunc
	// Kernels run the products; nil means the full model's.
	Kernels Kernels
	// Threads sizes the pool that runs the model's own parallel tasks
	// (attention heads, row chunks); 0 means GOMAXPROCS.
	Threads int
}

// TPModel is rank Rank's slice of a tensor-parallel model. Its parameters
// (and gradients) live in one flat []float32 in the order of the full
// model's Params, each tensor cut to this rank's part (Params gives the
// local shapes). It supports the full model's architectures — learned or
// rotary positions, LayerNorm or RMSNorm, GELU or SwiGLU, sliding-window
// and global-token attention, label smoothing — in fp32; early-exit heads
// are not split (NewTP refuses them).
//
// Every method that runs the network calls the AllReduce in the same order
// on every rank, so all ranks must make the same calls with the same
// batches. A TPModel is not safe for concurrent use.
type TPModel struct {
	cfg         Config
	rank, world int
	hl, dl, fl  int // local heads, local attention width (hl·hd), local MLP width
	ar          AllReduceFunc
	seq         uint64
	k, tk       Kernels
	pool        *simd.Pool
	params      []float32
	grads       []float32
	ps          []Param
	p, g        modelParams
	runs        []tpRun
	ropeCos     []float32
	ropeSin     []float32
	a           acts
	rowLoss     []float64

	labelSmoothing float32
	B, T, N        int
	waited         time.Duration
}

// tpRun maps one contiguous run of the local flat vector to the full one.
type tpRun struct {
	local, full, n int
	replicated     bool
}

// NewTP cuts rank c.Rank's slice out of full (a freshly initialised or
// loaded model; it is only read) and returns it. The label smoothing of
// full carries over.
func NewTP(full *Model, c TPConfig) (*TPModel, error) {
	cfg := full.cfg
	switch {
	case c.World < 1 || c.Rank < 0 || c.Rank >= c.World:
		return nil, fmt.Errorf("%w: tensor parallel rank %d of world %d", ErrInvalidInput, c.Rank, c.World)
	case cfg.NHead%c.World != 0:
		return nil, fmt.Errorf("%w: tensor parallel world %d does not divide n_head %d", ErrInvalidConfig, c.World, cfg.NHead)
	case 4*cfg.NEmbd%c.World != 0:
		return nil, fmt.Errorf("%w: tensor parallel world %d does not divide the MLP width 4*n_embd %d", ErrInvalidConfig, c.World, 4*cfg.NEmbd)
	case len(cfg.ExitLayers) > 0:
		return nil, fmt.Errorf("%w: tensor parallelism does not split early-exit heads (exit_layers %v)", ErrInvalidConfig, cfg.ExitLayers)
	case c.AllReduce == nil && c.World > 1:
		return nil, fmt.Errorf("%w: tensor parallel world %d needs an allreduce", ErrInvalidInput, c.World)
	case c.Threads < 0:
		return nil, fmt.Errorf("%w: %d threads", ErrInvalidInput, c.Threads)
	}
	k := c.Kernels
	if k == nil {
		k = full.k
	}
	pool := defaultPool()
	if c.Threads > 0 {
		pool = simd.SharedPool(c.Threads)
	}
	m := &TPModel{cfg: cfg, rank: c.Rank, world: c.World, ar: c.AllReduce, k: k, tk: tileKernels(k), pool: pool,
		ropeCos: full.ropeCos, ropeSin: full.ropeSin, labelSmoothing: full.labelSmoothing}
	m.hl = cfg.NHead / c.World
	m.dl = m.hl * cfg.HeadDim()
	m.fl = 4 * cfg.NEmbd / c.World
	m.ps, m.runs = m.layout(full.ps)
	last := m.ps[len(m.ps)-1]
	m.params = make([]float32, last.Offset+numel(last.Shape))
	m.p = bind(cfg, m.ps, m.params)
	if err := m.FromFull(full.params, m.params); err != nil {
		return nil, err
	}
	return m, nil
}

// layout lists the local tensors (the full names, local shapes) and the
// runs that map them to the full flat vector.
func (m *TPModel) layout(full []Param) ([]Param, []tpRun) {
	D, r := m.cfg.NEmbd, m.rank
	var ps []Param
	var runs []tpRun
	off := 0
	for _, fp := range full {
		p := Param{Name: fp.Name, Shape: fp.Shape, Offset: off}
		name := fp.Name
		switch {
		case hasSuffix(name, "attn.c_attn.weight"): // [D, 3D] → [D, 3·dl]: this rank's q, k and v columns
			p.Shape = []int{D, 3 * m.dl}
			for i := range D {
				for s := range 3 {
					runs = append(runs, tpRun{local: off + i*3*m.dl + s*m.dl, full: fp.Offset + i*3*D + s*D + r*m.dl, n: m.dl})
				}
			}
		case hasSuffix(name, "attn.c_attn.bias"):
			p.Shape = []int{3 * m.dl}
			for s := range 3 {
				runs = append(runs, tpRun{local: off + s*m.dl, full: fp.Offset + s*D + r*m.dl, n: m.dl})
			}
		case hasSuffix(name, "attn.c_proj.weight"): // [D, D] → rows of this rank's heads
			p.Shape = []int{m.dl, D}
			runs = append(runs, tpRun{local: off, full: fp.Offset + r*m.dl*D, n: m.dl * D})
		case hasSuffix(name, "mlp.c_fc.weight"), hasSuffix(name, "mlp.c_gate.weight"): // [D, 4D] → columns
			p.Shape = []int{D, m.fl}
			for i := range D {
				runs = append(runs, tpRun{local: off + i*m.fl, full: fp.Offset + i*4*D + r*m.fl, n: m.fl})
			}
		case hasSuffix(name, "mlp.c_fc.bias"), hasSuffix(name, "mlp.c_gate.bias"):
			p.Shape = []int{m.fl}
			runs = append(runs, tpRun{local: off, full: fp.Offset + r*m.fl, n: m.fl})
		case hasSuffix(name, "mlp.c_proj.weight"): // [4D, D] → rows
			p.Shape = []int{m.fl, D}
			runs = append(runs, tpRun{local: off, full: fp.Offset + r*m.fl*D, n: m.fl * D})
		default: // embeddings, norms, c_proj biases: replicated
			p.Shape = append([]int(nil), fp.Shape...)
			runs = append(runs, tpRun{local: off, full: fp.Offset, n: numel(fp.Shape), replicated: true})
		}
		ps = append(ps, p)
		off += numel(p.Shape)
	}
	return ps, runs
}

// Config returns the full model's config.
func (m *TPModel) Config() Config { return m.cfg }

// Rank and World return the model's place in its group.
func (m *TPModel) Rank() int  { return m.rank }
func (m *TPModel) World() int { return m.world }

// NumParams is the number of local parameters.
func (m *TPModel) NumParams() int { return len(m.params) }

// FullParams is the number of parameters of the full model.
func (m *TPModel) FullParams() int { return int(m.cfg.paramCount()) }

// Params lists the local tensors, each viewing ParamData.
func (m *TPModel) Params() []Param { return m.ps }

// ParamData is the flat local parameter vector.
func (m *TPModel) ParamData() []float32 { return m.params }

// Grads is the flat local gradient vector; it accumulates across
// ForwardBackward calls until ZeroGrads.
func (m *TPModel) Grads() []float32 {
	m.ensureGrads()
	return m.grads
}

// ZeroGrads clears the gradients.
func (m *TPModel) ZeroGrads() {
	m.ensureGrads()
	clear(m.grads)
}

func (m *TPModel) ensureGrads() {
	if m.grads == nil {
		m.grads = make([]float32, len(m.params))
		gps := make([]Param, len(m.ps))
		copy(gps, m.ps)
		m.g = bind(m.cfg, gps, m.grads)
	}
}

// SetLabelSmoothing is Model.SetLabelSmoothing.
func (m *TPModel) SetLabelSmoothing(eps float32) error {
	if !(eps >= 0 && eps < 1) {
		return fmt.Errorf("%w: label smoothing %v is outside [0, 1)", ErrInvalidInput, eps)
	}
	m.labelSmoothing = eps
	return nil
}

// Seq is the sequence number the next allreduce will carry; SetSeq sets
// it (to the same value on every rank), so that a caller sharing its
// collective with other calls keeps the numbers rising.
func (m *TPModel) Seq() uint64       { return m.seq }
func (m *TPModel) SetSeq(seq uint64) { m.seq = seq }

// CommWait is the time this rank's computation has spent waiting for
// allreduces: all of a blocking one, and of one overlapped with other work
// only what was left when the work was done.
func (m *TPModel) CommWait() time.Duration { return m.waited }

// allReduce sums data across the group (a no-op for a group of one).
func (m *TPModel) allReduce(ctx context.Context, data []float32) error {
	return m.allReduceAsync(ctx, data)()
}

// allReduceAsync starts summing data across the group and returns the
// wait for it; data must not be touched until the wait returns. One
// allreduce is in flight at a time.
func (m *TPModel) allReduceAsync(ctx context.Context, data []float32) (wait func() error) {
	if m.world == 1 {
		return func() error { return nil }
	}
	seq := m.seq
	m.seq++
	done := make(chan error, 1)
	go func() { done <- m.ar(ctx, seq, data) }()
	return func() error {
		start := time.Now()
		err := <-done
		m.waited += time.Since(start)
		if err != nil {
			return fmt.Errorf("transformer: tensor parallel rank %d: allreduce %d: %w", m.rank, seq, err)
		}
		return nil
	}
}

// FromFull copies this rank's part of a vector in the full model's layout
// (parameters, gradients or optimizer moments) into local.
func (m *TPModel) FromFull(full, local []float32) error {
	if want := m.FullParams(); len(full) != want || len(local) != len(m.params) {
		return fmt.Errorf("%w: tensor parallel slice: %d full and %d local values, want %d and %d", ErrInvalidInput, len(full), len(local), want, len(m.params))
	}
	for _, r := range m.runs {
		copy(local[r.local:r.local+r.n], full[r.full:r.full+r.n])
	}
	return nil
}

// ToFull writes local into its place in full, a vector in the full
// model's layout: the split tensors' parts always, the replicated tensors
// only on rank 0. Summed over the ranks (full zeroed first on each), the
// results make the full vector — Gather does that.
func (m *TPModel) ToFull(local, full []float32) error {
	if want := m.FullParams(); len(full) != want || len(local) != len(m.params) {
		return fmt.Errorf("%w: tensor parallel gather: %d full and %d local values, want %d and %d", ErrInvalidInput, len(full), len(local), want, len(m.params))
	}
	for _, r := range m.runs {
		if !r.replicated || m.rank == 0 {
			copy(full[r.full:r.full+r.n], local[r.local:r.local+r.n])
		}
	}
	return nil
}

// Gather returns the full vector of a local one (parameters, gradients or
// optimizer moments) on every rank: one allreduce of the full size. The
// sum adds only zeros to each value, so it is exact.
func (m *TPModel) Gather(ctx context.Context, local []float32) ([]float32, error) {
	full := make([]float32, m.FullParams())
	if err := m.ToFull(local, full); err != nil {
		return nil, err
	}
	if err := m.allReduce(ctx, full); err != nil {
		return nil, err
	}
	return full, nil
}

// GatherModel builds the full model on every rank from the ranks'
// parameters, with the full optimizer state when opt is not nil.
func (m *TPModel) GatherModel(ctx context.Context, opt *AdamW) (*Model, *AdamWState, error) {
	p, err := m.Gather(ctx, m.params)
	if err != nil {
		return nil, nil, err
	}
	full := newEmpty(m.cfg, m.k)
	copy(full.params, p)
	full.labelSmoothing = m.labelSmoothing
	if opt == nil {
		return full, nil, nil
	}
	st := opt.State()
	if len(st.M) != len(m.params) {
		return nil, nil, fmt.Errorf("%w: optimizer of %d parameters for a tensor parallel slice of %d", ErrInvalidInput, len(st.M), len(m.params))
	}
	mm, err := m.Gather(ctx, st.M)
	if err != nil {
		return nil, nil, err
	}
	vv, err := m.Gather(ctx, st.V)
	if err != nil {
		return nil, nil, err
	}
	return full, &AdamWState{M: mm, V: vv, Step: st.Step}, nil
}

// SliceState cuts this rank's part out of a full model's optimizer state.
func (m *TPModel) SliceState(full AdamWState) (AdamWState, error) {
	st := AdamWState{M: make([]float32, len(m.params)), V: make([]float32, len(m.params)), Step: full.Step}
	if err := m.FromFull(full.M, st.M); err != nil {
		return st, err
	}
	if err := m.FromFull(full.V, st.V); err != nil {
		return st, err
	}
	return st, nil
}

// NewTPAdamW returns an optimizer over m's local parameters (weight decay
// on the 2-D tensors, as NewAdamW). Step it with StepTP.
func NewTPAdamW(cfg AdamWConfig, m *TPModel) *AdamW {
	o := &AdamW{Config: cfg, m: make([]float32, len(m.params)), v: make([]float32, len(m.params))}
	for _, p := range m.ps {
		if len(p.Shape) == 2 {
			o.decay = append(o.decay, [2]int{p.Offset, p.Offset + numel(p.Shape)})
		}
	}
	return o
}

// StepTP applies one AdamW update to m's local parameters from its
// gradients, clipping by the norm of the full model's gradient: the
// squares of the split tensors' gradients are summed across the group
// (one allreduce of one value), the replicated ones counted once. Every
// rank gets the same norm, so the replicated parameters stay identical. It
// returns the norm before clipping.
func (o *AdamW) StepTP(ctx context.Context, m *TPModel, lr float32) (float64, error) {
	grads := m.Grads()
	if len(o.m) != len(m.params) {
		return 0, fmt.Errorf("%w: optimizer of %d parameters for a tensor parallel slice of %d", ErrInvalidInput, len(o.m), len(m.params))
	}
	if o.mask != nil {
		return 0, fmt.Errorf("%w: a sparsity mask (SetMask) is not supported in tensor parallel", ErrInvalidInput)
	}
	var split, repl float64
	for _, r := range m.runs {
		var ss float64
		for _, g := range grads[r.local : r.local+r.n] {
			ss += float64(g) * float64(g)
		}
		if r.replicated {
			repl += ss
		} else {
			split += ss
		}
	}
	v := []float32{float32(split)}
	if err := m.allReduce(ctx, v); err != nil {
		return 0, err
	}
	norm := math.Sqrt(float64(v[0]) + repl)
	o.apply(m.params, grads, lr, norm)
	return norm, nil
}

// apply is the second phase of Step: clip to Config.GradClip given the
// gradient norm, then the fused AdamW update over blocks in parallel.
func (o *AdamW) apply(params, grads []float32, lr float32, norm float64) {
	blocks := (len(params) + adamBlock - 1) / adamBlock
	scale := float32(1)
	if c := float64(o.Config.GradClip); c > 0 && norm > c {
		scale = float32(c / (norm + 1e-6))
	}
	o.step++
	bc1 := 1 - math.Pow(float64(o.Config.Beta1), float64(o.step))
	bc2 := 1 - math.Pow(float64(o.Config.Beta2), float64(o.step))
	t := &o.task
	*t = adamTask{o: o, params: params, grads: grads, scale: scale, lr: lr,
		stepSize: float32(float64(lr) / bc1), invSqrtBC2: float32(1 / math.Sqrt(bc2))}
	defaultPool().Run(t, blocks)
	*t = adamTask{}
}
