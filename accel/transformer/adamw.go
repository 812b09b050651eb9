package transformer

import (
	"fmt"
	"math"
)

// AdamWConfig mirrors accel.OptimizerConfig.
type AdamWConfig struct {
	Beta1, Beta2, Eps, WeightDecay float32
	GradClip                       float32 // global-norm clip; 0 disables
}

// AdamW is decoupled-weight-decay Adam over a model's flat parameter
// vector. Weight decay applies only to 2-D tensors (embeddings and weight
// matrices), never to biases or norm weights.
type AdamW struct {
	Config AdamWConfig
	m, v   []float32
	step   int64
	decay  [][2]int // [start, end) ranges of the flat vector that decay, ascending
	mask   *SparsityMask
	part   []float64
	task   adamTask
}

// AdamWState is the optimizer's saveable state. M and V are in parameter
// order; Step counts applied updates.
type AdamWState struct {
	M, V []float32
	Step int64
}

// NewAdamW returns an optimizer for m's parameters at step 0.
func NewAdamW(cfg AdamWConfig, m *Model) *AdamW {
	o := &AdamW{Config: cfg, m: make([]float32, m.NumParams()), v: make([]float32, m.NumParams())}
	for _, p := range m.Params() {
		if len(p.Shape) == 2 {
			o.decay = append(o.decay, [2]int{p.Offset, p.Offset + p.Size()})
		}
	}
	return o
}

// StepCount is the number of updates applied.
func (o *AdamW) StepCount() int64 { return o.step }

// State returns the state; the slices alias the optimizer's own.
func (o *AdamW) State() AdamWState { return AdamWState{M: o.m, V: o.v, Step: o.step} }

// SetState copies s into the optimizer.
func (o *AdamW) SetState(s AdamWState) error {
	if len(s.M) != len(o.m) || len(s.V) != len(o.v) {
		return fmt.Errorf("%w: optimizer state has %d and %d moments, want %d", ErrInvalidInput, len(s.M), len(s.V), len(o.m))
	}
	if s.Step < 0 {
		return fmt.Errorf("%w: optimizer step %d is negative", ErrInvalidInput, s.Step)
	}
	copy(o.m, s.M)
	copy(o.v, s.V)
	o.step = s.Step
	if o.mask != nil {
		o.mask.Apply(o.m)
		o.mask.Apply(o.v)
	}
	return nil
}

// SetMask makes every later Step keep the masked parameters, which must
// be zero, at zero: Step zeroes their gradients (in the caller's slice),
// so they are left out of the global norm and clipping, and their moments
// stay zero, and a zero gradient on zero moments leaves a zero weight
// unchanged (Config.Eps must be positive). SetMask clears the masked
// moments now; nil removes the mask.
func (o *AdamW) SetMask(s *SparsityMask) error {
	if s != nil && s.Size() != len(o.m) {
		return fmt.Errorf("%w: sparsity mask covers %d parameters, the optimizer %d", ErrInvalidInput, s.Size(), len(o.m))
	}
	if s != nil && !(o.Config.Eps > 0) {
		return fmt.Errorf("%w: a sparsity mask needs a positive eps, not %v", ErrInvalidInput, o.Config.Eps)
	}
	o.mask = s
	if s != nil {
		s.Apply(o.m)
		s.Apply(o.v)
	}
	return nil
}

// Mask returns the mask set by SetMask, or nil.
func (o *AdamW) Mask() *SparsityMask { return o.mask }

// adamBlock is how many parameters one parallel piece of Step covers.
const adamBlock = 1 << 15

// adamTask is one phase of Step over blocks of the flat vectors.
type adamTask struct {
	o                   *AdamW
	params, grads       []float32
	norm                bool      // phase 1: per-block sums of squares into part
	part                []float64 // per-block sums of squares
	scale, lr, stepSize float32
	invSqrtBC2          float32
}

