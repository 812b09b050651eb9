package transformer

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// pruneConfig has odd matrix shapes: D = 6 over 3 heads of 2, hidden 24.
func pruneConfig(mlp string) Config {
	return Config{VocabSize: 13, NCtx: 7, NEmbd: 6, NLayer: 2, NHead: 3, MLP: mlp}
}

// randModel is New with weights drawn from a few levels (many equal
// magnitudes, both signs) and nonzero biases, so that ties and biases are
// exercised.
func randModel(cfg Config, seed uint64) *Model {
	m := New(cfg, PortableKernels(), seed)
	r := rand.New(rand.NewPCG(seed, 77))
	for _, p := range m.Params() {
		if hasSuffix(p.Name, ".weight") && len(p.Shape) == 1 {
			continue
		}
		for i := range p.Data {
			p.Data[i] = float32(r.IntN(9)-4) * 0.1
		}
	}
	return m
}

// wantSmallest returns the set of positions of the k smallest magnitudes of
// the concatenation of parts (ties in order), by a full sort.
func wantSmallest(parts [][]float32, k int) map[[2]int]bool {
	type e struct {
		part, i int
		mag     float64
	}
	var es []e
	for p, d := range parts {
		for i, v := range d {
			es = append(es, e{p, i, math.Abs(float64(v))})
		}
	}
	sort.SliceStable(es, func(a, b int) bool { return es[a].mag < es[b].mag })
	out := map[[2]int]bool{}
	for _, x := range es[:k] {
		out[[2]int{x.part, x.i}] = true
	}
	return out
}

func TestPruneMagnitude(t *testing.T) {
	tests := map[string]struct {
		global, emb bool
		sparsity    float64
	}{
		"per-matrix":            {false, false, 0.37},
		"per-matrix/embeddings": {false, true, 0.5},
		"global":                {true, false, 0.61},
		"global/embeddings":     {true, true, 0.2},
		"zero":                  {false, false, 0},
		"all":                   {true, false, 1},
	}
	for name, tc := range tests {
		for _, mlp := range []string{MLPGELU, MLPSwiGLU} {
			t.Run(name+"/"+mlp, func(t *testing.T) {
				m := randModel(pruneConfig(mlp), 3)
				before := slices.Clone(m.ParamData())
				o := pruneOptions{global: tc.global, embeddings: tc.emb}
				var opts []PruneOption
				if tc.global {
					opts = append(opts, PruneGlobal())
				}
				if tc.emb {
					opts = append(opts, PruneEmbeddings())
				}
				// The expected zeros, from the weights before pruning.
				want := map[int]bool{}
				var scope []Param
				for _, p := range m.Params() {
					if inScope(p, o) {
						scope = append(scope, p)
					}
				}
				if tc.global {
					parts, total := [][]float32{}, 0
					for _, p := range scope {
						parts = append(parts, slices.Clone(p.Data))
						total += p.Size()
					}
					for k := range wantSmallest(parts, int(math.Round(tc.sparsity*float64(total)))) {
						want[scope[k[0]].Offset+k[1]] = true
					}
				} else {
					for _, p := range scope {
						for k := range wantSmallest([][]float32{slices.Clone(p.Data)}, int(math.Round(tc.sparsity*float64(p.Size())))) {
							want[p.Offset+k[1]] = true
						}
					}
				}
				rep, err := PruneMagnitude(m, tc.sparsity, opts...)
				if err != nil {
					t.Fatal(err)
				}
				var zeros, params int64
				for _, p := range scope {
					params += int64(p.Size())
				}
				for i, v := range m.ParamData() {
					switch {
					case want[i] && v != 0:
						t.Fatalf("param %d = %v, want pruned", i, v)
					case !want[i] && v != before[i]:
						t.Fatalf("param %d changed from %v to %v", i, before[i], v)
					}
					if want[i] || (v == 0 && before[i] == 0 && inScopeIndex(scope, i)) {
						zeros++
					}
				}
				if rep.Params != params || rep.Nonzero != params-zeros {
					t.Fatalf("report: %d of %d nonzero, want %d of %d", rep.Nonzero, rep.Params, params-zeros, params)
				}
				// Each matrix (or the scope) ends with round(sparsity·size)
				// zeros, or the zeros it had if there were more.
				zerosBefore := func(p Param) int64 {
					var z int64
					for _, v := range before[p.Offset : p.Offset+p.Size()] {
						if v == 0 {
							z++
						}
					}
					return z
				}
				if !tc.global {
					for i, ms := range rep.Matrices {
						n := ms.Params
						if got, wantZ := n-ms.Nonzero, max(int64(math.Round(tc.sparsity*float64(n))), zerosBefore(scope[i])); got != wantZ || ms.Name != scope[i].Name {
							t.Fatalf("%s: %d zeros of %d, want %d", ms.Name, got, n, wantZ)
						}
					}
				} else {
					var z int64
					for _, p := range scope {
						z += zerosBefore(p)
					}
					if got, wantZ := rep.Params-rep.Nonzero, max(int64(math.Round(tc.sparsity*float64(params))), z); got != wantZ {
						t.Fatalf("%d zeros of %d, want %d", got, params, wantZ)
					}
				}
				if math.Abs(rep.Sparsity-(1-float64(rep.Nonzero)/float64(rep.Params))) > 1e-12 {
					t.Fatalf("sparsity %v for %d of %d", rep.Sparsity, rep.Nonzero, rep.Params)
				}
				// Idempotent.
				after := slices.Clone(m.ParamData())
				if _, err := PruneMagnitude(m, tc.sparsity, opts...); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(after, m.ParamData()) {
					t.Fatal("pruning again to the same sparsity changed the weights")
				}
			})
		}
	}
}

