package transformer

import (
	"math/rand/v2"
	"testing"

	"github.com/llmesh/llmesh/accel/simd"
)

// The attention's block kernels (RowKernels: DotRows and AxpyRows in
// assembly when the head size is a multiple of 16) and the vector exps of
// the attention and the MLP activation, on the portable and the best simd
// kernels: sequences that cross several KV blocks, with partial blocks at
// both ends under a sliding window, a mix of prefills and decodes in one
// step (the pool's short hand-off), then one sequence decoding alone (the
// single-row products on RowKernels); every step's logits against the
// float64 recomputation.
func TestDecodeAttentionBlocks(t *testing.T) {
	base := Config{VocabSize: 53, NCtx: 80, NEmbd: 64, NLayer: 2, NHead: 2} // head size 32
	with := func(f func(*Config)) Config { c := base; f(&c); return c.withDefaults() }
	configs := map[string]Config{
		"learned/gelu":          with(func(c *Config) {}),
		"rope/swiglu/head16":    with(func(c *Config) { c.Positions, c.MLP, c.NHead = PositionsRoPE, MLPSwiGLU, 4 }),
		"learned/window":        with(func(c *Config) { c.AttnWindow = 21 }),
		"rope/window+global":    with(func(c *Config) { c.Positions, c.AttnWindow, c.AttnGlobal = PositionsRoPE, 23, 18 }),
		"learned/odd-head-size": with(func(c *Config) { c.NEmbd, c.NHead = 60, 3 }), // head size 20: the Go loops
	}
	for cname, cfg := range configs {
		for kname, k := range map[string]Kernels{"portable": PortableKernels(), "simd": simd.Must()} {
			t.Run(cname+"/"+kname, func(t *testing.T) {
				m := New(cfg, k, 1)
				randomize(m, 21)
				d := NewDecoder(m, 64)
				r := rand.New(rand.NewPCG(5, 6))
				hist := map[uint64][]int32{}
				check := func(step int, seqs []DecodeSeq) {
					t.Helper()
					res, err := d.Step(seqs, nil, 0)
					if err != nil {
						t.Fatalf("step %d: %v", step, err)
					}
					for i, sq := range seqs {
						closeLogits(t, "step "+itoa(step)+" id "+itoa(int(sq.ID)), res.Logits[i], refLogits(m, hist[sq.ID], nil))
					}
				}
				var seqs []DecodeSeq
				for id, n := range []int{37, 1, 16, 17} { // a prefill across three blocks, one of a token, one block, one past it
					toks := randTokens(r, n, cfg.VocabSize)
					hist[uint64(id)] = toks
					seqs = append(seqs, DecodeSeq{ID: uint64(id), Tokens: toks})
				}
				check(0, seqs)
				for step := 1; step <= 8; step++ {
					for i := range seqs {
						toks := randTokens(r, 1+(step%4)/3*3, cfg.VocabSize) // now and then 4 tokens at once
						hist[seqs[i].ID] = append(hist[seqs[i].ID], toks...)
						seqs[i].Tokens = toks
					}
					check(step, seqs)
				}
				for step := 9; step <= 11; step++ { // one sequence alone: single-row products
					toks := randTokens(r, 1, cfg.VocabSize)
					hist[2] = append(hist[2], toks...)
					check(step, []DecodeSeq{{ID: 2, Tokens: toks}})
				}
			})
		}
	}
}

// A decode step whose attention streams more than attnStreamBytes of KV
// cache runs on the whole pool, each (row, head) piece storing its own key
// and value first (one row per sequence): 32 sequences past 80 positions,
// with a head size (16) that is one vector and a partial last block, every
// step's logits (of a sample of the sequences) against the float64
// recomputation on every kernel set.
func TestDecodeAttentionStreaming(t *testing.T) {
	cfg := Config{VocabSize: 53, NCtx: 96, NEmbd: 64, NLayer: 1, NHead: 4}.withDefaults()
	const batch = 32
	for name, k := range testKernels() {
		t.Run(name, func(t *testing.T) {
			m := New(cfg, k, 1)
			randomize(m, 5)
			d := NewDecoder(m, batch*cfg.NCtx/KVBlockTokens)
			r := rand.New(rand.NewPCG(3, 4))
			hist := map[uint64][]int32{}
			seqs := make([]DecodeSeq, batch)
			for i := range seqs {
				toks := randTokens(r, 79, cfg.VocabSize)
				hist[uint64(i)] = toks
				seqs[i] = DecodeSeq{ID: uint64(i), Tokens: toks}
			}
			for step := range 3 {
				if step > 0 {
					for i := range seqs {
						toks := randTokens(r, 1, cfg.VocabSize)
						hist[uint64(i)] = append(hist[uint64(i)], toks...)
						seqs[i].Tokens = toks
					}
				}
				res, err := d.Step(seqs, nil, 0)
				if err != nil {
					t.Fatal(err)
				}
				if step > 0 && 8*d.active*d.maxKeys*cfg.NEmbd < attnStreamBytes {
					t.Fatalf("step %d streams %d bytes, under attnStreamBytes: the test no longer covers the pool path", step, 8*d.active*d.maxKeys*cfg.NEmbd)
				}
				for i := step % 5; i < batch; i += 5 { // a sample: the reference is slow
					closeLogits(t, name+" step "+itoa(step)+" id "+itoa(i), res.Logits[i], refLogits(m, hist[uint64(i)], nil))
				}
			}
		})
	}
}
