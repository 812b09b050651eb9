package transformer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/llmesh/llmesh/accel/simd"
)

// memGroup is an in-process allreduce for World ranks running in
// goroutines: the last rank to arrive sums the buffers in rank order and
// copies the sum to every rank, so all ranks get bit-identical values.
type memGroup struct {
	t       *testing.T
	mu      sync.Mutex
	cond    *sync.Cond
	world   int
	seq     uint64
	bufs    [][]float32
	arrived int
	gen     int
	calls   int
}

func newMemGroup(t *testing.T, world int) *memGroup {
	g := &memGroup{t: t, world: world, bufs: make([][]float32, world)}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *memGroup) fn(rank int) AllReduceFunc {
	return func(_ context.Context, seq uint64, data []float32) error {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.arrived == 0 {
			g.seq = seq
		} else if seq != g.seq {
			g.t.Errorf("rank %d: allreduce seq %d, another rank is at %d", rank, seq, g.seq)
		}
		g.bufs[rank] = data
		g.arrived++
		gen := g.gen
		if g.arrived == g.world {
			sum := make([]float32, len(data))
			for _, b := range g.bufs {
				if len(b) != len(sum) {
					g.t.Errorf("allreduce %d: lengths %d and %d", seq, len(b), len(sum))
					continue
				}
				for i, v := range b {
					sum[i] += v
				}
			}
			for _, b := range g.bufs {
				copy(b, sum)
			}
			g.arrived = 0
			g.gen++
			g.calls++
			g.cond.Broadcast()
			return nil
		}
		for g.gen == gen {
			g.cond.Wait()
		}
		return nil
	}
}

