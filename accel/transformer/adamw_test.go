package transformer

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAdamWAgainstFloat64 runs three steps of the parallel, fused AdamW on
// a model big enough to span several blocks (so the decay ranges cross
// block edges) and compares with a float64 reference of the same update:
// clipping to the global norm, bias correction, decoupled decay on 2-D
// tensors only. Tolerance: 1e-5 relative + 1e-7 absolute per parameter.
func TestAdamWAgainstFloat64(t *testing.T) {
	cfg := Config{VocabSize: 257, NCtx: 63, NEmbd: 64, NLayer: 2, NHead: 4}
	m := New(cfg, nil, 1)
	ac := AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, GradClip: 0.5}
	o := NewAdamW(ac, m)
	n := m.NumParams()
	if n < 3*adamBlock {
		t.Fatalf("model has %d parameters, want several blocks of %d", n, adamBlock)
	}
	decays := make([]bool, n)
	for _, p := range m.Params() {
		for i := range p.Size() {
			decays[p.Offset+i] = len(p.Shape) == 2
		}
	}
	p64 := make([]float64, n)
	for i, v := range m.ParamData() {
		p64[i] = float64(v)
	}
	m64, v64 := make([]float64, n), make([]float64, n)
	r := rand.New(rand.NewPCG(1, 9))
	grads := make([]float32, n)
	const lr = 1e-2
	for step := 1; step <= 3; step++ {
		for i := range grads {
			grads[i] = float32(r.NormFloat64() * 0.01)
		}
		var ss float64
		for _, g := range grads {
			ss += float64(g) * float64(g)
		}
		wantNorm := math.Sqrt(ss)
		scale := 1.0
		if wantNorm > float64(ac.GradClip) {
			scale = float64(ac.GradClip) / (wantNorm + 1e-6)
		}
		b1, b2 := float64(ac.Beta1), float64(ac.Beta2)
		for i := range p64 {
			g := float64(grads[i]) * scale
			m64[i] = b1*m64[i] + (1-b1)*g
			v64[i] = b2*v64[i] + (1-b2)*g*g
			mh := m64[i] / (1 - math.Pow(b1, float64(step)))
			vh := v64[i] / (1 - math.Pow(b2, float64(step)))
			wd := 0.0
			if decays[i] {
				wd = float64(ac.WeightDecay)
			}
			p64[i] -= lr*wd*p64[i] + lr*mh/(math.Sqrt(vh)+float64(ac.Eps))
		}
		norm := o.Step(m.ParamData(), grads, lr)
		if math.Abs(norm-wantNorm) > 1e-9*wantNorm {
			t.Fatalf("step %d: norm %v, want %v", step, norm, wantNorm)
		}
		for i, v := range m.ParamData() {
			if math.Abs(float64(v)-p64[i]) > 1e-7+1e-5*math.Abs(p64[i]) {
				t.Fatalf("step %d: param %d = %v, want %v", step, i, v, p64[i])
			}
		}
	}
	if o.StepCount() != 3 {
		t.Fatalf("step count %d", o.StepCount())
	}
}