func inScopeIndex(scope []Param, i int) bool {
	for _, p := range scope {
		if i >= p.Offset && i < p.Offset+p.Size() {
			return true
		}
	}
	return false
}

// zeroSmallest on a large random vector (several histogram buckets deep,
// with duplicates) against a full sort.
func TestZeroSmallestLarge(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 1))
	a, b := randSlice(r, 70001), randSlice(r, 3333)
	for i := 0; i < len(a); i += 7 {
		a[i] = a[(i*31)%len(a)] // duplicates
	}
	b[5] = float32(math.Copysign(0, -1))
	for _, k := range []int{1, 2, 17, 40000, 73334} {
		ca, cb := slices.Clone(a), slices.Clone(b)
		want := wantSmallest([][]float32{ca, cb}, k)
		zeroSmallest([][]float32{ca, cb}, k)
		for p, d := range [][]float32{ca, cb} {
			orig := [][]float32{a, b}[p]
			for i, v := range d {
				if w := want[[2]int{p, i}]; (w && v != 0) || (!w && v != orig[i]) {
					t.Fatalf("k=%d: part %d entry %d = %v (was %v), pruned %v", k, p, i, v, orig[i], w)
				}
			}
		}
	}
}

// headOut is the slice of layer l's attention output (before c_proj) that
// head h wrote on the last forward pass.
func headOut(m *Model, l, h int) []float32 {
	D, hd := m.cfg.NEmbd, m.cfg.HeadDim()
	var out []float32
	for r := range m.N {
		out = append(out, m.a.y[l][r*D+h*hd:r*D+(h+1)*hd]...)
	}
	return out
}