// onRanks runs f for every rank concurrently and joins the errors.
func onRanks(world int, f func(r int) error) error {
	errs := make([]error, world)
	var wg sync.WaitGroup
	for r := range world {
		wg.Go(func() { errs[r] = f(r) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// tpConfigs are the architectures the tensor-parallel tests cover, on an
// odd-sized model: 4 heads of 10, vocabulary 37, sequences of 11.
func tpConfigs() map[string]struct {
	cfg    Config
	smooth float32
} {
	base := Config{VocabSize: 37, NCtx: 13, NEmbd: 40, NLayer: 2, NHead: 4}
	out := map[string]struct {
		cfg    Config
		smooth float32
	}{}
	add := func(name string, smooth float32, mod func(*Config)) {
		c := base
		mod(&c)
		out[name] = struct {
			cfg    Config
			smooth float32
		}{c, smooth}
	}
	add("gelu/learned/layernorm", 0, func(*Config) {})
	add("swiglu/rope/rmsnorm", 0, func(c *Config) { c.MLP, c.Positions, c.Norm = MLPSwiGLU, PositionsRoPE, NormRMSNorm })
	add("window+global/label-smoothing", 0.1, func(c *Config) { c.AttnWindow, c.AttnGlobal, c.NLayer = 4, 2, 3 })
	return out
}

// tpModel builds a full model with parameters drawn at std 0.1 (norm
// weights around 1), so that every gradient is well above float32 noise.
func tpModel(t *testing.T, cfg Config, smooth float32, seed uint64) *Model {
	t.Helper()
	m := New(cfg, PortableKernels(), seed)
	r := rand.New(rand.NewPCG(seed, 7))
	for _, p := range m.Params() {
		for i := range p.Data {
			v := float32(r.NormFloat64() * 0.1)
			if len(p.Shape) == 1 && hasSuffix(p.Name, ".weight") {
				v += 1
			}
			p.Data[i] = v
		}
	}
	if err := m.SetLabelSmoothing(smooth); err != nil {
		t.Fatal(err)
	}
	return m
}

func newTPGroup(t *testing.T, full *Model, world int) ([]*TPModel, *memGroup) {
	t.Helper()
	g := newMemGroup(t, world)
	ms := make([]*TPModel, world)
	for r := range world {
		m, err := NewTP(full, TPConfig{Rank: r, World: world, AllReduce: g.fn(r)})
		if err != nil {
			t.Fatal(err)
		}
		ms[r] = m
	}
	return ms, g
}

// closeTensors compares two vectors in the full layout tensor by tensor:
// each entry within atol + rtol·max|want| of its tensor.
func closeTensors(t *testing.T, what string, ps []Param, got, want []float32, rtol, atol float64) {
	t.Helper()
	bad := 0
	for _, p := range ps {
		g, w := got[p.Offset:p.Offset+p.Size()], want[p.Offset:p.Offset+p.Size()]
		var scale, worst float64
		for _, v := range w {
			scale = max(scale, math.Abs(float64(v)))
		}
		for i := range w {
			worst = max(worst, math.Abs(float64(g[i])-float64(w[i])))
		}
		if worst > atol+rtol*scale {
			bad++
			if bad <= 5 {
				t.Errorf("%s %s: largest difference %.3g, tensor scale %.3g", what, p.Name, worst, scale)
			}
		}
	}
}

// Two (and four) tensor-parallel ranks give the loss and, gathered back to
// the full layout, the gradients of the full model.
func TestTPMatchesFullModel(t *testing.T) {
	ctx := context.Background()
	for name, tc := range tpConfigs() {
		for _, world := range []int{2, 4} {
			t.Run(fmt.Sprintf("%s/world=%d", name, world), func(t *testing.T) {
				full := tpModel(t, tc.cfg, tc.smooth, 3)
				ms, g := newTPGroup(t, full, world)
				r := rand.New(rand.NewPCG(5, 6))
				B, T := 3, 11
				in, tgt := randTokens(r, B*T, tc.cfg.VocabSize), randTokens(r, B*T, tc.cfg.VocabSize)
				full.ZeroGrads()
				want, err := full.ForwardBackward(in, tgt, B, T)
				if err != nil {
					t.Fatal(err)
				}
				losses := make([]float64, world)
				if err := onRanks(world, func(rk int) error {
					ms[rk].ZeroGrads()
					var err error
					losses[rk], err = ms[rk].ForwardBackward(ctx, in, tgt, B, T)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if wantCalls := 4 * tc.cfg.NLayer; g.calls != wantCalls {
					t.Errorf("%d allreduces for one forward and backward, want %d", g.calls, wantCalls)
				}
				for rk, l := range losses {
					if l != losses[0] {
						t.Errorf("rank %d loss %v differs from rank 0's %v", rk, l, losses[0])
					}
				}
				if math.Abs(losses[0]-want) > 1e-5*math.Abs(want) {
					t.Errorf("loss %.7f, full model %.7f", losses[0], want)
				}
				// Replicated tensors: the same gradient on every rank.
				for rk := 1; rk < world; rk++ {
					for _, run := range ms[0].runs {
						if !run.replicated {
							continue
						}
						a, b := ms[0].grads[run.local:run.local+run.n], ms[rk].grads[run.local:run.local+run.n]
						for i := range a {
							if a[i] != b[i] {
								t.Fatalf("replicated gradient at local %d differs: rank 0 %v, rank %d %v", run.local+i, a[i], rk, b[i])
							}
						}
					}
				}
				var gathered []float32
				if err := onRanks(world, func(rk int) error {
					full, err := ms[rk].Gather(ctx, ms[rk].Grads())
					if rk == 0 {
						gathered = full
					}
					return err
				}); err != nil {
					t.Fatal(err)
				}
				closeTensors(t, "gradient", full.Params(), gathered, full.Grads(), 2e-4, 1e-6)

				if err := tpLossMatches(ctx, in, tgt, B, T, ms, full); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

// tpLossMatches runs Loss on every rank and compares it with the full
// model's validation loss.
func tpLossMatches(ctx context.Context, in, tgt []int32, B, T int, ms []*TPModel, full *Model) error {
	want, err := full.Loss(in, tgt, B, T)
	if err != nil {
		return err
	}
	losses := make([]float64, len(ms))
	if err := onRanks(len(ms), func(rk int) error {
		var err error
		losses[rk], err = ms[rk].Loss(ctx, in, tgt, B, T)
		return err
	}); err != nil {
		return err
	}
	if math.Abs(losses[0]-want) > 1e-5*math.Abs(want) || losses[0] != losses[len(losses)-1] {
		return fmt.Errorf("validation losses %v, full model %.7f", losses, want)
	}
	return nil
}

// A few AdamW steps in tensor parallel (gradient clipping active) end
// where the same steps on the full model end. Adam's eps is 1e-3 here: with
// 1e-8 Adam turns float32 noise in near-zero gradients into full-size steps
// (the key bias has an exactly zero true gradient — softmax ignores it), and
// the two runs, which sum their products in another order, part by up to
// the learning rate on those entries.
func TestTPTrainingMatchesFullModel(t *testing.T) {
	ctx := context.Background()
	for name, tc := range tpConfigs() {
		t.Run(name, func(t *testing.T) {
			full := tpModel(t, tc.cfg, tc.smooth, 11)
			ms, _ := newTPGroup(t, full, 2)
			ocfg := AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-3, WeightDecay: 0.1, GradClip: 0.5}
			fopt := NewAdamW(ocfg, full)
			opts := []*AdamW{NewTPAdamW(ocfg, ms[0]), NewTPAdamW(ocfg, ms[1])}
			r := rand.New(rand.NewPCG(9, 9))
			B, T := 2, 11
			for step := range 4 {
				in, tgt := randTokens(r, B*T, tc.cfg.VocabSize), randTokens(r, B*T, tc.cfg.VocabSize)
				full.ZeroGrads()
				want, err := full.ForwardBackward(in, tgt, B, T)
				if err != nil {
					t.Fatal(err)
				}
				wantNorm := fopt.Step(full.ParamData(), full.Grads(), 1e-2)
				losses, norms := make([]float64, 2), make([]float64, 2)
				if err := onRanks(2, func(rk int) error {
					ms[rk].ZeroGrads()
					var err error
					if losses[rk], err = ms[rk].ForwardBackward(ctx, in, tgt, B, T); err != nil {
						return err
					}
					norms[rk], err = opts[rk].StepTP(ctx, ms[rk], 1e-2)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if wantNorm <= float64(ocfg.GradClip) {
					t.Errorf("step %d: gradient norm %.3g does not reach the clip %g; the test would not cover clipping", step, wantNorm, ocfg.GradClip)
				}
				if norms[0] != norms[1] || math.Abs(norms[0]-wantNorm) > 1e-4*wantNorm {
					t.Errorf("step %d: gradient norms %v on the ranks, %v on the full model", step, norms, wantNorm)
				}
				if math.Abs(losses[0]-want) > 1e-4*want || losses[0] != losses[1] {
					t.Errorf("step %d: losses %v on the ranks, %v on the full model", step, losses, want)
				}
			}
			var got *Model
			var st *AdamWState
			if err := onRanks(2, func(rk int) error {
				m, s, err := ms[rk].GatherModel(ctx, opts[rk])
				if rk == 0 {
					got, st = m, s
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			closeTensors(t, "parameter", full.Params(), got.ParamData(), full.ParamData(), 1e-4, 1e-6)
			fs := fopt.State()
			closeTensors(t, "adam m", full.Params(), st.M, fs.M, 1e-3, 1e-7)
			closeTensors(t, "adam v", full.Params(), st.V, fs.V, 1e-3, 1e-9)
			if st.Step != fs.Step {
				t.Errorf("optimizer step %d, full model %d", st.Step, fs.Step)
			}
		})
	}
}

// Slicing a model and gathering it back is exact, through a checkpoint
// file too, optimizer state included.
func TestTPCheckpointRoundTrip(t *testing.T) {
	ctx := context.Background()
	cfg := tpConfigs()["swiglu/rope/rmsnorm"].cfg
	full := tpModel(t, cfg, 0, 21)
	opt := NewAdamW(AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}, full)
	r := rand.New(rand.NewPCG(1, 1))
	st := opt.State()
	for i := range st.M {
		st.M[i], st.V[i] = float32(r.NormFloat64()), float32(r.Float64())
	}
	if err := opt.SetState(AdamWState{M: st.M, V: st.V, Step: 7}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteCheckpoint(&buf, full, 7, &st); err != nil {
		t.Fatal(err)
	}
	ck, err := ReadCheckpoint(buf.Bytes(), Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := newTPGroup(t, ck.Model, 2)
	opts := make([]*AdamW, 2)
	for rk, m := range ms {
		opts[rk] = NewTPAdamW(AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}, m)
		s, err := m.SliceState(*ck.Optimizer)
		if err != nil {
			t.Fatal(err)
		}
		if err := opts[rk].SetState(s); err != nil {
			t.Fatal(err)
		}
	}
	if n0, n1 := ms[0].NumParams(), ms[1].NumParams(); n0 != n1 || n0 >= full.NumParams() || n0 <= full.NumParams()/2 {
		t.Errorf("local sizes %d and %d of %d", n0, n1, full.NumParams())
	}
	var got *Model
	var gst *AdamWState
	if err := onRanks(2, func(rk int) error {
		m, s, err := ms[rk].GatherModel(ctx, opts[rk])
		if rk == 0 {
			got, gst = m, s
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteCheckpoint(&out, got, gst.Step, gst); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), buf.Bytes()) {
		t.Errorf("the gathered checkpoint (%d bytes) differs from the one sliced (%d bytes)", out.Len(), buf.Len())
	}
}

func TestTPRefusesBadGroups(t *testing.T) {
	ar := func(context.Context, uint64, []float32) error { return nil }
	base := Config{VocabSize: 37, NCtx: 13, NEmbd: 40, NLayer: 2, NHead: 4}
	exits := base
	exits.ExitLayers = []int{1}
	cases := map[string]struct {
		cfg  Config
		c    TPConfig
		want error
	}{
		"heads not divisible": {base, TPConfig{Rank: 0, World: 3, AllReduce: ar}, ErrInvalidConfig},
		"rank out of range":   {base, TPConfig{Rank: 2, World: 2, AllReduce: ar}, ErrInvalidInput},
		"no allreduce":        {base, TPConfig{Rank: 0, World: 2}, ErrInvalidInput},
		"exit heads":          {exits, TPConfig{Rank: 0, World: 2, AllReduce: ar}, ErrInvalidConfig},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := NewTP(New(tc.cfg, nil, 1), tc.c); !errors.Is(err, tc.want) {
				t.Errorf("NewTP: %v, want %v", err, tc.want)
			}
		})
	}
	// A failing allreduce fails the step with its cause.
	boom := errors.New("peer gone")
	m, err := NewTP(New(base, nil, 1), TPConfig{Rank: 1, World: 2, AllReduce: func(context.Context, uint64, []float32) error { return boom }})
	if err != nil {
		t.Fatal(err)
	}
	in := make([]int32, 11)
	if _, err := m.ForwardBackward(context.Background(), in, in, 1, 11); !errors.Is(err, boom) {
		t.Errorf("ForwardBackward with a failing allreduce: %v", err)
	}
}

// BenchmarkTPStep is one forward and backward pass of the bench train
// model (d_model 128, 2 layers, 4 heads, 16 x 64 tokens) on the full Model
// and on a TPModel of world 1 (the same split code, no allreduce): the
// tensor-parallel code's own overhead, on one thread of accel/simd's
// kernels (run with -cpu 1).
func BenchmarkTPStep(b *testing.B) {
	cfg := Config{VocabSize: 512, NCtx: 64, NEmbd: 128, NLayer: 2, NHead: 4}
	B, T := 16, 64
	r := rand.New(rand.NewPCG(1, 2))
	in, tgt := randTokens(r, B*T, cfg.VocabSize), randTokens(r, B*T, cfg.VocabSize)
	k, err := simd.New(simd.WithThreads(1))
	if err != nil {
		b.Fatal(err)
	}
	full := New(cfg, k, 1)
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			full.ZeroGrads()
			if _, err := full.ForwardBackward(in, tgt, B, T); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*B*T)/b.Elapsed().Seconds(), "tokens/s")
	})
	tp, err := NewTP(full, TPConfig{Rank: 0, World: 1, Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("tp-world1", func(b *testing.B) {
		for b.Loop() {
			tp.ZeroGrads()
			if _, err := tp.ForwardBackward(context.Background(), in, tgt, B, T); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*B*T)/b.Elapsed().Seconds(), "tokens/s")
	})
}
