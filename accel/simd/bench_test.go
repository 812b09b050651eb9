package simd

import (
	"fmt"
	"testing"
)

func BenchmarkSgemm(b *testing.B) {
	for _, n := range []int{256, 512, 1024} {
		for _, th := range []int{1, 2} {
			kn, err := New(WithThreads(th))
			if err != nil {
				b.Fatal(err)
			}
			x := make([]float32, n*n)
			for i := range x {
				x[i] = float32(i%7) - 3
			}
			c := make([]float32, n*n)
			b.Run(fmt.Sprintf("n=%d/t=%d", n, th), func(b *testing.B) {
				for b.Loop() {
					kn.Sgemm(false, false, n, n, n, 1, x, n, x, n, 0, c, n)
				}
				b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
