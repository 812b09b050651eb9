package transformer

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkDecodeServe is greedy decoding in the shape `llmesh bench
// serve` asks of the backend: 32 prompt tokens, then 64 generated tokens
// one step at a time, for batch 1 and 32 on the reference config, the SIMD
// kernels beside the portable ones.
func BenchmarkDecodeServe(b *testing.B) {
	for _, kn := range []string{"portable", "simd"} {
		for _, batch := range []int{1, 32} {
			b.Run(fmt.Sprintf("kernels=%s/batch=%d", kn, batch), func(b *testing.B) {
				benchGreedy(b, benchKernels[kn](), batch, 32, 64)
			})
		}
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

// BenchmarkDecodeAttention times the attention of one decode step alone,
// on the calling goroutine: 32 sequences at position 95 (after a 32-token
// prompt and 63 decoded tokens, the last step of BenchmarkDecodeServe),
// every layer and head over the paged cache, the portable kernels beside
// the SIMD ones. keys/s (keys/cpu-s: per second of the process's CPU
// time) counts (row, head, layer, cached position)
// products per second.
func BenchmarkDecodeAttention(b *testing.B) {
	for _, kn := range []string{"portable", "simd"} {
		b.Run("kernels="+kn, func(b *testing.B) {
			const batch, prompt, gen = 32, 32, 64
			m := New(benchConfig, benchKernels[kn](), 1)
			d := NewDecoder(m, batch*(benchConfig.NCtx/KVBlockTokens))
			r := rand.New(rand.NewPCG(1, 2))
			seqs := make([]DecodeSeq, batch)
			for i := range seqs {
				seqs[i] = DecodeSeq{ID: uint64(i), Tokens: randTokens(r, prompt, benchConfig.VocabSize)}
			}
			for range gen {
				if _, err := d.Step(seqs, nil, 0); err != nil {
					b.Fatal(err)
				}
				for i := range seqs {
					seqs[i].Tokens = randTokens(r, 1, benchConfig.VocabSize)
				}
			}
			// The last step's rows are still planned: run its attention
			// again (storing the same keys and values again, if fused).
			n := d.active * benchConfig.NHead
			cpu0 := cpuTime()
			for b.Loop() {
				for l := range benchConfig.NLayer {
					d.tAttn.layer, d.tAttn.n = l, n // stream and store: as the step left them
					for i := range n {
						d.tAttn.Run(i)
					}
				}
			}
			keys := float64(b.N) * float64(n*benchConfig.NLayer*(prompt+gen-1))
			b.ReportMetric(keys/b.Elapsed().Seconds(), "keys/s")
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(keys/cpu.Seconds(), "keys/cpu-s")
			}
		})
	}
}