func TestPruneHeads(t *testing.T) {
	for _, cfg := range []Config{pruneConfig(MLPGELU), {VocabSize: 13, NCtx: 7, NEmbd: 6, NLayer: 2, NHead: 3, Positions: PositionsRoPE, Norm: NormRMSNorm, MLP: MLPSwiGLU}} {
		t.Run(cfg.Positions+"/"+cfg.MLP, func(t *testing.T) {
			m := New(cfg, PortableKernels(), 5)
			D, hd := cfg.NEmbd, cfg.HeadDim()
			r := rand.New(rand.NewPCG(1, 2))
			for l := range cfg.NLayer {
				for i := range m.p.layers[l].attnB {
					m.p.layers[l].attnB[i] = float32(0.02 * r.NormFloat64())
				}
			}
			// Scale each head so that the ranking is known: layer 0 keeps
			// its heads in order of index, layer 1 reverses it.
			scales := [][]float32{{1, 2, 3}, {3, 2, 1}}
			for l := range cfg.NLayer {
				lp := &m.p.layers[l]
				for h := range cfg.NHead {
					s := scales[l][h]
					for r := range D {
						for _, col := range []int{h * hd, D + h*hd, 2*D + h*hd} {
							for j := range hd {
								lp.attnW[r*3*D+col+j] *= s
							}
						}
					}
					for i := h * hd * D; i < (h+1)*hd*D; i++ {
						lp.projW[i] *= s
					}
				}
			}
			B, T := 2, 7
			in, tg := randTokens(r, B*T, cfg.VocabSize), randTokens(r, B*T, cfg.VocabSize)
			full, _ := m.Loss(in, tg, B, T)
			before := SparsityOf(m)
			rep, err := PruneHeads(m, 2)
			if err != nil {
				t.Fatal(err)
			}
			if want := [][]int{{0, 1}, {1, 2}}; !slices.EqualFunc(rep.Heads, want, slices.Equal) {
				t.Fatalf("pruned heads %v, want %v", rep.Heads, want)
			}
			perHead := int64(D*3*hd + hd*D) // c_attn columns and c_proj rows
			if got := before.Nonzero - rep.Nonzero; got != 2*int64(cfg.NLayer)*perHead {
				t.Fatalf("%d weights zeroed, want %d", got, 2*int64(cfg.NLayer)*perHead)
			}
			pruned, _ := m.Loss(in, tg, B, T)
			if pruned == full {
				t.Fatal("pruning two heads of three left the loss unchanged")
			}
			for l, hs := range rep.Heads {
				for _, h := range hs {
					for i, v := range headOut(m, l, h) {
						if v != 0 {
							t.Fatalf("layer %d head %d: output %d = %v after pruning", l, h, i, v)
						}
					}
					for _, col := range []int{h * hd, D + h*hd, 2*D + h*hd} {
						for j := range hd {
							if m.p.layers[l].attnB[col+j] != 0 {
								t.Fatalf("layer %d head %d: bias %d not zeroed", l, h, col+j)
							}
						}
					}
				}
			}
			// The pruned heads contribute nothing: whatever their queries
			// and keys (which only steer their own attention), the model
			// is the same, bit for bit.
			mod := New(cfg, PortableKernels(), 5)
			copy(mod.ParamData(), m.ParamData())
			for l, hs := range rep.Heads {
				for _, h := range hs {
					for rr := range D {
						for _, col := range []int{h * hd, D + h*hd} {
							for j := range hd {
								mod.p.layers[l].attnW[rr*3*D+col+j] = float32(r.NormFloat64())
							}
						}
					}
				}
			}
			if l2, _ := mod.Loss(in, tg, B, T); l2 != pruned {
				t.Fatalf("random queries and keys in pruned heads changed the loss from %v to %v", pruned, l2)
			}
			// Idempotent: the zero heads rank first.
			after := slices.Clone(m.ParamData())
			rep2, err := PruneHeads(m, 2)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(after, m.ParamData()) || !slices.EqualFunc(rep.Heads, rep2.Heads, slices.Equal) {
				t.Fatalf("pruning again changed the weights (heads %v, then %v)", rep.Heads, rep2.Heads)
			}
		})
	}
}

func TestPruneNeurons(t *testing.T) {
	for _, mlp := range []string{MLPGELU, MLPSwiGLU} {
		t.Run(mlp, func(t *testing.T) {
			cfg := pruneConfig(mlp)
			m := randModel(cfg, 9)
			D, H := cfg.NEmbd, 4*cfg.NEmbd
			// Reference ranking: the float64 norm of each neuron's weights.
			want := make([][]int, cfg.NLayer)
			n := int(math.Round(0.3 * float64(H)))
			for l := range cfg.NLayer {
				lp := &m.p.layers[l]
				type nn struct {
					j    int
					norm float64
				}
				var ns []nn
				for j := range H {
					var ss float64
					for r := range D {
						ss += float64(lp.fcW[r*H+j]) * float64(lp.fcW[r*H+j])
						if lp.gateW != nil {
							ss += float64(lp.gateW[r*H+j]) * float64(lp.gateW[r*H+j])
						}
						ss += float64(lp.mprojW[j*D+r]) * float64(lp.mprojW[j*D+r])
					}
					ss += float64(lp.fcB[j]) * float64(lp.fcB[j])
					if lp.gateB != nil {
						ss += float64(lp.gateB[j]) * float64(lp.gateB[j])
					}
					ns = append(ns, nn{j, ss})
				}
				sort.SliceStable(ns, func(a, b int) bool { return ns[a].norm < ns[b].norm })
				for _, x := range ns[:n] {
					want[l] = append(want[l], x.j)
				}
				slices.Sort(want[l])
			}
			rep, err := PruneNeurons(m, 0.3)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(rep.Neurons, want, slices.Equal) {
				t.Fatalf("pruned neurons %v, want %v", rep.Neurons, want)
			}
			r := rand.New(rand.NewPCG(3, 4))
			B, T := 2, 7
			in, tg := randTokens(r, B*T, cfg.VocabSize), randTokens(r, B*T, cfg.VocabSize)
			pruned, _ := m.Loss(in, tg, B, T)
			for l, js := range rep.Neurons {
				for _, j := range js {
					for row := range m.N {
						if v := m.a.gelu[l][row*H+j]; v != 0 {
							t.Fatalf("layer %d neuron %d row %d: activation %v after pruning", l, j, row, v)
						}
					}
					for rr := range D {
						if m.p.layers[l].fcW[rr*H+j] != 0 || m.p.layers[l].mprojW[j*D+rr] != 0 {
							t.Fatalf("layer %d neuron %d: weights not zeroed", l, j)
						}
					}
				}
			}
			// A pruned neuron contributes nothing: its c_proj row can be
			// anything.
			mod := New(cfg, PortableKernels(), 1)
			copy(mod.ParamData(), m.ParamData())
			for l, js := range rep.Neurons {
				for _, j := range js {
					for rr := range D {
						mod.p.layers[l].mprojW[j*D+rr] = float32(r.NormFloat64())
					}
				}
			}
			if l2, _ := mod.Loss(in, tg, B, T); l2 != pruned {
				t.Fatalf("a random c_proj row under pruned neurons changed the loss from %v to %v", pruned, l2)
			}
			after := slices.Clone(m.ParamData())
			if _, err := PruneNeurons(m, 0.3); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(after, m.ParamData()) {
				t.Fatal("pruning again changed the weights")
			}
		})
	}
}

