package transformer

import (
	"fmt"
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
