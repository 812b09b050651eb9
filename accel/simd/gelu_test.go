package simd

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGeluTanh checks GeluTanh against float64 at every level, on lengths
// around the 16-element blocks and on values from tiny to beyond the exp
// clamp. Tolerance: 1e-5·|want| + 1e-6·|x|, plus 1e-30.
func TestGeluTanh(t *testing.T) {
	for name, kn := range levels(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 9))
			for _, n := range []int{0, 1, 15, 16, 17, 33, 100, 1024} {
				x := make([]float32, n)
				for i := range x {
					x[i] = float32(r.NormFloat64() * []float64{1e-4, 0.5, 3, 30, 200}[r.IntN(5)])
				}
				x0 := append([]float32(nil), x...)
				kn.GeluTanh(x)
				for i, v := range x0 {
					xv := float64(v)
					u := math.Sqrt(2/math.Pi) * (xv + 0.044715*xv*xv*xv)
					want := 0.5 * xv * (1 + math.Tanh(u))
					if xv < 0 {
						want = xv / (1 + math.Exp(-2*u)) // no cancellation
					}
					if math.Abs(float64(x[i])-want) > 1e-5*math.Abs(want)+1e-6*math.Abs(xv)+1e-30 {
						t.Fatalf("n=%d: GeluTanh(%g) = %g, want %g", n, v, x[i], want)
					}
				}
			}
		})
	}
}
