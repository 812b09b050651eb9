package transformer

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// randomize redraws the parameters (std 0.3, norm weights around 1) so
// that attention is peaked and logits spread: a wrong mask, position or
// cache entry then moves the logits far beyond float32 noise.
func randomize(m *Model, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 99))
	for _, p := range m.Params() {
		for i := range p.Data {
			if hasSuffix(p.Name, ".weight") && len(p.Shape) == 1 {
				p.Data[i] = float32(1 + 0.3*r.NormFloat64())
			} else {
				p.Data[i] = float32(0.3 * r.NormFloat64())
			}
		}
	}
}

func param(m *Model, name string) []float32 {
	for _, p := range m.Params() {
		if p.Name == name {
			return p.Data
		}
	}
	return nil
}

// refLogits is a float64 forward pass over the whole of toks that applies
// Config.Visible, absolute positions and the MLP of the config, and
// returns the logits after the last token. ran[p] (nil: all layers) is
// how many layers token p ran before it left at an early exit; later
// layers compute its K and V from its hidden state at the exit (state
// propagation), and the last token's logits come from its exit head.
func refLogits(m *Model, toks []int32, ran []int) []float64 {
	c := m.cfg
	D, H, hd, T, V := c.NEmbd, c.NHead, c.HeadDim(), len(toks), c.VocabSize
	get := func(name string) []float64 {
		src := param(m, name)
		if src == nil {
			return nil
		}
		out := make([]float64, len(src))
		for i, v := range src {
			out[i] = float64(v)
		}
		return out
	}
	layers := func(p int) int {
		if ran == nil {
			return c.NLayer
		}
		return ran[p]
	}
	norm := func(x []float64, prefix string) []float64 {
		w, b := get(prefix+".weight"), get(prefix+".bias")
		out := make([]float64, D)
		var mu float64
		if b != nil {
			for _, v := range x {
				mu += v
			}
			mu /= float64(D)
		}
		var ss float64
		for _, v := range x {
			ss += (v - mu) * (v - mu)
		}
		rs := 1 / math.Sqrt(ss/float64(D)+normEps)
		for j, v := range x {
			out[j] = (v - mu) * rs * w[j]
			if b != nil {
				out[j] += b[j]
			}
		}
		return out
	}
	lin := func(x, w, b []float64, I, O int) []float64 {
		out := make([]float64, O)
		copy(out, b)
		for i := range I {
			for o := range O {
				out[o] += x[i] * w[i*O+o]
			}
		}
		return out
	}
	wte, wpe := get("wte"), get("wpe")
	x := make([][]float64, T)
	for p, t := range toks {
		x[p] = make([]float64, D)
		for j := range D {
			x[p][j] = wte[int(t)*D+j]
			if wpe != nil {
				x[p][j] += wpe[p*D+j]
			}
		}
	}
	for l := range c.NLayer {
		pre := "h." + itoa(l) + "."
		qkv := make([][]float64, T)
		for p := range T {
			qkv[p] = lin(norm(x[p], pre+"ln_1"), get(pre+"attn.c_attn.weight"), get(pre+"attn.c_attn.bias"), D, 3*D)
			if c.RoPE() {
				for h := 0; h < 2*D; h += hd {
					for i := range hd / 2 {
						th := float64(p) * math.Pow(10000, -2*float64(i)/float64(hd))
						a, b := qkv[p][h+2*i], qkv[p][h+2*i+1]
						qkv[p][h+2*i] = a*math.Cos(th) - b*math.Sin(th)
						qkv[p][h+2*i+1] = a*math.Sin(th) + b*math.Cos(th)
					}
				}
			}
		}
		for p := range T {
			if l >= layers(p) {
				continue
			}
			y := make([]float64, D)
			for h := range H {
				var s []float64
				var ks []int
				mx := math.Inf(-1)
				for k := 0; k <= p; k++ {
					if !c.Visible(p, k) {
						continue
					}
					var d float64
					for j := range hd {
						d += qkv[p][h*hd+j] * qkv[k][D+h*hd+j]
					}
					d /= math.Sqrt(float64(hd))
					s, ks = append(s, d), append(ks, k)
					mx = math.Max(mx, d)
				}
				var sum float64
				for i := range s {
					s[i] = math.Exp(s[i] - mx)
					sum += s[i]
				}
				for i, k := range ks {
					for j := range hd {
						y[h*hd+j] += s[i] / sum * qkv[k][2*D+h*hd+j]
					}
				}
			}
			a := lin(y, get(pre+"attn.c_proj.weight"), get(pre+"attn.c_proj.bias"), D, D)
			for j := range D {
				x[p][j] += a[j]
			}
			h2 := norm(x[p], pre+"ln_2")
			fc := lin(h2, get(pre+"mlp.c_fc.weight"), get(pre+"mlp.c_fc.bias"), D, 4*D)
			if c.SwiGLU() {
				g := lin(h2, get(pre+"mlp.c_gate.weight"), get(pre+"mlp.c_gate.bias"), D, 4*D)
				for j := range fc {
					fc[j] *= g[j] / (1 + math.Exp(-g[j]))
				}
			} else {
				for j, v := range fc {
					fc[j] = 0.5 * v * (1 + math.Tanh(geluC*(v+0.044715*v*v*v)))
				}
			}
			o := lin(fc, get(pre+"mlp.c_proj.weight"), get(pre+"mlp.c_proj.bias"), 4*D, D)
			for j := range D {
				x[p][j] += o[j]
			}
		}
	}
	head := "ln_f"
	if e := layers(T - 1); e < c.NLayer {
		head = "exit." + itoa(e) + ".ln_f"
	}
	f := norm(x[T-1], head)
	out := make([]float64, V)
	for v := range V {
		for j := range D {
			out[v] += f[j] * wte[v*D+j]
		}
	}
	return out
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// closeLogits reports whether got matches want within
// 2e-5·(1 + max|want|) everywhere (float32 against float64 lands near
// 1e-6).
func closeLogits(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d logits, want %d", what, len(got), len(want))
	}
	scale := 0.0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(v))
	}
	tol := 2e-5 * (1 + scale)
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); d > tol || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s: logit %d = %v, want %v (|diff| %.3g > %.3g)", what, i, got[i], want[i], d, tol)
		}
	}
}

