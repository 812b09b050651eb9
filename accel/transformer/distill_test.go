package transformer

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel/simd"
)

// refDistillRow is the float64 reference of distillRow: the loss and its
// gradient with respect to the logits (unscaled).
func refDistillRow(row []float32, tgt int, eps float64, idx []int32, tl []float32, T, alpha float64) (float64, []float64) {
	V := len(row)
	z := make([]float64, V)
	for j, v := range row {
		z[j] = float64(v)
	}
	lse := func(s float64) float64 { // log Σ exp(z/s)
		mx := math.Inf(-1)
		for _, v := range z {
			mx = math.Max(mx, v/s)
		}
		var sum float64
		for _, v := range z {
			sum += math.Exp(v/s - mx)
		}
		return mx + math.Log(sum)
	}
	l1, lT := lse(1), lse(T)
	tmx := math.Inf(-1)
	for _, v := range tl {
		tmx = math.Max(tmx, float64(v)/T)
	}
	var ts float64
	for _, v := range tl {
		ts += math.Exp(float64(v)/T - tmx)
	}
	p := make([]float64, V)
	var kl float64
	for k, v := range tl {
		lp := float64(v)/T - tmx - math.Log(ts)
		p[idx[k]] = math.Exp(lp)
		kl += math.Exp(lp) * (lp - (z[idx[k]]/T - lT))
	}
	var sumZ float64
	for _, v := range z {
		sumZ += v
	}
	ce := l1 - (1-eps)*z[tgt] - eps*sumZ/float64(V)
	grad := make([]float64, V)
	for j := range z {
		onehot := eps / float64(V)
		if j == tgt {
			onehot += 1 - eps
		}
		grad[j] = alpha*T*(math.Exp(z[j]/T-lT)-p[j]) + (1-alpha)*(math.Exp(z[j]-l1)-onehot)
	}
	return alpha*T*T*kl + (1-alpha)*ce, grad
}

// randTeacher draws K distinct ids and logits of spread std for each of n
// positions.
func randTeacher(r *rand.Rand, n, V, K int, std, temp, alpha float32) *SoftTargets {
	st := &SoftTargets{K: K, Indices: make([]int32, n*K), Logits: make([]float32, n*K), Temperature: temp, Alpha: alpha}
	for i := range n {
		perm := r.Perm(V)
		for k := range K {
			st.Indices[i*K+k] = int32(perm[k])
			st.Logits[i*K+k] = float32(r.NormFloat64()) * std
		}
	}
	return st
}

// TestDistillRowAgainstFloat64 checks one position's loss and gradient
// against the float64 reference on odd widths, for temperatures 1 (the
// shared-softmax path) and others, with and without label smoothing.
// Tolerance: 1e-5 relative on the loss, 1e-5 relative + 1e-7 absolute on
// each gradient entry.
func TestDistillRowAgainstFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 7))
	for _, V := range []int{1, 7, 63, 257, 1031} {
		for _, K := range []int{1, 5, 64} {
			if K > V {
				continue
			}
			for _, temp := range []float32{1, 0.5, 2.5} {
				for _, alpha := range []float32{0, 0.3, 1} {
					for _, eps := range []float32{0, 0.1} {
						name := fmt.Sprintf("V=%d/K=%d/T=%v/alpha=%v/eps=%v", V, K, temp, alpha, eps)
						row := randSlice(r, V)
						for i := range row {
							row[i] *= 4
						}
						tgt := r.IntN(V)
						st := randTeacher(r, 1, V, K, 3, temp, alpha)
						want, wg := refDistillRow(row, tgt, float64(eps), st.Indices, st.Logits, float64(temp), float64(alpha))
						zs, lp := make([]float32, V), make([]float64, K)
						const scale = 0.25
						g := slices.Clone(row)
						got := distillRow(g, tgt, eps, scale, true, st.Indices, st.Logits, temp, alpha, zs, lp)
						if math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
							t.Fatalf("%s: loss %v, want %v", name, got, want)
						}
						if l := distillRow(slices.Clone(row), tgt, eps, scale, false, st.Indices, st.Logits, temp, alpha, zs, lp); math.Abs(l-got) > 1e-9*(1+math.Abs(got)) {
							t.Fatalf("%s: loss without gradient %v, with %v", name, l, got)
						}
						for j := range g {
							if !closeRel(g[j], scale*wg[j], 1e-5, 1e-7) {
								t.Fatalf("%s: grad[%d] = %v, want %v", name, j, g[j], scale*wg[j])
							}
						}
					}
				}
			}
		}
	}
}

