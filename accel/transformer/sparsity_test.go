package transformer

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// ZeroMask takes exactly the zero entries of 2-D tensors: zeros planted in
// biases and norm weights stay out.
func TestZeroMask(t *testing.T) {
	cfg := Config{VocabSize: 13, NCtx: 5, NEmbd: 6, NLayer: 2, NHead: 3, MLP: MLPSwiGLU}
	m := New(cfg, PortableKernels(), 1)
	r := rand.New(rand.NewPCG(2, 3))
	want := map[int]bool{}
	for _, p := range m.Params() {
		for range 7 {
			i := r.IntN(p.Size())
			p.Data[i] = 0
			if len(p.Shape) == 2 {
				want[p.Offset+i] = true
			}
		}
	}
	mk := ZeroMask(m)
	if mk.Count() != len(want) || mk.Size() != m.NumParams() {
		t.Fatalf("mask of %d entries over %d, want %d over %d", mk.Count(), mk.Size(), len(want), m.NumParams())
	}
	for i := range m.NumParams() {
		if mk.Has(i) != want[i] {
			t.Fatalf("entry %d: masked %v, want %v", i, mk.Has(i), want[i])
		}
	}
	x := make([]float32, m.NumParams())
	for i := range x {
		x[i] = 1
	}
	mk.Apply(x)
	for i, v := range x {
		if (v == 0) != want[i] {
			t.Fatalf("Apply: entry %d is %v", i, v)
		}
	}
}

// TestAdamWKeepSparsity runs masked AdamW steps on a model spanning several
// blocks against a float64 reference: masked gradients are left out of the
// clipping norm, the unmasked parameters follow the plain update, and the
// masked parameters and moments stay exactly zero (also after SetState).
// Tolerance as TestAdamWAgainstFloat64.
func TestAdamWKeepSparsity(t *testing.T) {
	cfg := Config{VocabSize: 257, NCtx: 63, NEmbd: 64, NLayer: 2, NHead: 4}
	m := New(cfg, nil, 1)
	n := m.NumParams()
	r := rand.New(rand.NewPCG(5, 5))
	decays := make([]bool, n)
	for _, p := range m.Params() {
		for i := range p.Size() {
			decays[p.Offset+i] = len(p.Shape) == 2
			if len(p.Shape) == 2 && r.IntN(2) == 0 {
				p.Data[i] = 0
			}
		}
	}
	mask := ZeroMask(m)
	if n < 3*adamBlock || mask.Count() < n/3 {
		t.Fatalf("%d parameters, %d masked: want several blocks, a third masked", n, mask.Count())
	}
	ac := AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, GradClip: 0.5}
	o := NewAdamW(ac, m)
	// Moments left over from before the mask are cleared by it.
	st := o.State()
	for i := range st.M {
		st.M[i], st.V[i] = 1e-3, 1e-6
	}
	if err := o.SetState(AdamWState{M: st.M, V: st.V}); err != nil {
		t.Fatal(err)
	}
	if err := o.SetMask(mask); err != nil {
		t.Fatal(err)
	}
	p64, m64, v64 := make([]float64, n), make([]float64, n), make([]float64, n)
	for i, v := range m.ParamData() {
		p64[i] = float64(v)
		if !mask.Has(i) {
			m64[i], v64[i] = 1e-3, float64(float32(1e-6))
		}
	}
	grads := make([]float32, n)
	const lr = 1e-2
	for step := 1; step <= 3; step++ {
		for i := range grads {
			grads[i] = float32(r.NormFloat64() * 0.01)
		}
		var ss float64
		for i, g := range grads {
			if !mask.Has(i) {
				ss += float64(g) * float64(g)
			}
		}
		wantNorm := math.Sqrt(ss)
		scale := 1.0
		if wantNorm > float64(ac.GradClip) {
			scale = float64(ac.GradClip) / (wantNorm + 1e-6)
		}
		b1, b2 := float64(ac.Beta1), float64(ac.Beta2)
		for i := range p64 {
			if mask.Has(i) {
				continue
			}
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
		st := o.State()
		for i, v := range m.ParamData() {
			if mask.Has(i) {
				if v != 0 || st.M[i] != 0 || st.V[i] != 0 {
					t.Fatalf("step %d: masked param %d = %v, moments %v %v", step, i, v, st.M[i], st.V[i])
				}
				continue
			}
			if math.Abs(float64(v)-p64[i]) > 1e-7+1e-5*math.Abs(p64[i]) {
				t.Fatalf("step %d: param %d = %v, want %v", step, i, v, p64[i])
			}
		}
	}
	// Restoring moments that are not zero under the mask clears them.
	st = o.State()
	junk := AdamWState{M: make([]float32, n), V: make([]float32, n), Step: o.StepCount()}
	for i := range junk.M {
		junk.M[i], junk.V[i] = 1, 1
	}
	if err := o.SetState(junk); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if mask.Has(i) && (st.M[i] != 0 || st.V[i] != 0) {
			t.Fatalf("SetState left moment %d at %v, %v under the mask", i, st.M[i], st.V[i])
		}
	}
	if err := o.SetMask(&SparsityMask{n: 3, bits: make([]uint64, 1)}); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("mask of the wrong size: error %v", err)
	}
	if err := NewAdamW(AdamWConfig{Beta1: 0.9, Beta2: 0.95}, m).SetMask(mask); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("mask with eps 0 (0/0 for a masked weight): error %v", err)
	}
}

