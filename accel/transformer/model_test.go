package transformer

import (
	"math"
	"math/rand/v2"
	"testing"
)

func tinyConfig(pos, norm string) Config {
	return Config{VocabSize: 11, NCtx: 6, NEmbd: 8, NLayer: 2, NHead: 2, Positions: pos, Norm: norm}
}

func randTokens(r *rand.Rand, n, vocab int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32(r.IntN(vocab))
	}
	return s
}

// gradCheckConfigs are the architecture options the gradient check covers:
// every positions × norm pair, and each newer option on top of one.
func gradCheckConfigs() map[string]struct {
	cfg    Config
	smooth float32
} {
	out := map[string]struct {
		cfg    Config
		smooth float32
	}{}
	for _, pos := range []string{PositionsLearned, PositionsRoPE} {
		for _, norm := range []string{NormLayerNorm, NormRMSNorm} {
			out[pos+"/"+norm] = struct {
				cfg    Config
				smooth float32
			}{tinyConfig(pos, norm), 0}
		}
	}
	add := func(name string, smooth float32, mod func(*Config)) {
		c := tinyConfig(PositionsLearned, NormLayerNorm)
		mod(&c)
		out[name] = struct {
			cfg    Config
			smooth float32
		}{c, smooth}
	}
	add("swiglu", 0, func(c *Config) { c.MLP = MLPSwiGLU })
	add("swiglu/rope/rmsnorm", 0, func(c *Config) { c.MLP, c.Positions, c.Norm = MLPSwiGLU, PositionsRoPE, NormRMSNorm })
	add("window", 0, func(c *Config) { c.AttnWindow = 2 })
	add("window+global", 0, func(c *Config) { c.AttnWindow, c.AttnGlobal = 2, 1 })
	add("exits", 0, func(c *Config) { c.NLayer, c.ExitLayers = 3, []int{1, 2} })
	add("exits/rmsnorm", 0, func(c *Config) { c.NLayer, c.ExitLayers, c.Norm = 3, []int{2}, NormRMSNorm })
	add("label-smoothing", 0.1, func(*Config) {})
	add("all", 0.2, func(c *Config) {
		c.MLP, c.Positions, c.AttnWindow, c.AttnGlobal, c.NLayer, c.ExitLayers = MLPSwiGLU, PositionsRoPE, 3, 1, 3, []int{1}
	})
	return out
}

// TestGradientCheck compares the analytic gradient with central finite
// differences for a sample of entries from every tensor, for every
// architecture option and on every kernel path this machine runs (GEMM
// kernels × the vector and portable exponential).
// Parameters are re-drawn with std 0.3 (norm weights around 1) so that
// every gradient is well above float32 noise. An entry passes when
// |analytic - numeric| <= 1e-3 + 3e-2·max(|analytic|, |numeric|).
func TestGradientCheck(t *testing.T) {
	exps := map[string]bool{"exp-portable": false}
	if useAVX512Exp {
		exps["exp-avx512"] = true
	}
	defer func(v bool) { useAVX512Exp = v }(useAVX512Exp)
	for ename, on := range exps {
		useAVX512Exp = on
		for kname, kern := range testKernels() {
			for name, tc := range gradCheckConfigs() {
				t.Run(ename+"/"+kname+"/"+name, func(t *testing.T) {
					gradCheck(t, tc.cfg, kern, tc.smooth)
				})
			}
		}
	}
}