// TestDistillGradientCheck compares DistillForwardBackward's gradient with
// central finite differences of DistillObjective (a sample of entries of
// every tensor, the same tolerance as TestGradientCheck) on tiny models
// with odd shapes: exit heads and label smoothing included, every kernel
// path.
func TestDistillGradientCheck(t *testing.T) {
	cases := map[string]struct {
		cfg         Config
		smooth      float32
		K           int
		temp, alpha float32
	}{
		"T=2":               {Config{VocabSize: 13, NCtx: 6, NEmbd: 8, NLayer: 2, NHead: 2}, 0, 5, 2, 0.7},
		"T=1/k=vocab":       {Config{VocabSize: 11, NCtx: 6, NEmbd: 8, NLayer: 2, NHead: 2, Positions: PositionsRoPE}, 0, 11, 1, 0.5},
		"exits+smoothing":   {Config{VocabSize: 13, NCtx: 6, NEmbd: 8, NLayer: 3, NHead: 2, ExitLayers: []int{1}, MLP: MLPSwiGLU}, 0.1, 3, 3, 0.9},
		"alpha=1/T=0.7/rms": {Config{VocabSize: 9, NCtx: 6, NEmbd: 8, NLayer: 2, NHead: 2, Norm: NormRMSNorm}, 0, 4, 0.7, 1},
	}
	for kname, kern := range testKernels() {
		for name, tc := range cases {
			t.Run(kname+"/"+name, func(t *testing.T) {
				m := New(tc.cfg, kern, 1)
				if err := m.SetLabelSmoothing(tc.smooth); err != nil {
					t.Fatal(err)
				}
				r := rand.New(rand.NewPCG(7, 8))
				for _, p := range m.Params() {
					for i := range p.Data {
						if hasSuffix(p.Name, ".weight") && len(p.Shape) == 1 {
							p.Data[i] = float32(1 + 0.3*r.NormFloat64())
						} else {
							p.Data[i] = float32(0.3 * r.NormFloat64())
						}
					}
				}
				B, T := 2, 5
				in, tg := randTokens(r, B*T, tc.cfg.VocabSize), randTokens(r, B*T, tc.cfg.VocabSize)
				st := randTeacher(r, B*T, tc.cfg.VocabSize, tc.K, 2, tc.temp, tc.alpha)
				m.ZeroGrads()
				loss, err := m.DistillForwardBackward(in, tg, B, T, st)
				if err != nil {
					t.Fatal(err)
				}
				if l2, _ := m.DistillObjective(in, tg, B, T, st); math.Abs(l2-loss) > 1e-5*math.Abs(loss) {
					t.Fatalf("DistillForwardBackward loss %v, DistillObjective %v", loss, l2)
				}
				grads := slices.Clone(m.Grads())
				const h = 1e-2
				for _, p := range m.Params() {
					for range 6 {
						i := r.IntN(p.Size())
						orig := p.Data[i]
						p.Data[i] = orig + h
						lp, _ := m.DistillObjective(in, tg, B, T, st)
						p.Data[i] = orig - h
						lm, _ := m.DistillObjective(in, tg, B, T, st)
						p.Data[i] = orig
						num := (lp - lm) / (2 * h)
						ana := float64(grads[p.Offset+i])
						if d := math.Abs(ana - num); d > 1e-3+3e-2*math.Max(math.Abs(ana), math.Abs(num)) {
							t.Errorf("%s[%d]: analytic %.6g, numeric %.6g", p.Name, i, ana, num)
						}
					}
				}
			})
		}
	}
}

