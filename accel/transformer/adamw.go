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
	decay  [][2]int // [start, end) ranges of the flat vector that decay
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
	return nil
}

// Step applies one update with learning rate lr: clips grads in place to
// the global norm Config.GradClip (when positive), then updates params.
// It returns the gradient norm before clipping.
func (o *AdamW) Step(params, grads []float32, lr float32) float64 {
	if len(params) != len(o.m) || len(grads) != len(o.m) {
		panic(fmt.Sprintf("adamw: %d params and %d grads for %d moments", len(params), len(grads), len(o.m)))
	}
	var ss float64
	for _, g := range grads {
		ss += float64(g) * float64(g)
	}
	norm := math.Sqrt(ss)
	scale := float32(1)
	if c := float64(o.Config.GradClip); c > 0 && norm > c {
		scale = float32(c / (norm + 1e-6))
	}
	o.step++
	b1, b2 := o.Config.Beta1, o.Config.Beta2
	bc1 := float32(1 - math.Pow(float64(b1), float64(o.step)))
	bc2 := float32(1 - math.Pow(float64(b2), float64(o.step)))
	stepSize := lr / bc1
	invSqrtBC2 := float32(1 / math.Sqrt(float64(bc2)))
	eps := o.Config.Eps
	update := func(lo, hi int, wd float32) {
		p, g, m, v := params[lo:hi], grads[lo:hi], o.m[lo:hi], o.v[lo:hi]
		for i := range p {
			gi := g[i] * scale
			m[i] = b1*m[i] + (1-b1)*gi
			v[i] = b2*v[i] + (1-b2)*gi*gi
			denom := float32(math.Sqrt(float64(v[i])))*invSqrtBC2 + eps
			p[i] -= lr*wd*p[i] + stepSize*m[i]/denom
		}
	}
	pos := 0
	for _, r := range o.decay {
		update(pos, r[0], 0)
		update(r[0], r[1], o.Config.WeightDecay)
		pos = r[1]
	}
	update(pos, len(params), 0)
	return norm
}
