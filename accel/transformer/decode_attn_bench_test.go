package transformer

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/llmesh/llmesh/accel/simd"
)

// BenchmarkDecodeServe is greedy decoding in the shape `llmesh bench
// serve` asks of the backend: 32 prompt tokens, then 64 generated tokens
// one step at a time, for batch 1 and 32 on the reference config with the
// SIMD kernels.
func BenchmarkDecodeServe(b *testing.B) {
	const prompt, gen = 32, 64
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			m := New(benchConfig, simd.Must(), 1)
			d := NewDecoder(m, batch*(benchConfig.NCtx/KVBlockTokens))
			r := rand.New(rand.NewPCG(1, 2))
			seqs := make([]DecodeSeq, batch)
			ids := make([]uint64, batch)
			next := make([][1]int32, batch)
			cpu0 := cpuTime()
			for b.Loop() {
				for i := range seqs {
					ids[i] = uint64(i)
					seqs[i] = DecodeSeq{ID: uint64(i), Tokens: randTokens(r, prompt, benchConfig.VocabSize)}
				}
				d.Release(ids...)
				for range gen {
					res, err := d.Step(seqs, nil, 0)
					if err != nil {
						b.Fatal(err)
					}
					for i, row := range res.Logits {
						next[i][0] = int32(argmax(row))
						seqs[i].Tokens = next[i][:]
					}
				}
			}
			tokens := float64(b.N * batch * gen)
			b.ReportMetric(tokens/b.Elapsed().Seconds(), "tokens/s")
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(tokens/cpu.Seconds(), "tokens/cpu-s")
			}
		})
	}
}

func argmax(row []float32) int {
	best := 0
	for v, x := range row {
		if x > row[best] {
			best = v
		}
	}
	return best
}