func decodeConfigs() map[string]Config {
	base := Config{VocabSize: 37, NCtx: 40, NEmbd: 24, NLayer: 3, NHead: 3}
	with := func(f func(*Config)) Config { c := base; f(&c); return c.withDefaults() }
	return map[string]Config{
		"learned/layernorm/gelu": with(func(c *Config) {}),
		"rope/rmsnorm/gelu":      with(func(c *Config) { c.Positions, c.Norm = PositionsRoPE, NormRMSNorm }),
		"learned/rmsnorm/swiglu": with(func(c *Config) { c.Norm, c.MLP = NormRMSNorm, MLPSwiGLU }),
		"rope/layernorm/swiglu":  with(func(c *Config) { c.Positions, c.MLP = PositionsRoPE, MLPSwiGLU }),
		"learned/window":         with(func(c *Config) { c.AttnWindow = 7 }),
		"rope/window+global":     with(func(c *Config) { c.Positions, c.AttnWindow, c.AttnGlobal = PositionsRoPE, 19, 5 }),
		"rope/window/long":       with(func(c *Config) { c.Positions, c.AttnWindow, c.NCtx = PositionsRoPE, 18, 24 }),
	}
}

// plainPath reports whether Model.NextLogits computes cfg exactly (full
// causal attention; the training path's support of the other options is
// checked by the float64 reference instead).
func plainPath(c Config) bool { return c.AttnWindow == 0 && !c.SwiGLU() }