func gradCheck(t *testing.T, cfg Config, kern Kernels, smooth float32) {
	m := New(cfg, kern, 1)
	if err := m.SetLabelSmoothing(smooth); err != nil {
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
	in, tg := randTokens(r, B*T, cfg.VocabSize), randTokens(r, B*T, cfg.VocabSize)
	m.ZeroGrads()
	loss, err := m.ForwardBackward(in, tg, B, T)
	if err != nil {
		t.Fatal(err)
	}
	if l2, _ := m.Objective(in, tg, B, T); math.Abs(l2-loss) > 1e-5*math.Abs(loss) {
		t.Fatalf("ForwardBackward loss %v, Loss %v", loss, l2)
	}
	grads := append([]float32(nil), m.Grads()...)
	const h = 1e-2
	for _, p := range m.Params() {
		for s := 0; s < 6; s++ {
			i := r.IntN(p.Size())
			orig := p.Data[i]
			p.Data[i] = orig + h
			lp, _ := m.Objective(in, tg, B, T)
			p.Data[i] = orig - h
			lm, _ := m.Objective(in, tg, B, T)
			p.Data[i] = orig
			num := (lp - lm) / (2 * h)
			ana := float64(grads[p.Offset+i])
			if d := math.Abs(ana - num); d > 1e-3+3e-2*math.Max(math.Abs(ana), math.Abs(num)) {
				t.Errorf("%s[%d]: analytic %.6g, numeric %.6g", p.Name, i, ana, num)
			}
		}
	}
}

func TestTrainingReducesLoss(t *testing.T) {
	cfg := Config{VocabSize: 16, NCtx: 16, NEmbd: 32, NLayer: 2, NHead: 4}
	m := New(cfg, PortableKernels(), 3)
	opt := NewAdamW(AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.01, GradClip: 1}, m)
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
	for step := range 60 {
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
	if !(last < 0.1*first) || last > 0.2 {
		t.Fatalf("loss went from %.4f to %.4f, want below 0.2 and a tenth of the start", first, last)
	}
}

func TestNextLogitsMatchesFullForward(t *testing.T) {
	cfg := tinyConfig(PositionsRoPE, NormLayerNorm)
	m := New(cfg, PortableKernels(), 5)
	r := rand.New(rand.NewPCG(1, 1))
	seqs := [][]int32{randTokens(r, 3, 11), randTokens(r, 6, 11), randTokens(r, 9, 11)}
	got, err := m.NextLogits(seqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range seqs {
		if len(s) > cfg.NCtx {
			s = s[len(s)-cfg.NCtx:]
		}
		one, err := m.NextLogits([][]int32{s})
		if err != nil {
			t.Fatal(err)
		}
		for j := range one[0] {
			if d := math.Abs(float64(one[0][j] - got[i][j])); d > 1e-5 {
				t.Fatalf("seq %d logit %d: batched %v, alone %v", i, j, got[i][j], one[0][j])
			}
		}
	}
}

func TestModelInputErrors(t *testing.T) {
	m := New(tinyConfig("", ""), PortableKernels(), 1)
	tests := map[string]struct {
		in, tg []int32
		B, T   int
	}{
		"zero batch":     {nil, nil, 0, 1},
		"too long":       {make([]int32, 7), make([]int32, 7), 1, 7},
		"length":         {make([]int32, 3), make([]int32, 4), 1, 4},
		"input range":    {[]int32{0, 11}, []int32{0, 0}, 1, 2},
		"negative input": {[]int32{-1, 0}, []int32{0, 0}, 1, 2},
		"target range":   {[]int32{0, 1}, []int32{0, 99}, 1, 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := m.ForwardBackward(tc.in, tc.tg, tc.B, tc.T); err == nil {
				t.Fatal("no error")
			}
		})
	}
	if _, err := m.NextLogits([][]int32{{}}); err == nil {
		t.Fatal("empty sequence: no error")
	}
}

func TestForwardBackwardAllocs(t *testing.T) {
	cfg := Config{VocabSize: 64, NCtx: 16, NEmbd: 32, NLayer: 2, NHead: 4}
	m := New(cfg, PortableKernels(), 1)
	r := rand.New(rand.NewPCG(1, 1))
	in, tg := randTokens(r, 64, 64), randTokens(r, 64, 64)
	m.ForwardBackward(in, tg, 4, 16)
	// The worker pool may allocate a job record when every pooled one is
	// busy (a loaded machine); the activations themselves never do.
	allocs := testing.AllocsPerRun(20, func() { m.ForwardBackward(in, tg, 4, 16) })
	if allocs > 1 {
		t.Fatalf("%v allocations per step, want at most 1", allocs)
	}
}

// BenchmarkTrainStep measures training throughput for the demo config.
func BenchmarkTrainStep(b *testing.B) {
	benchTrainStep(b, Config{VocabSize: 1024, NCtx: 64, NEmbd: 128, NLayer: 4, NHead: 4}, 16)
}

// BenchmarkTrainStepReference is issue 3's reference config (llmesh bench
// train-step measures it beside PyTorch).
func BenchmarkTrainStepReference(b *testing.B) {
	benchTrainStep(b, Config{VocabSize: 4096, NCtx: 256, NEmbd: 256, NLayer: 4, NHead: 4}, 8)
}

func benchTrainStep(b *testing.B, cfg Config, B int) {
	for kname, kern := range testKernels() {
		b.Run(kname, func(b *testing.B) {
			m := New(cfg, kern, 1)
			opt := NewAdamW(AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, GradClip: 1}, m)
			r := rand.New(rand.NewPCG(1, 1))
			T := cfg.NCtx
			in, tg := randTokens(r, B*T, cfg.VocabSize), randTokens(r, B*T, cfg.VocabSize)
			for b.Loop() {
				m.ZeroGrads()
				if _, err := m.ForwardBackward(in, tg, B, T); err != nil {
					b.Fatal(err)
				}
				opt.Step(m.ParamData(), m.Grads(), 1e-3)
			}
			b.ReportMetric(float64(B*T)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// Loss is the validation loss: label smoothing and exit heads shape the
// training objective only.
func TestLossIsPlainCrossEntropy(t *testing.T) {
	cfg := Config{VocabSize: 11, NCtx: 6, NEmbd: 8, NLayer: 2, NHead: 2, ExitLayers: []int{1}}
	m := New(cfg, PortableKernels(), 3)
	in := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1}
	tg := []int32{2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1, 2}
	plain, err := m.Loss(in, tg, 2, 6)
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := m.Objective(in, tg, 2, 6)
	if err := m.SetLabelSmoothing(0.2); err != nil {
		t.Fatal(err)
	}
	smoothed, _ := m.Loss(in, tg, 2, 6)
	objSmoothed, _ := m.Objective(in, tg, 2, 6)
	if smoothed != plain {
		t.Errorf("Loss with label smoothing %v, without %v: want the same", smoothed, plain)
	}
	if obj == plain || objSmoothed == obj {
		t.Errorf("Objective %v (smoothed %v) should add the exit head and the smoothing to %v", obj, objSmoothed, plain)
	}
	if m.LabelSmoothing() != 0.2 {
		t.Errorf("Loss changed the label smoothing to %v", m.LabelSmoothing())
	}
}
