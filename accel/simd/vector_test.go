package simd

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestVectors checks Dot, Axpy and Scale against float64 on lengths
// around the block sizes. Tolerances: Dot 1e-6·Σ|x·y| + 1e-6; Axpy and
// Scale are one rounding per element (|Δ| ≤ 2⁻²³·|want| + 1e-7).
func TestVectors(t *testing.T) {
	lengths := []int{0, 1, 7, 31, 32, 33, 63, 64, 65, 127, 128, 129, 257, 1000}
	for name, kn := range levels(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(11, 0))
			for _, n := range lengths {
				x, y := randF32(r, n), randF32(r, n)
				var want, mag float64
				for i := range x {
					want += float64(x[i]) * float64(y[i])
					mag += math.Abs(float64(x[i]) * float64(y[i]))
				}
				if got := kn.Dot(x, y); math.Abs(float64(got)-want) > 1e-6*mag+1e-6 {
					t.Fatalf("Dot n=%d = %g, want %g", n, got, want)
				}
				y0 := append([]float32(nil), y...)
				kn.Axpy(-1.25, x, y)
				for i := range y {
					w := float64(y0[i]) - 1.25*float64(x[i])
					if math.Abs(float64(y[i])-w) > 0x1p-23*math.Abs(w)+1e-7 {
						t.Fatalf("Axpy n=%d: y[%d] = %g, want %g", n, i, y[i], w)
					}
				}
				x0 := append([]float32(nil), x...)
				kn.Scale(3, x)
				for i := range x {
					if w := 3 * float64(x0[i]); math.Abs(float64(x[i])-w) > 0x1p-23*math.Abs(w)+1e-7 {
						t.Fatalf("Scale n=%d: x[%d] = %g, want %g", n, i, x[i], w)
					}
				}
			}
		})
	}
}