// With Alpha = 0 distillation is the plain training step: same loss, same
// gradients (label smoothing and an exit head included).
func TestDistillAlphaZeroIsCrossEntropy(t *testing.T) {
	cfg := Config{VocabSize: 23, NCtx: 7, NEmbd: 12, NLayer: 3, NHead: 3, ExitLayers: []int{2}}
	m := New(cfg, PortableKernels(), 4)
	if err := m.SetLabelSmoothing(0.05); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 3))
	B, T := 3, 7
	in, tg := randTokens(r, B*T, cfg.VocabSize), randTokens(r, B*T, cfg.VocabSize)
	m.ZeroGrads()
	plain, err := m.ForwardBackward(in, tg, B, T)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(m.Grads())
	for _, temp := range []float32{1, 4} {
		m.ZeroGrads()
		kd, err := m.DistillForwardBackward(in, tg, B, T, randTeacher(r, B*T, cfg.VocabSize, 6, 5, temp, 0))
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(kd-plain) > 1e-12*plain {
			t.Fatalf("T=%v: alpha 0 loss %v, plain %v", temp, kd, plain)
		}
		for i, g := range m.Grads() {
			if !closeRel(g, float64(want[i]), 1e-6, 1e-9) {
				t.Fatalf("T=%v: grad %d = %v, plain %v", temp, i, g, want[i])
			}
		}
	}
	if o, _ := m.Objective(in, tg, B, T); math.Abs(o-plain) > 1e-9*plain {
		t.Fatalf("the teacher outlived the distillation pass: objective %v, want %v", o, plain)
	}
}

// With K = vocab_size the objective is full-distribution distillation:
// checked against a float64 recomputation from the student's logits
// (which TopK with K = vocab_size returns whole), and a teacher that is
// the student itself costs nothing at Alpha = 1.
func TestDistillFullVocabulary(t *testing.T) {
	cfg := Config{VocabSize: 17, NCtx: 5, NEmbd: 12, NLayer: 2, NHead: 3, Positions: PositionsRoPE}
	m := New(cfg, PortableKernels(), 9)
	r := rand.New(rand.NewPCG(5, 1))
	B, T, V := 3, 5, cfg.VocabSize
	N := B * T
	in, tg := randTokens(r, N, V), randTokens(r, N, V)
	self, err := m.TopK(in, tg, B, T, V)
	if err != nil {
		t.Fatal(err)
	}
	const temp, alpha = 2.0, 0.6
	teacher := randTeacher(r, N, V, V, 2, temp, alpha)
	got, err := m.DistillObjective(in, tg, B, T, teacher)
	if err != nil {
		t.Fatal(err)
	}
	var want float64
	for n := range N {
		z := make([]float64, V)
		for k := range V {
			z[self.Indices[n*V+k]] = float64(self.Logits[n*V+k])
		}
		tz := make([]float64, V)
		for k := range V {
			tz[teacher.Indices[n*V+k]] = float64(teacher.Logits[n*V+k])
		}
		logSoftmax := func(x []float64, s float64) []float64 {
			mx := math.Inf(-1)
			for _, v := range x {
				mx = math.Max(mx, v/s)
			}
			var sum float64
			for _, v := range x {
				sum += math.Exp(v/s - mx)
			}
			out := make([]float64, len(x))
			for j, v := range x {
				out[j] = v/s - mx - math.Log(sum)
			}
			return out
		}
		lp, lq, l1 := logSoftmax(tz, temp), logSoftmax(z, temp), logSoftmax(z, 1)
		var kl float64
		for j := range V {
			kl += math.Exp(lp[j]) * (lp[j] - lq[j])
		}
		want += alpha*temp*temp*kl + (1-alpha)*(-l1[tg[n]])
	}
	want /= float64(N)
	if math.Abs(got-want) > 1e-5*want {
		t.Fatalf("full-vocabulary objective %v, float64 %v", got, want)
	}

	st := &SoftTargets{K: V, Indices: self.Indices, Logits: self.Logits, Temperature: 1.5, Alpha: 1}
	m.ZeroGrads()
	loss, err := m.DistillForwardBackward(in, tg, B, T, st)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(loss) > 1e-5 {
		t.Fatalf("distilling from itself: loss %v, want 0", loss)
	}
	for i, g := range m.Grads() {
		if math.Abs(float64(g)) > 1e-5 {
			t.Fatalf("distilling from itself: grad %d = %v, want 0", i, g)
		}
	}
}

