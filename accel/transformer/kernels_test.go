package transformer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/llmesh/llmesh/accel/simd"
)

func refGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			v := float64(alpha) * s
			if beta != 0 {
				v += float64(beta) * float64(c[i*ldc+j])
			}
			out[i*n+j] = v
		}
	}
	return out
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// TestSgemm checks every transpose combination, with and without alpha and
// beta and padded leading dimensions, against a float64 reference. The
// tolerance is 1e-5·(k+1) relative to the largest |entry| of the result
// scale sqrt(k), float32 rounding over k products.
func TestSgemm(t *testing.T) {
	k := PortableKernels()
	shapes := [][3]int{{1, 1, 1}, {7, 13, 5}, {33, 65, 17}, {130, 3, 257}, {64, 256, 256}, {65, 257, 513}, {3, 300, 2}}
	r := rand.New(rand.NewPCG(1, 2))
	for _, sh := range shapes {
		m, n, kk := sh[0], sh[1], sh[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {-1.5, 0.25}} {
					name := fmt.Sprintf("%dx%dx%d/ta=%v/tb=%v/alpha=%v/beta=%v", m, n, kk, ta, tb, ab[0], ab[1])
					t.Run(name, func(t *testing.T) {
						pad := 3
						ar, ac := m, kk
						if ta {
							ar, ac = kk, m
						}
						br, bc := kk, n
						if tb {
							br, bc = n, kk
						}
						lda, ldb, ldc := ac+pad, bc+pad, n+pad
						a := randSlice(r, ar*lda)
						b := randSlice(r, br*ldb)
						c := randSlice(r, m*ldc)
						if ab[1] == 0 {
							for i := range c {
								c[i] = float32(math.NaN()) // beta 0 must not read C
							}
						}
						want := refGemm(ta, tb, m, n, kk, ab[0], a, lda, b, ldb, ab[1], c, ldc)
						k.Sgemm(ta, tb, m, n, kk, ab[0], a, lda, b, ldb, ab[1], c, ldc)
						tol := 1e-5 * float64(kk+1)
						for i := range m {
							for j := range n {
								got := float64(c[i*ldc+j])
								if d := math.Abs(got - want[i*n+j]); !(d <= tol*math.Max(1, math.Abs(want[i*n+j]))) {
									t.Fatalf("c[%d,%d] = %v, want %v (tolerance %v)", i, j, got, want[i*n+j], tol)
								}
							}
						}
					})
				}
			}
		}
	}
}

func BenchmarkSgemm(b *testing.B) {
	k := PortableKernels()
	for _, n := range []int{128, 256, 512, 1024} {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}} {
			b.Run(fmt.Sprintf("n=%d/ta=%v/tb=%v", n, tr[0], tr[1]), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 2))
				a, bb, c := randSlice(r, n*n), randSlice(r, n*n), make([]float32, n*n)
				b.ResetTimer()
				for b.Loop() {
					k.Sgemm(tr[0], tr[1], n, n, n, 1, a, n, bb, n, 0, c, n)
				}
				b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// testKernels lists the kernel dispatch paths the tests force, by name:
// the portable kernels and every accel/simd level this machine runs.
func testKernels() map[string]Kernels {
	ks := map[string]Kernels{"portable": PortableKernels()}
	for _, l := range []simd.Level{simd.Generic, simd.AVX2, simd.AVX512, simd.AMX} {
		if k, err := simd.New(simd.WithLevel(l)); err == nil {
			ks["simd-"+l.String()] = k
		}
	}
	return ks
}