func (t *adamTask) Run(i int) {
	lo, hi := i*adamBlock, min((i+1)*adamBlock, len(t.params))
	o := t.o
	if t.norm {
		var ss float64
		if mk := o.mask; mk != nil {
			// Masked gradients become +0 (ANDed with the mask's bits, no
			// branch); blocks start on a word (adamBlock is a multiple of
			// 64). With a zero gradient and zero moments, the update
			// leaves a zero weight at exactly zero.
			for w0 := lo; w0 < hi; w0 += 64 {
				w := mk.bits[w0>>6]
				gs := t.grads[w0:min(w0+64, hi)]
				for k, g := range gs {
					g = math.Float32frombits(math.Float32bits(g) & (uint32(w&1) - 1))
					gs[k] = g
					ss += float64(g) * float64(g)
					w >>= 1
				}
			}
		} else {
			for _, g := range t.grads[lo:hi] {
				ss += float64(g) * float64(g)
			}
		}
		t.part[i] = ss
		return
	}
	// Walk the decay ranges that meet [lo, hi).
	pos := lo
	for _, r := range o.decay {
		if r[1] <= pos {
			continue
		}
		if r[0] >= hi {
			break
		}
		if r[0] > pos {
			t.update(pos, r[0], 0)
			pos = r[0]
		}
		end := min(r[1], hi)
		t.update(pos, end, o.Config.WeightDecay)
		pos = end
	}
	if pos < hi {
		t.update(pos, hi, 0)
	}
}

// update is the fused AdamW step for [lo, hi): one pass reads g, m, v, p
// and writes m, v, p.
func (t *adamTask) update(lo, hi int, wd float32) {
	o := t.o
	b1, b2, eps := o.Config.Beta1, o.Config.Beta2, o.Config.Eps
	p, g, m, v := t.params[lo:hi], t.grads[lo:hi], o.m[lo:hi], o.v[lo:hi]
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	scale, decay, stepSize, inv := t.scale, 1-t.lr*wd, t.stepSize, t.invSqrtBC2
	for i := range p {
		gi := g[i] * scale
		mi := b1*m[i] + (1-b1)*gi
		vi := b2*v[i] + (1-b2)*gi*gi
		m[i], v[i] = mi, vi
		p[i] = p[i]*decay - stepSize*mi/(float32(math.Sqrt(float64(vi)))*inv+eps)
	}
}

// Step applies one update with learning rate lr: clips grads to the global
// norm Config.GradClip (when positive), then updates params, in parallel
// over blocks; with a mask (SetMask) it first zeroes the masked entries of
// grads. It returns the gradient norm before clipping.
func (o *AdamW) Step(params, grads []float32, lr float32) float64 {
	if len(params) != len(o.m) || len(grads) != len(o.m) {
		panic(fmt.Sprintf("adamw: %d params and %d grads for %d moments", len(params), len(grads), len(o.m)))
	}
	blocks := (len(params) + adamBlock - 1) / adamBlock
	if cap(o.part) < blocks {
		o.part = make([]float64, blocks)
	}
	t := &o.task
	*t = adamTask{o: o, params: params, grads: grads, norm: true, part: o.part[:blocks]}
	pool := defaultPool()
	pool.Run(t, blocks)
	var ss float64
	for _, v := range t.part {
		ss += v
	}
	norm := math.Sqrt(ss)
	scale := float32(1)
	if c := float64(o.Config.GradClip); c > 0 && norm > c {
		scale = float32(c / (norm + 1e-6))
	}
	o.step++
	bc1 := 1 - math.Pow(float64(o.Config.Beta1), float64(o.step))
	bc2 := 1 - math.Pow(float64(o.Config.Beta2), float64(o.step))
	t.norm, t.scale, t.lr = false, scale, lr
	t.stepSize = float32(float64(lr) / bc1)
	t.invSqrtBC2 = float32(1 / math.Sqrt(bc2))
	pool.Run(t, blocks)
	*t = adamTask{}
	return norm
}
