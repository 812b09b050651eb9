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

func BenchmarkLowPrecision(b *testing.B) {
	const n = 1024
	for _, th := range []int{1, 2} {
		kn, err := New(WithThreads(th))
		if err != nil {
			b.Fatal(err)
		}
		b.Log(kn.Describe())
		a8 := make([]int8, n*n)
		h := make([]uint16, n*n)
		for i := range a8 {
			a8[i] = int8(i%13 - 6)
			h[i] = 0x3f80
		}
		c := make([]float32, n*n)
		b.Run(fmt.Sprintf("int8/t=%d", th), func(b *testing.B) {
			for b.Loop() {
				kn.GemmInt8(true, n, n, n, a8, n, []float32{1}, a8, n, []float32{1}, c, n)
			}
			b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
		})
		b.Run(fmt.Sprintf("bf16/t=%d", th), func(b *testing.B) {
			for b.Loop() {
				kn.GemmBF16(false, false, n, n, n, 1, h, n, h, n, 0, c, n)
			}
			b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkInt8Decode: a few rows of activations over 4096×4096 weights,
// packing B on every call (GemmInt8) or once (GemmInt8Packed).
func BenchmarkInt8Decode(b *testing.B) {
	const m, n, k = 8, 4096, 4096
	kn := Must()
	a, w := make([]int8, m*k), make([]int8, n*k)
	c := make([]float32, m*n)
	one := []float32{1}
	b.Run("GemmInt8", func(b *testing.B) {
		for b.Loop() {
			kn.GemmInt8(true, m, n, k, a, k, one, w, k, one, c, n)
		}
		b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
	})
	pw := kn.PackInt8(true, n, k, w, k, one)
	b.Run("GemmInt8Packed", func(b *testing.B) {
		for b.Loop() {
			kn.GemmInt8Packed(m, a, k, one, pw, c, n)
		}
		b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
	})
}
