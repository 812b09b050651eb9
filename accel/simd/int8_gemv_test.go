package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestGemvInt8Packed checks the few-row INT8 kernels against a float64
// reference on odd shapes: every row count up to GemvMaxRows and past it,
// inner sizes that are not multiples of four, partial last panels, strides
// wider than the rows, both weight layouts, one or per-row scales,
// overwriting and accumulating, one and two threads (with work large
// enough to split). The integer sums are exact, so the bound is the
// float32 scaling: 1e-6 relative to Σ|terms|.
func TestGemvInt8Packed(t *testing.T) {
	for name, kn := range levels(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(41, 2))
			shapes := [][2]int{{1, 1}, {5, 3}, {32, 4}, {70, 133}, {128, 256}, {129, 64}, {1000, 1030}}
			for _, sh := range shapes {
				n, k := sh[0], sh[1]
				for _, tB := range []bool{false, true} {
					ldb := n + 3
					if tB {
						ldb = k + 3
					}
					b := make([]int8, max(n, k)*ldb)
					for i := range b {
						b[i] = int8(r.IntN(255) - 127)
					}
					bs := randF32(r, n)
					w := kn.PackInt8(tB, n, k, b, ldb, bs)
					for _, m := range []int{1, 2, 3, 4, 5, 8, 13, 16, 17} {
						if n*k > 100000 && m > 2 && m != 8 {
							continue
						}
						for _, acc := range []bool{false, true} {
							lda, ldc := k+5, n+2
							a := make([]int8, m*lda)
							for i := range a {
								a[i] = int8(r.IntN(255) - 127)
							}
							as := randF32(r, m)
							if m == 3 {
								as = as[:1]
							}
							c := randF32(r, m*ldc)
							before := append([]float32(nil), c...)
							kn.GemvInt8Packed(m, a, lda, as, w, c, ldc, acc)
							what := fmt.Sprintf("n=%d k=%d transB=%v m=%d acc=%v", n, k, tB, m, acc)
							for i := range m {
								s := float64(as[0])
								if len(as) > 1 {
									s = float64(as[i])
								}
								for jj := range ldc {
									got := c[i*ldc+jj]
									if jj >= n {
										if got != before[i*ldc+jj] {
											t.Fatalf("%s: C[%d,%d] past n changed", what, i, jj)
										}
										continue
									}
									var sum, mag float64
									for p := range k {
										bv := b[p*ldb+jj]
										if tB {
											bv = b[jj*ldb+p]
										}
										v := float64(a[i*lda+p]) * float64(bv)
										sum += v
										mag += math.Abs(v)
									}
									want := s * float64(bs[jj]) * sum
									tol := 1e-6 * math.Abs(s*float64(bs[jj])) * mag
									if acc {
										want += float64(before[i*ldc+jj])
										tol += 1e-6 * math.Abs(want)
									}
									if d := math.Abs(float64(got) - want); d > tol+1e-30 {
										t.Fatalf("%s: C[%d,%d] = %v, want %v (|diff| %.3g > %.3g)", what, i, jj, got, want, d, tol)
									}
								}
							}
						}
					}
				}
			}
		})
	}
}

func TestGemvInt8PackedBadInput(t *testing.T) {
	kn := Must()
	w := kn.PackInt8(false, 8, 8, make([]int8, 64), 8, []float32{1})
	for name, f := range map[string]func(){
		"short a": func() { kn.GemvInt8Packed(2, make([]int8, 9), 8, []float32{1}, w, make([]float32, 16), 8, false) },
		"short c": func() { kn.GemvInt8Packed(2, make([]int8, 16), 8, []float32{1}, w, make([]float32, 9), 8, false) },
		"scales":  func() { kn.GemvInt8Packed(3, make([]int8, 24), 8, []float32{1, 2}, w, make([]float32, 24), 8, false) },
		"other mode": func() {
			Must(withAMXGo()).GemvInt8Packed(1, make([]int8, 8), 8, []float32{1}, w, make([]float32, 8), 8, false)
		},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "other mode" && kn.int8 == int8Go {
				t.Skip("weights packed without VNNI serve every kernel")
			}
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		})
	}
}

// BenchmarkGemvInt8 compares one row of INT8 (GemvInt8Packed) with the
// same product in float32 as the decoder runs it (Dot per output over
// transposed weights), and with GemmInt8Packed's 14-row tile, on the
// reference decoding model's matrices.
func BenchmarkGemvInt8(b *testing.B) {
	kn := Must(WithThreads(1))
	r := rand.New(rand.NewPCG(1, 1))
	for _, sh := range [][2]int{{256, 768}, {256, 1024}, {1024, 256}, {256, 4096}} {
		k, n := sh[0], sh[1]
		w8 := make([]int8, n*k)
		for i := range w8 {
			w8[i] = int8(r.IntN(255) - 127)
		}
		w := kn.PackInt8(true, n, k, w8, k, randF32(r, n))
		wf := randF32(r, n*k)
		for _, m := range []int{1, 8} {
			a := make([]int8, m*k)
			af := randF32(r, m*k)
			as := randF32(r, m)
			c := make([]float32, m*n)
			b.Run(fmt.Sprintf("k=%d/n=%d/m=%d/int8-gemv", k, n, m), func(b *testing.B) {
				for b.Loop() {
					kn.GemvInt8Packed(m, a, k, as, w, c, n, true)
				}
				b.ReportMetric(float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
			})
			b.Run(fmt.Sprintf("k=%d/n=%d/m=%d/int8-gemm", k, n, m), func(b *testing.B) {
				for b.Loop() {
					kn.GemmInt8Packed(m, a, k, as, w, c, n)
				}
				b.ReportMetric(float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
			})
			b.Run(fmt.Sprintf("k=%d/n=%d/m=%d/f32-dot", k, n, m), func(b *testing.B) {
				for b.Loop() {
					for o := range n {
						for i := range m {
							c[i*n+o] += kn.Dot(af[i*k:(i+1)*k], wf[o*k:(o+1)*k])
						}
					}
				}
				b.ReportMetric(float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
			})
		}
	}
}

// TestQuantizeInt8 checks MaxAbs and QuantizeInt8 (vector blocks and the
// scalar tail) against float64 references on every length up to 100:
// values beyond the clamp, exact halves (to even) and negative zero.
func TestQuantizeInt8(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := range 101 {
		x := make([]float32, n)
		for i := range x {
			switch r.IntN(4) {
			case 0:
				x[i] = float32(r.IntN(301)-150) + 0.5 // halves, some past ±127
			case 1:
				x[i] = float32(math.Copysign(0, -1))
			default:
				x[i] = float32(r.NormFloat64() * 60)
			}
		}
		want := 0.0
		for _, v := range x {
			want = math.Max(want, math.Abs(float64(v)))
		}
		if got := MaxAbs(x); float64(got) != want {
			t.Fatalf("n=%d: MaxAbs = %v, want %v", n, got, want)
		}
		for _, inv := range []float32{1, 0.37, 2.5} {
			q := make([]int8, n+1)
			q[n] = 99
			QuantizeInt8(q, x, inv)
			for i, v := range x {
				f := float64(v * inv)
				w := int8(math.RoundToEven(math.Max(-127, math.Min(127, f))))
				if q[i] != w {
					t.Fatalf("n=%d inv=%v: q[%d] = %d for %v, want %d", n, inv, i, q[i], v, w)
				}
			}
			if q[n] != 99 {
				t.Fatalf("n=%d: QuantizeInt8 wrote past its source", n)
			}
		}
	}
}