// A student trained on a teacher's top-K moves towards it: its
// distillation loss falls.
func TestDistillTrainingReducesLoss(t *testing.T) {
	cfg := Config{VocabSize: 16, NCtx: 8, NEmbd: 16, NLayer: 2, NHead: 2}
	teacher := New(cfg, PortableKernels(), 11)
	for i, p := range teacher.ParamData() {
		teacher.ParamData()[i] = p * 20 // a peaked teacher
	}
	student := New(cfg, PortableKernels(), 12)
	r := rand.New(rand.NewPCG(2, 2))
	B, T := 4, 8
	in, tg := randTokens(r, B*T, 16), randTokens(r, B*T, 16)
	tk, err := teacher.TopK(in, tg, B, T, 4)
	if err != nil {
		t.Fatal(err)
	}
	st := &SoftTargets{K: 4, Indices: tk.Indices, Logits: tk.Logits, Temperature: 2, Alpha: 1}
	opt := NewAdamW(AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}, student)
	var first, last float64
	for step := range 40 {
		student.ZeroGrads()
		loss, err := student.DistillForwardBackward(in, tg, B, T, st)
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = loss
		}
		last = loss
		opt.Step(student.ParamData(), student.Grads(), 1e-2)
	}
	if !(last < 0.3*first) {
		t.Fatalf("distillation loss went from %.4f to %.4f, want below 30%% of the start", first, last)
	}
}

func TestDistillInputErrors(t *testing.T) {
	cfg := tinyConfig("", "")
	m := New(cfg, PortableKernels(), 1)
	B, T, V := 1, 3, cfg.VocabSize
	in, tg := []int32{1, 2, 3}, []int32{2, 3, 4}
	ok := func() *SoftTargets { return randTeacher(rand.New(rand.NewPCG(1, 1)), B*T, V, 2, 1, 2, 0.5) }
	tests := map[string]func(*SoftTargets) *SoftTargets{
		"nil":              func(*SoftTargets) *SoftTargets { return nil },
		"k zero":           func(s *SoftTargets) *SoftTargets { s.K = 0; return s },
		"k above vocab":    func(s *SoftTargets) *SoftTargets { s.K = V + 1; return s },
		"short indices":    func(s *SoftTargets) *SoftTargets { s.Indices = s.Indices[1:]; return s },
		"short logits":     func(s *SoftTargets) *SoftTargets { s.Logits = s.Logits[1:]; return s },
		"index range":      func(s *SoftTargets) *SoftTargets { s.Indices[3] = int32(V); return s },
		"negative index":   func(s *SoftTargets) *SoftTargets { s.Indices[0] = -1; return s },
		"duplicate index":  func(s *SoftTargets) *SoftTargets { s.Indices[5] = s.Indices[4]; return s },
		"nan logit":        func(s *SoftTargets) *SoftTargets { s.Logits[2] = float32(math.NaN()); return s },
		"inf logit":        func(s *SoftTargets) *SoftTargets { s.Logits[2] = float32(math.Inf(-1)); return s },
		"zero temperature": func(s *SoftTargets) *SoftTargets { s.Temperature = 0; return s },
		"nan temperature":  func(s *SoftTargets) *SoftTargets { s.Temperature = float32(math.NaN()); return s },
		"huge temperature": func(s *SoftTargets) *SoftTargets { s.Temperature = 1e3; return s },
		"negative alpha":   func(s *SoftTargets) *SoftTargets { s.Alpha = -0.1; return s },
		"alpha above one":  func(s *SoftTargets) *SoftTargets { s.Alpha = 1.5; return s },
		"nan alpha":        func(s *SoftTargets) *SoftTargets { s.Alpha = float32(math.NaN()); return s },
	}
	for name, mod := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := m.DistillForwardBackward(in, tg, B, T, mod(ok())); !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error %v, want ErrInvalidInput", err)
			}
		})
	}
	// The same id at two positions is fine.
	st := ok()
	st.Indices[0], st.Indices[2] = 5, 5
	st.Indices[1], st.Indices[3] = 6, 7
	if _, err := m.DistillForwardBackward(in, tg, B, T, st); err != nil {
		t.Fatal(err)
	}
	for _, K := range []int{0, -1, V + 1} {
		if _, err := m.TopK(in, tg, B, T, K); !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("top-k %d: error %v, want ErrInvalidInput", K, err)
		}
	}
}

// refTopK sorts ids by logit (NaN last, equal logits by id) and keeps k.
func refTopK(row []float32, k int) ([]int32, []float32) {
	ids := make([]int32, len(row))
	for i := range ids {
		ids[i] = int32(i)
	}
	slices.SortStableFunc(ids, func(a, b int32) int {
		x, y := row[a], row[b]
		switch {
		case x != x && y != y:
			return 0
		case x != x:
			return 1
		case y != y:
			return -1
		case x > y:
			return -1
		case x < y:
			return 1
		}
		return 0
	})
	vals := make([]float32, k)
	for i := range k {
		vals[i] = row[ids[i]]
	}
	return ids[:k], vals
}

