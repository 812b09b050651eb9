package transformer

import (
	"math/rand/v2"
	"testing"
)

// Steps of more than gemvMaxRows rows go through the kernels' GEMM, with
// the weights packed once (PackedKernels) on the simd kernels: every
// dispatch path must match the float64 recomputation, also after the
// weights change and the decoder is Reset (no stale packed copy).
func TestDecodeManyRowsEveryKernelPath(t *testing.T) {
	cfg := Config{VocabSize: 97, NCtx: 48, NEmbd: 32, NLayer: 2, NHead: 4}
	for name, k := range testKernels() {
		t.Run(name, func(t *testing.T) {
			m := New(cfg, k, 1)
			randomize(m, 9)
			d := NewDecoder(m, 256)
			r := rand.New(rand.NewPCG(7, 8))
			hist := map[uint64][]int32{}
			step := func(seqs []DecodeSeq) {
				t.Helper()
				res, err := d.Step(seqs, nil, 0)
				if err != nil {
					t.Fatal(err)
				}
				for i, sq := range seqs {
					closeLogits(t, name+" id "+itoa(int(sq.ID)), res.Logits[i], refLogits(m, hist[sq.ID], nil))
				}
			}
			var seqs []DecodeSeq
			for id := range uint64(20) { // 20 prefills of 3..21 tokens: one step of 240 rows
				toks := randTokens(r, 3+int(id), cfg.VocabSize)
				hist[id] = toks
				seqs = append(seqs, DecodeSeq{ID: id, Tokens: toks})
			}
			step(seqs)
			for range 3 { // 20 single-token decodes: steps of 20 rows
				for i := range seqs {
					tok := randTokens(r, 1, cfg.VocabSize)
					hist[seqs[i].ID] = append(hist[seqs[i].ID], tok...)
					seqs[i].Tokens = tok
				}
				step(seqs)
			}
			// New weights: the packed copies must go with the cache.
			randomize(m, 10)
			d.Reset()
			for i := range seqs {
				seqs[i].Tokens = hist[seqs[i].ID]
			}
			step(seqs)
		})
	}
}