func TestPruneErrors(t *testing.T) {
	m := New(pruneConfig(MLPGELU), PortableKernels(), 1)
	tests := map[string]func() error{
		"sparsity above one":  func() error { _, err := PruneMagnitude(m, 1.1); return err },
		"negative sparsity":   func() error { _, err := PruneMagnitude(m, -0.1); return err },
		"nan sparsity":        func() error { _, err := PruneMagnitude(m, math.NaN()); return err },
		"every head":          func() error { _, err := PruneHeads(m, 3); return err },
		"negative heads":      func() error { _, err := PruneHeads(m, -1); return err },
		"head out of range":   func() error { _, err := PruneHeadSet(m, [][]int{{0}, {3}}); return err },
		"too many layers":     func() error { _, err := PruneHeadSet(m, [][]int{{}, {}, {0}}); return err },
		"every neuron":        func() error { _, err := PruneNeurons(m, 0.99); return err },
		"neuron fraction one": func() error { _, err := PruneNeurons(m, 1); return err },
		"neuron out of range": func() error { _, err := PruneNeuronSet(m, [][]int{{24}}); return err },
		"unknown method":      func() error { _, err := PruneSpec{Method: "random"}.Apply(m); return err },
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			if err := f(); !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error %v, want ErrInvalidInput", err)
			}
		})
	}
}

// PruneSpec.Apply is the functions it names.
func TestPruneSpec(t *testing.T) {
	specs := map[string]struct {
		spec PruneSpec
		do   func(*Model) (PruneReport, error)
	}{
		"magnitude": {PruneSpec{Method: PruneMethodMagnitude, Sparsity: 0.5, Global: true, Embeddings: true},
			func(m *Model) (PruneReport, error) { return PruneMagnitude(m, 0.5, PruneGlobal(), PruneEmbeddings()) }},
		"heads":   {PruneSpec{Method: PruneMethodHeads, HeadsPerLayer: 1}, func(m *Model) (PruneReport, error) { return PruneHeads(m, 1) }},
		"neurons": {PruneSpec{Method: PruneMethodNeurons, NeuronFraction: 0.25}, func(m *Model) (PruneReport, error) { return PruneNeurons(m, 0.25) }},
	}
	for name, tc := range specs {
		t.Run(name, func(t *testing.T) {
			a, b := randModel(pruneConfig(MLPSwiGLU), 4), randModel(pruneConfig(MLPSwiGLU), 4)
			ra, err := tc.spec.Apply(a)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := tc.do(b)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(a.ParamData(), b.ParamData()) || ra.Nonzero != rb.Nonzero || ra.Params != rb.Params {
				t.Fatalf("spec: %d of %d nonzero; direct call: %d of %d", ra.Nonzero, ra.Params, rb.Nonzero, rb.Params)
			}
		})
	}
}