// TestTopKRow compares the heap selection with a full sort on odd widths,
// with many ties (logits drawn from a few levels) and NaNs.
func TestTopKRow(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for _, V := range []int{1, 2, 7, 63, 257, 1031} {
		for _, K := range []int{1, 2, 3, 32, 256} {
			if K > V {
				continue
			}
			for _, kind := range []string{"normal", "ties", "nan"} {
				row := randSlice(r, V)
				for i := range row {
					switch kind {
					case "ties":
						row[i] = float32(math.Round(float64(row[i]) * 2))
					case "nan":
						if r.IntN(5) == 0 {
							row[i] = float32(math.NaN())
						}
					}
				}
				wi, wv := refTopK(row, K)
				gi, gv := make([]int32, K), make([]float32, K)
				topKRow(row, gi, gv)
				for k := range K {
					same := gv[k] == wv[k] || (gv[k] != gv[k] && wv[k] != wv[k])
					if gi[k] != wi[k] || !same {
						t.Fatalf("V=%d K=%d %s: entry %d is (%d, %v), want (%d, %v)", V, K, kind, k, gi[k], gv[k], wi[k], wv[k])
					}
				}
			}
		}
	}
}

// TopK's logits are the model's (compared with NextLogits at each
// sequence's last position) and its loss is Loss's, for an fp32 model and
// for the same model quantized to INT8 (whose head is the INT8 product).
func TestModelTopK(t *testing.T) {
	cfg := Config{VocabSize: 37, NCtx: 9, NEmbd: 12, NLayer: 2, NHead: 3, MLP: MLPSwiGLU}
	m := New(cfg, PortableKernels(), 2)
	t.Run("fp32", func(t *testing.T) { checkTopK(t, m) })
	var buf bytes.Buffer
	if err := WriteCheckpoint(&buf, m, 0, nil); err != nil {
		t.Fatal(err)
	}
	q, _, err := Quantize(buf.Bytes(), Config{}, QuantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ck, err := ReadCheckpoint(q, Config{}, PortableKernels())
	if err != nil {
		t.Fatal(err)
	}
	if !ck.Model.Quantized() {
		t.Fatal("the quantized checkpoint loaded as an fp32 model")
	}
	t.Run("int8", func(t *testing.T) { checkTopK(t, ck.Model) })
	if _, err := PruneMagnitude(ck.Model, 0.5); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("pruning an INT8 model: error %v, want ErrInvalidInput", err)
	}
}

func checkTopK(t *testing.T, m *Model) {
	cfg := m.Config()
	r := rand.New(rand.NewPCG(9, 9))
	B, T, K, V := 3, 7, 5, cfg.VocabSize
	in, tg := randTokens(r, B*T, V), randTokens(r, B*T, V)
	res, err := m.TopK(in, tg, B, T, K)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Indices) != B*T*K || len(res.Logits) != B*T*K || res.K != K {
		t.Fatalf("%d indices, %d logits, k %d; want %d, %d, %d", len(res.Indices), len(res.Logits), res.K, B*T*K, B*T*K, K)
	}
	loss, _ := m.Loss(in, tg, B, T)
	if res.Loss != loss {
		t.Fatalf("top-k loss %v, Loss %v", res.Loss, loss)
	}
	seqs := make([][]int32, B)
	for b := range B {
		seqs[b] = in[b*T : (b+1)*T]
	}
	rows, err := m.NextLogits(seqs)
	if err != nil {
		t.Fatal(err)
	}
	for b, row := range rows {
		n := b*T + T - 1
		wi, wv := refTopK(row, K)
		for k := range K {
			gi, gv := res.Indices[n*K+k], res.Logits[n*K+k]
			if gi != wi[k] || !closeRel(gv, float64(wv[k]), 1e-5, 1e-6) {
				t.Fatalf("sequence %d entry %d: (%d, %v), want (%d, %v)", b, k, gi, gv, wi[k], wv[k])
			}
		}
	}
}

