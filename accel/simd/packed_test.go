package simd

import (
	"math"
	"math/rand/v2"
	"testing"
)

// SgemmPacked gives Sgemm's result, bit for bit (the same panels in the
// same order), and the float64 reference's within Sgemm's tolerance.
func TestSgemmPacked(t *testing.T) {
	cases := []gemmCase{
		{m: 1, n: 1, k: 1, alpha: 1},
		{m: 7, n: 63, k: 257, alpha: 1},
		{transB: true, m: 33, n: 768, k: 256, alpha: 1, beta: 1},
		{transA: true, m: 17, n: 1030, k: 600, pad: 3, alpha: 0.5, beta: 0.25}, // several slabs and column blocks
		{transB: true, m: 64, n: 4096, k: 256, alpha: 1},                       // a vocabulary head
		{m: 5, n: 9, k: 0, alpha: 1, beta: 2},
	}
	for name, kn := range levels(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, uint64(kn.level)))
			for _, tc := range cases {
				ra, ca, rb, cb := tc.dims()
				lda, ldb, ldc := ca+tc.pad, cb+tc.pad, tc.n+tc.pad
				a, b := randF32(r, max(ra*lda, 1)), randF32(r, max(rb*ldb, 1))
				c0 := randF32(r, max(tc.m*ldc, 1))
				want := refGemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, float64(tc.alpha), func(i int) float64 { return float64(a[i]) }, lda, func(i int) float64 { return float64(b[i]) }, ldb, float64(tc.beta), c0, ldc)
				plain := append([]float32(nil), c0...)
				kn.Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, plain, ldc)
				pb := kn.PackB(tc.transB, tc.k, tc.n, b, ldb)
				if pb.K() != tc.k || pb.N() != tc.n {
					t.Fatalf("%v: packed %d×%d", tc, pb.K(), pb.N())
				}
				for range 2 { // the packed B is reused unchanged
					got := append([]float32(nil), c0...)
					kn.SgemmPacked(tc.transA, tc.m, tc.alpha, a, lda, pb, tc.beta, got, ldc)
					for i := range tc.m {
						for j := range ldc {
							x := i*ldc + j
							if j >= tc.n {
								if got[x] != c0[x] {
									t.Fatalf("%v: C[%d,%d] outside n changed", tc, i, j)
								}
								continue
							}
							if math.Float32bits(got[x]) != math.Float32bits(plain[x]) {
								t.Fatalf("%v: C[%d,%d] = %g packed, %g from Sgemm", tc, i, j, got[x], plain[x])
							}
							tol := 2e-6*(float64(tc.k)*math.Abs(float64(tc.alpha))+math.Abs(float64(tc.beta))) + 1e-6
							if d := math.Abs(float64(got[x]) - want[x]); !(d <= tol) {
								t.Fatalf("%v: C[%d,%d] = %g, want %g", tc, i, j, got[x], want[x])
							}
						}
					}
				}
			}
		})
	}
}

func TestSgemmPackedOtherGeometry(t *testing.T) {
	if Detect() < AVX2 {
		t.Skip("one kernel level only")
	}
	g, _ := New(WithLevel(Generic))
	best := Must()
	pb := g.PackB(false, 8, 8, make([]float32, 64), 8)
	defer func() {
		if recover() == nil {
			t.Error("B packed by the generic kernels was accepted by the " + best.Level().String() + " ones")
		}
	}()
	best.SgemmPacked(false, 8, 1, make([]float32, 64), 8, pb, 0, make([]float32, 64), 8)
}