// A pruned model fine-tuned with the mask keeps every pruned weight at
// zero while its loss falls.
func TestKeepSparsityTraining(t *testing.T) {
	cfg := Config{VocabSize: 16, NCtx: 12, NEmbd: 32, NLayer: 2, NHead: 4, MLP: MLPSwiGLU}
	m := New(cfg, PortableKernels(), 3)
	rep, err := PruneMagnitude(m, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	mask := ZeroMask(m)
	if int64(mask.Count()) != rep.Params-rep.Nonzero {
		t.Fatalf("mask of %d entries after pruning %d of %d", mask.Count(), rep.Params-rep.Nonzero, rep.Params)
	}
	opt := NewAdamW(AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.01, GradClip: 1}, m)
	if err := opt.SetMask(mask); err != nil {
		t.Fatal(err)
	}
	seq := []int32{1, 5, 2, 9, 3, 7}
	B, T := 4, 12
	in, tg := make([]int32, B*T), make([]int32, B*T)
	for b := range B {
		for i := range T {
			in[b*T+i] = seq[(b+i)%len(seq)]
			tg[b*T+i] = seq[(b+i+1)%len(seq)]
		}
	}
	var first, last float64
	for step := range 30 {
		m.ZeroGrads()
		loss, err := m.ForwardBackward(in, tg, B, T)
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = loss
		}
		last = loss
		opt.Step(m.ParamData(), m.Grads(), 1e-2)
	}
	if !(last < 0.5*first) {
		t.Fatalf("loss went from %.4f to %.4f, want below half", first, last)
	}
	for i, v := range m.ParamData() {
		if mask.Has(i) && v != 0 {
			t.Fatalf("pruned parameter %d is %v after fine-tuning", i, v)
		}
	}
	if after := SparsityOf(m); after.Nonzero != rep.Nonzero {
		t.Fatalf("%d nonzero linear weights after fine-tuning, %d before", after.Nonzero, rep.Nonzero)
	}
}

// BenchmarkAdamWMask is the cost of KeepSparsity: an AdamW step on the
// reference config (4.2M parameters) with half of its matrices masked,
// beside the unmasked step, both timed in every iteration.
func BenchmarkAdamWMask(b *testing.B) {
	cfg := Config{VocabSize: 4096, NCtx: 256, NEmbd: 256, NLayer: 4, NHead: 4}
	plainM, maskedM := New(cfg, nil, 1), New(cfg, nil, 1)
	if _, err := PruneMagnitude(maskedM, 0.5); err != nil {
		b.Fatal(err)
	}
	ac := AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, GradClip: 1}
	plain, masked := NewAdamW(ac, plainM), NewAdamW(ac, maskedM)
	if err := masked.SetMask(ZeroMask(maskedM)); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	grads := randSlice(r, plainM.NumParams())
	var tp, tm time.Duration
	for b.Loop() {
		t0 := time.Now()
		plain.Step(plainM.ParamData(), grads, 1e-3)
		t1 := time.Now()
		masked.Step(maskedM.ParamData(), grads, 1e-3)
		tp, tm = tp+t1.Sub(t0), tm+time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(tp.Seconds()*1e3/n, "plain-ms")
	b.ReportMetric(tm.Seconds()*1e3/n, "masked-ms")
	b.ReportMetric(tm.Seconds()/tp.Seconds(), "masked/plain")
}