// BenchmarkDistillTrainStep is the reference config at batch 8 × 128 with
// a K = 32 teacher. Every iteration runs a plain step (ForwardBackward)
// and a distillation step on the same batch, timed apart, so that both
// see the same machine load: it reports each one's ms/step and kd/plain,
// their ratio (1 means distillation costs nothing extra).
func BenchmarkDistillTrainStep(b *testing.B) {
	cfg := Config{VocabSize: 4096, NCtx: 256, NEmbd: 256, NLayer: 4, NHead: 4}
	B, T, K := 8, 128, 32
	r := rand.New(rand.NewPCG(1, 1))
	in, tg := randTokens(r, B*T, cfg.VocabSize), randTokens(r, B*T, cfg.VocabSize)
	for _, temp := range []float32{1, 2} {
		b.Run(fmt.Sprintf("k=%d/T=%v", K, temp), func(b *testing.B) {
			k, err := simd.New()
			if err != nil {
				b.Fatal(err)
			}
			m := New(cfg, k, 1)
			st := randTeacher(r, B*T, cfg.VocabSize, K, 3, temp, 0.5)
			var plain, kd, plainCPU, kdCPU time.Duration
			step := func(distill bool) (wall, cpu time.Duration) {
				t0, c0 := time.Now(), cpuTime()
				m.ZeroGrads()
				var err error
				if distill {
					_, err = m.DistillForwardBackward(in, tg, B, T, st)
				} else {
					_, err = m.ForwardBackward(in, tg, B, T)
				}
				if err != nil {
					b.Fatal(err)
				}
				return time.Since(t0), cpuTime() - c0
			}
			i := 0
			for b.Loop() {
				// Alternate which goes first, so that neither inherits
				// the other's warm caches more often.
				kdFirst := i%2 == 0
				w1, c1 := step(kdFirst)
				w2, c2 := step(!kdFirst)
				if kdFirst {
					w1, c1, w2, c2 = w2, c2, w1, c1
				}
				plain, plainCPU, kd, kdCPU = plain+w1, plainCPU+c1, kd+w2, kdCPU+c2
				i++
			}
			n := float64(b.N)
			b.ReportMetric(plain.Seconds()*1e3/n, "plain-ms/step")
			b.ReportMetric(kd.Seconds()*1e3/n, "kd-ms/step")
			b.ReportMetric(kd.Seconds()/plain.Seconds(), "kd/plain")
			if plainCPU > 0 {
				b.ReportMetric(kdCPU.Seconds()/plainCPU.Seconds(), "kd/plain-cpu")
			}
		})
	}
}

// BenchmarkDistillHead isolates what distillation adds: the loss and
// gradient of 1024 rows of 4096 logits (the reference batch's head) by
// crossEntropyRow and by distillRow with a K = 32 teacher, timed apart in
// every iteration (each pays the same copy of the logits).
func BenchmarkDistillHead(b *testing.B) {
	const N, V, K = 1024, 4096, 32
	r := rand.New(rand.NewPCG(1, 2))
	src := randSlice(r, N*V)
	for i := range src {
		src[i] *= 3
	}
	tg := randTokens(r, N, V)
	row := make([]float32, V)
	zs, lp := make([]float32, V), make([]float64, K)
	for _, temp := range []float32{1, 2} {
		b.Run(fmt.Sprintf("k=%d/T=%v", K, temp), func(b *testing.B) {
			st := randTeacher(r, N, V, K, 3, temp, 0.5)
			var ce, kd time.Duration
			for b.Loop() {
				t0 := time.Now()
				for n := range N {
					copy(row, src[n*V:])
					crossEntropyRow(row, int(tg[n]), 0, 1, true)
				}
				t1 := time.Now()
				for n := range N {
					copy(row, src[n*V:])
					distillRow(row, int(tg[n]), 0, 1, true, st.Indices[n*K:(n+1)*K], st.Logits[n*K:(n+1)*K], temp, 0.5, zs, lp)
				}
				ce, kd = ce+t1.Sub(t0), kd+time.Since(t1)
			}
			n := float64(b.N)
			b.ReportMetric(ce.Seconds()*1e3/n, "ce-ms")
			b.ReportMetric(kd.Seconds()*1e3/n, "kd-ms")
			b.ReportMetric(kd.Seconds()/ce.Seconds(), "kd/ce")
		})
	}
}