// TestDecodeMatchesRecompute runs prefills and single-token decodes of
// sequences of different lengths mixed in each step, with a sequence
// joining late and one appending several tokens at once, and checks every
// step's logits against a float64 full recomputation (and against
// Model.NextLogits where the training path covers the config).
func TestDecodeMatchesRecompute(t *testing.T) {
	for name, cfg := range decodeConfigs() {
		t.Run(name, func(t *testing.T) {
			m := New(cfg, PortableKernels(), 1)
			randomize(m, 5)
			d := NewDecoder(m, 64)
			r := rand.New(rand.NewPCG(3, 4))
			hist := map[uint64][]int32{}
			steps := 12
			if cfg.RoPE() && cfg.AttnWindow > 0 {
				steps = 40 // run past n_ctx
			}
			for step := range steps {
				var seqs []DecodeSeq
				add := func(id uint64, n int) {
					toks := randTokens(r, n, cfg.VocabSize)
					seqs = append(seqs, DecodeSeq{ID: id, Tokens: toks})
					hist[id] = append(hist[id], toks...)
				}
				switch step {
				case 0:
					add(1, 5)
					add(2, 17)
					add(3, 1)
				case 4:
					add(4, 9) // joins late
					add(1, 3) // several tokens at once
					add(2, 1)
				default:
					for _, id := range []uint64{3, 1, 2, 4} {
						if _, ok := hist[id]; ok {
							add(id, 1)
						}
					}
				}
				res, err := d.Step(seqs, nil, 0)
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				var plain [][]int32
				for i, sq := range seqs {
					h := hist[sq.ID]
					if res.Cached[i] != len(h) || res.ExitLayers[i] != cfg.NLayer {
						t.Fatalf("step %d id %d: cached %d exit layers %d, want %d and %d", step, sq.ID, res.Cached[i], res.ExitLayers[i], len(h), cfg.NLayer)
					}
					closeLogits(t, "step "+itoa(step)+" id "+itoa(int(sq.ID)), res.Logits[i], refLogits(m, h, nil))
					plain = append(plain, h)
				}
				if plainPath(cfg) {
					want, err := m.NextLogits(plain)
					if err != nil {
						t.Fatal(err)
					}
					for i := range want {
						for j, v := range want[i] {
							if math.Abs(float64(v-res.Logits[i][j])) > 1e-4*(1+math.Abs(float64(v))) {
								t.Fatalf("step %d seq %d logit %d: cached %v, NextLogits %v", step, i, j, res.Logits[i][j], v)
							}
						}
					}
				}
			}
		})
	}
}

// greedy generates n tokens after each prompt, the sequences either all in
// one step (batched) or one sequence per step.
func greedy(t *testing.T, d *Decoder, prompts [][]int32, n int, batched bool) [][]int32 {
	t.Helper()
	out := make([][]int32, len(prompts))
	next := make([][]int32, len(prompts))
	copy(next, prompts)
	for range n {
		var groups [][]int
		if batched {
			var all []int
			for i := range prompts {
				all = append(all, i)
			}
			groups = [][]int{all}
		} else {
			for i := range prompts {
				groups = append(groups, []int{i})
			}
		}
		for _, g := range groups {
			var seqs []DecodeSeq
			for _, i := range g {
				seqs = append(seqs, DecodeSeq{ID: uint64(100 + i), Tokens: next[i]})
			}
			res, err := d.Step(seqs, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for j, i := range g {
				best := 0
				for v, x := range res.Logits[j] {
					if x > res.Logits[j][best] {
						best = v
					}
				}
				out[i] = append(out[i], int32(best))
				next[i] = []int32{int32(best)}
			}
		}
	}
	return out
}

func TestBatchedGreedyEqualsOneAtATime(t *testing.T) {
	cfg := Config{VocabSize: 53, NCtx: 64, NEmbd: 32, NLayer: 2, NHead: 4, Positions: PositionsRoPE}
	m := New(cfg, PortableKernels(), 2)
	randomize(m, 8)
	r := rand.New(rand.NewPCG(1, 2))
	var prompts [][]int32
	for _, n := range []int{3, 20, 1, 33, 8} {
		prompts = append(prompts, randTokens(r, n, cfg.VocabSize))
	}
	batched := greedy(t, NewDecoder(m, 64), prompts, 24, true)
	single := greedy(t, NewDecoder(m, 64), prompts, 24, false)
	for i := range prompts {
		for j := range batched[i] {
			if batched[i][j] != single[i][j] {
				t.Fatalf("prompt %d token %d: batched %d, one at a time %d\nbatched %v\nsingle  %v", i, j, batched[i][j], single[i][j], batched[i], single[i])
			}
		}
	}
}

func TestPrefixReuse(t *testing.T) {
	cfg := Config{VocabSize: 29, NCtx: 64, NEmbd: 16, NLayer: 2, NHead: 2}
	m := New(cfg, PortableKernels(), 3)
	randomize(m, 9)
	r := rand.New(rand.NewPCG(5, 6))
	shared := randTokens(r, 35, cfg.VocabSize)
	a := append(append([]int32(nil), shared...), randTokens(r, 5, cfg.VocabSize)...)
	b := append(append([]int32(nil), shared...), randTokens(r, 7, cfg.VocabSize)...)

	fresh := NewDecoder(m, 64)
	want, err := fresh.Step([]DecodeSeq{{ID: 2, Tokens: b}}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantB := append([]float32(nil), want.Logits[0]...)
	freshBlocks := fresh.Stats().Used

	d := NewDecoder(m, 64)
	if _, err := d.Step([]DecodeSeq{{ID: 1, Tokens: a}}, nil, 0); err != nil {
		t.Fatal(err)
	}
	before := d.Stats().Used
	res, err := d.Step([]DecodeSeq{{ID: 2, Tokens: b}}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Reused[0] != 32 {
		t.Fatalf("reused %d positions, want 32 (two full blocks of the 35 shared)", res.Reused[0])
	}
	sameLogits(t, "reused prefix vs computed alone", res.Logits[0], wantB)
	if added := d.Stats().Used - before; added >= freshBlocks {
		t.Fatalf("second sequence added %d blocks, alone it takes %d", added, freshBlocks)
	}
	closeLogits(t, "reused prefix vs reference", res.Logits[0], refLogits(m, b, nil))

	// Released blocks stay cached for the next prompt with that prefix.
	d.Release(1, 2)
	st := d.Stats()
	if st.Used != 0 || st.Sequences != 0 || st.Cached == 0 {
		t.Fatalf("after release: %+v, want nothing used, prefix blocks cached", st)
	}
	res, err = d.Step([]DecodeSeq{{ID: 3, Tokens: b}}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Reused[0] != 32 {
		t.Fatalf("after release reused %d positions, want 32", res.Reused[0])
	}
	sameLogits(t, "cached blocks vs computed alone", res.Logits[0], wantB)
	// A prompt that is exactly the prefix keeps its last token to compute.
	res, err = d.Step([]DecodeSeq{{ID: 4, Tokens: shared[:32]}}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Reused[0] != 16 {
		t.Fatalf("a prompt of two whole blocks reused %d positions, want 16", res.Reused[0])
	}
	closeLogits(t, "whole-block prompt", res.Logits[0], refLogits(m, shared[:32], nil))
}

// sameLogits checks two float32 computations of the same logits: equal up
// to the rounding of a different GEMM path (few rows stream the weights,
// many rows go through the packed Sgemm), 1e-5 relative.
func sameLogits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for j, v := range got {
		if math.Abs(float64(v-want[j])) > 1e-5*(1+math.Abs(float64(want[j]))) {
			t.Fatalf("%s: logit %d = %v, want %v", what, j, v, want[j])
		}
	}
}

func TestKVCacheFullAndRelease(t *testing.T) {
	cfg := Config{VocabSize: 17, NCtx: 64, NEmbd: 8, NLayer: 2, NHead: 2}
	m := New(cfg, PortableKernels(), 4)
	randomize(m, 10)
	d := NewDecoder(m, 3)
	r := rand.New(rand.NewPCG(7, 8))
	p1 := randTokens(r, 40, cfg.VocabSize) // 3 blocks
	if _, err := d.Step([]DecodeSeq{{ID: 1, Tokens: p1}}, nil, 0); err != nil {
		t.Fatal(err)
	}
	st := d.Stats()
	_, err := d.Step([]DecodeSeq{{ID: 1, Tokens: []int32{1}}, {ID: 2, Tokens: []int32{2, 3}}}, nil, 0)
	if !errors.Is(err, ErrKVCacheFull) {
		t.Fatalf("err = %v, want ErrKVCacheFull", err)
	}
	if got := d.Stats(); got != st || d.Len(1) != 40 || d.Len(2) != 0 {
		t.Fatalf("a failed step changed the cache: %+v -> %+v, lengths %d %d", st, got, d.Len(1), d.Len(2))
	}
	// The surviving sequence still decodes exactly.
	res, err := d.Step([]DecodeSeq{{ID: 1, Tokens: []int32{4}}}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeLogits(t, "after a full step", res.Logits[0], refLogits(m, append(p1, 4), nil))
	// Releasing inside the step makes room.
	res, err = d.Step([]DecodeSeq{{ID: 2, Tokens: []int32{2, 3}}}, []uint64{1, 77}, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeLogits(t, "after release", res.Logits[0], refLogits(m, []int32{2, 3}, nil))
	d.Release(2)
	if st := d.Stats(); st.Used != 0 || st.Sequences != 0 || st.Allocated != 3 {
		t.Fatalf("after releasing everything: %+v", st)
	}
}

func TestDecodeErrors(t *testing.T) {
	cfg := Config{VocabSize: 17, NCtx: 8, NEmbd: 8, NLayer: 2, NHead: 2}
	m := New(cfg, PortableKernels(), 4)
	d := NewDecoder(m, 16)
	if _, err := d.Step([]DecodeSeq{{ID: 1, Tokens: []int32{1, 2, 3, 4, 5, 6}}}, nil, 0); err != nil {
		t.Fatal(err)
	}
	for name, seqs := range map[string][]DecodeSeq{
		"none":              nil,
		"empty append":      {{ID: 1}},
		"token above vocab": {{ID: 2, Tokens: []int32{17}}},
		"negative token":    {{ID: 2, Tokens: []int32{-1}}},
		"duplicate id":      {{ID: 1, Tokens: []int32{1}}, {ID: 1, Tokens: []int32{2}}},
		"duplicate new id":  {{ID: 5, Tokens: []int32{1}}, {ID: 5, Tokens: []int32{2}}},
		"beyond n_ctx":      {{ID: 1, Tokens: []int32{1, 2, 3}}},
		"prompt over n_ctx": {{ID: 3, Tokens: make([]int32, 9)}},
		"step too long":     {{ID: 3, Tokens: make([]int32, MaxStepTokens+1)}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := d.Step(seqs, nil, 0)
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("err = %v, want ErrInvalidInput", err)
			}
			if d.Len(1) != 6 || d.Stats().Sequences != 1 {
				t.Fatalf("a bad step changed the cache: len %d, %+v", d.Len(1), d.Stats())
			}
		})
	}
	// A step that fails after a new sequence took shared prefix blocks
	// gives them back.
	long := Config{VocabSize: 17, NCtx: MaxStepTokens, NEmbd: 8, NLayer: 1, NHead: 2}
	ld := NewDecoder(New(long, PortableKernels(), 4), 1024)
	prompt := make([]int32, 40)
	if _, err := ld.Step([]DecodeSeq{{ID: 1, Tokens: prompt}}, nil, 0); err != nil {
		t.Fatal(err)
	}
	used := ld.Stats().Used
	other := make([]int32, MaxStepTokens)
	for i := range other {
		other[i] = 1
	}
	_, err := ld.Step([]DecodeSeq{{ID: 3, Tokens: other}, {ID: 2, Tokens: prompt}}, nil, 0)
	if !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("oversized step: err = %v", err)
	}
	if st := ld.Stats(); st.Used != used || st.Sequences != 1 {
		t.Fatalf("after a failed step with prefix reuse: %+v, want %d blocks used by 1 sequence", st, used)
	}
	checkCache(t, ld.cache)
	if _, err := d.Step([]DecodeSeq{{ID: 1, Tokens: []int32{1}}}, nil, -1); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("negative threshold: err = %v", err)
	}
}

// TestSlidingWindowFreesBlocks decodes far past n_ctx with rotary
// positions and a window: the cache holds the window and the global
// blocks, not the whole history.
func TestSlidingWindowFreesBlocks(t *testing.T) {
	cfg := Config{VocabSize: 19, NCtx: 16, NEmbd: 8, NLayer: 2, NHead: 2, Positions: PositionsRoPE, AttnWindow: 20, AttnGlobal: 3}
	m := New(cfg, PortableKernels(), 5)
	randomize(m, 11)
	d := NewDecoder(m, 8)
	r := rand.New(rand.NewPCG(9, 10))
	hist := randTokens(r, 10, cfg.VocabSize)
	if _, err := d.Step([]DecodeSeq{{ID: 1, Tokens: hist}}, nil, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		tok := randTokens(r, 1, cfg.VocabSize)
		hist = append(hist, tok...)
		res, err := d.Step([]DecodeSeq{{ID: 1, Tokens: tok}}, nil, 0)
		if err != nil {
			t.Fatalf("token %d: %v", len(hist), err)
		}
		// 1 global block + at most ceil(20/16)+1 window blocks.
		if u := d.Stats().Used; u > 4 {
			t.Fatalf("at %d positions the sequence holds %d blocks", len(hist), u)
		}
		if i%30 == 29 {
			closeLogits(t, "position "+itoa(len(hist)), res.Logits[0], refLogits(m, hist, nil))
		}
	}
}

func TestEarlyExit(t *testing.T) {
	cfg := Config{VocabSize: 23, NCtx: 48, NEmbd: 16, NLayer: 4, NHead: 2, Positions: PositionsRoPE, ExitLayers: []int{1, 2}}
	m := New(cfg, PortableKernels(), 6)
	randomize(m, 12)
	r := rand.New(rand.NewPCG(11, 12))
	prompts := [][]int32{randTokens(r, 7, cfg.VocabSize), randTokens(r, 19, cfg.VocabSize), randTokens(r, 2, cfg.VocabSize)}

	// Above 1 nothing exits: the full model.
	d := NewDecoder(m, 32)
	var seqs []DecodeSeq
	for i, p := range prompts {
		seqs = append(seqs, DecodeSeq{ID: uint64(i), Tokens: p})
	}
	res, err := d.Step(seqs, nil, 1.5)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range prompts {
		if res.ExitLayers[i] != cfg.NLayer {
			t.Fatalf("threshold 1.5: sequence %d ran %d layers", i, res.ExitLayers[i])
		}
		closeLogits(t, "threshold 1.5", res.Logits[i], refLogits(m, p, nil))
	}

	// Thresholds that let some tokens exit and not others: every decision
	// is checked against the exit heads of the reference, and the logits
	// against a reference that propagates exited states the same way.
	exitedAt := map[int]int{}
	for _, th := range []float32{0.12, 0.25, 0.5} {
		d := NewDecoder(m, 32)
		hist := make([][]int32, len(prompts))
		ran := make([][]int, len(prompts))
		next := make([][]int32, len(prompts))
		for i, p := range prompts {
			hist[i] = append([]int32(nil), p...)
			next[i] = p
			for range p {
				ran[i] = append(ran[i], cfg.NLayer)
			}
		}
		for step := range 10 {
			var seqs []DecodeSeq
			for i := range prompts {
				seqs = append(seqs, DecodeSeq{ID: uint64(i), Tokens: next[i]})
			}
			res, err := d.Step(seqs, nil, th)
			if err != nil {
				t.Fatal(err)
			}
			for i := range prompts {
				e := res.ExitLayers[i]
				exitedAt[e]++
				// The decision: the first exit layer whose head passes.
				wantE := cfg.NLayer
				for _, l := range cfg.ExitLayers {
					ranTry := append(append([]int(nil), ran[i][:len(ran[i])-1]...), l)
					if topProb64(refLogits(m, hist[i], ranTry)) >= float64(th) {
						wantE = l
						break
					}
				}
				if e != wantE {
					t.Fatalf("threshold %v step %d seq %d: exited after %d layers, reference says %d", th, step, i, e, wantE)
				}
				ran[i][len(ran[i])-1] = e
				closeLogits(t, "early exit", res.Logits[i], refLogits(m, hist[i], ran[i]))
				tok := int32(r.IntN(cfg.VocabSize))
				next[i] = []int32{tok}
				hist[i] = append(hist[i], tok)
				ran[i] = append(ran[i], cfg.NLayer)
			}
		}
	}
	if exitedAt[1] == 0 || exitedAt[2] == 0 || exitedAt[cfg.NLayer] == 0 {
		t.Fatalf("exit layers seen %v: the thresholds do not exercise every outcome", exitedAt)
	}
}

func topProb64(row []float64) float64 {
	mx := math.Inf(-1)
	for _, v := range row {
		mx = math.Max(mx, v)
	}
	var s float64
	for _, v := range row {
		s += math.Exp(v - mx)
	}
	return 1 / s
}

func TestDecodeStepDoesNotAllocate(t *testing.T) {
	cfg := Config{VocabSize: 64, NCtx: 128, NEmbd: 32, NLayer: 2, NHead: 4, ExitLayers: []int{1}}
	m := New(cfg, PortableKernels(), 7)
	d := NewDecoder(m, 64)
	seqs := make([]DecodeSeq, 4)
	ids := []uint64{0, 1, 2, 3}
	prefill := func() {
		d.Release(ids...)
		for i := range seqs {
			seqs[i] = DecodeSeq{ID: uint64(i), Tokens: []int32{1, 2, 3, int32(i)}}
		}
		if _, err := d.Step(seqs, nil, 0); err != nil {
			t.Fatal(err)
		}
		for i := range seqs {
			seqs[i].Tokens = []int32{5}
		}
	}
	// A first round grows the buffers and the cache's memory.
	prefill()
	for range 51 {
		if _, err := d.Step(seqs, nil, 0.9); err != nil {
			t.Fatal(err)
		}
	}
	prefill()
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := d.Step(seqs, nil, 0.9); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a steady-state decode step allocates %v times", allocs)
	}
}
