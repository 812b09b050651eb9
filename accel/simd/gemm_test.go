package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// levels returns kernels for every level this machine runs, on one and
// on two threads.
func levels(t testing.TB) map[string]*Kernels {
	t.Helper()
	ks := map[string]*Kernels{}
	for l := Generic; l <= Detect(); l++ {
		if l == AMX {
			continue // no AMX kernels yet: New refuses it (TestAMXFallback)
		}
		for _, th := range []int{1, 2} {
			k, err := New(WithLevel(l), WithThreads(th))
			if err != nil {
				t.Fatalf("New(%s): %v", l, err)
			}
			ks[fmt.Sprintf("%s/t%d", l, th)] = k
		}
	}
	return ks
}

func randF32(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.Float64()*2 - 1)
	}
	return x
}

// refGemm is C = alpha·op(A)·op(B) + beta·C in float64.
func refGemm(transA, transB bool, m, n, k int, alpha float64, a func(i int) float64, lda int, b func(i int) float64, ldb int, beta float64, c []float32, ldc int) []float64 {
	out := make([]float64, len(c))
	for i := range c {
		out[i] = float64(c[i])
	}
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				ai := i*lda + p
				if transA {
					ai = p*lda + i
				}
				bi := p*ldb + j
				if transB {
					bi = j*ldb + p
				}
				s += a(ai) * b(bi)
			}
			v := alpha * s
			if beta != 0 {
				v += beta * float64(c[i*ldc+j])
			}
			out[i*ldc+j] = v
		}
	}
	return out
}

// guardRows rows after C's m rows are checked untouched.
const guardRows = 2

// gemmCase is one product's shape.
type gemmCase struct {
	transA, transB bool
	m, n, k        int
	pad            int // extra columns in every stride
	alpha, beta    float32
}

func (c gemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,m=%d,n=%d,k=%d,pad=%d,alpha=%g,beta=%g", c.transA, c.transB, c.m, c.n, c.k, c.pad, c.alpha, c.beta)
}

func (c gemmCase) dims() (ra, ca, rb, cb int) {
	ra, ca = c.m, c.k
	if c.transA {
		ra, ca = c.k, c.m
	}
	rb, cb = c.k, c.n
	if c.transB {
		rb, cb = c.n, c.k
	}
	return
}

// checkSgemm runs one case on k and compares with the float64 reference:
// |got − want| ≤ 1e-5·(Σ|a·b| + |beta·c|) + 1e-6, float32 rounding over
// k terms with a margin (float32 epsilon is 6e-8).
func checkSgemm(t *testing.T, kn *Kernels, r *rand.Rand, tc gemmCase) {
	t.Helper()
	ra, ca, rb, cb := tc.dims()
	lda, ldb, ldc := ca+tc.pad, cb+tc.pad, tc.n+tc.pad
	a := randF32(r, max(ra*lda, 1))
	b := randF32(r, max(rb*ldb, 1))
	c := randF32(r, max((tc.m+guardRows)*ldc, 1)) // rows past m must not change
	if tc.beta == 0 {
		for i := range c {
			c[i] = float32(math.NaN()) // beta 0 must not read C
		}
	}
	orig := append([]float32(nil), c...)
	want := refGemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, float64(tc.alpha), func(i int) float64 { return float64(a[i]) }, lda, func(i int) float64 { return float64(b[i]) }, ldb, float64(tc.beta), c, ldc)
	kn.Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
	for i := range tc.m + guardRows {
		for j := 0; j < ldc; j++ {
			x := i*ldc + j
			if j >= tc.n || i >= tc.m {
				if math.Float32bits(c[x]) != math.Float32bits(orig[x]) {
					t.Fatalf("%v: C[%d,%d] outside m×n changed: %g → %g", tc, i, j, orig[x], c[x])
				}
				continue
			}
			tol := 2e-6*(float64(tc.k)*math.Abs(float64(tc.alpha))+math.Abs(float64(tc.beta))) + 1e-6
			if d := math.Abs(float64(c[x]) - want[x]); !(d <= tol) {
				t.Fatalf("%v: C[%d,%d] = %g, want %g (diff %g > %g)", tc, i, j, c[x], want[x], d, tol)
			}
		}
	}
}

func TestSgemmOddShapes(t *testing.T) {
	sizes := []int{1, 7, 63, 257}
	if testing.Short() {
		sizes = []int{1, 7, 63}
	}
	for name, kn := range levels(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(kn.level)))
			for _, tA := range []bool{false, true} {
				for _, tB := range []bool{false, true} {
					for _, m := range sizes {
						for _, n := range sizes {
							for _, k := range sizes {
								if m*n*k > 257*257*63 && !(m == 257 && n == 257 && k == 257) {
									continue
								}
								checkSgemm(t, kn, r, gemmCase{transA: tA, transB: tB, m: m, n: n, k: k, pad: (m + n) % 3, alpha: 1})
							}
						}
					}
				}
			}
		})
	}
}

func TestSgemmAlphaBeta(t *testing.T) {
	cases := map[string]gemmCase{
		"accumulate":       {m: 33, n: 65, k: 300, alpha: 1, beta: 1},
		"scale both":       {transA: true, m: 45, n: 70, k: 513, pad: 5, alpha: -0.5, beta: 0.25},
		"alpha zero":       {m: 15, n: 33, k: 8, alpha: 0, beta: 2},
		"alpha zero beta0": {transB: true, m: 15, n: 33, k: 8, alpha: 0, beta: 0},
		"k zero":           {m: 9, n: 40, k: 0, alpha: 1, beta: 3},
		"empty":            {m: 0, n: 5, k: 5, alpha: 1},
		"big stride":       {transA: true, transB: true, m: 29, n: 97, k: 130, pad: 61, alpha: 2, beta: 1},
		"wide slab":        {m: 30, n: 2100, k: 20, alpha: 1, beta: 0.5},
	}
	for name, kn := range levels(t) {
		for cname, tc := range cases {
			t.Run(name+"/"+cname, func(t *testing.T) {
				checkSgemm(t, kn, rand.New(rand.NewPCG(2, 3)), tc)
			})
		}
	}
}

func TestSgemmShortBufferPanics(t *testing.T) {
	kn := Must()
	defer func() {
		if r := recover(); r == nil || fmt.Sprint(r) != "sgemm: b has 11 elements, needs 12" {
			t.Fatalf("panic = %v", r)
		}
	}()
	kn.Sgemm(false, false, 2, 3, 4, 1, make([]float32, 8), 4, make([]float32, 11), 3, 0, make([]float32, 6), 3)
}

func FuzzSgemmShapes(f *testing.F) {
	f.Add(uint8(7), uint8(9), uint16(13), uint8(0), uint8(1), int8(4), int8(0))
	f.Add(uint8(15), uint8(33), uint16(257), uint8(3), uint8(2), int8(-3), int8(2))
	levelsK := levels(f)
	names := make([]string, 0, len(levelsK))
	for n := range levelsK {
		names = append(names, n)
	}
	f.Fuzz(func(t *testing.T, m, n uint8, k uint16, pad, flags uint8, alpha, beta int8) {
		k %= 600
		kn := levelsK[names[int(flags>>2)%len(names)]]
		tc := gemmCase{transA: flags&1 != 0, transB: flags&2 != 0, m: int(m % 80), n: int(n), k: int(k),
			pad: int(pad % 9), alpha: float32(alpha) / 4, beta: float32(beta) / 4}
		checkSgemm(t, kn, rand.New(rand.NewPCG(uint64(m), uint64(k))), tc)
	})
}

// TestEveryRowCount runs m = 1…29, so that every partial-panel kernel
// (1…13 rows on AVX-512, 1…5 on AVX2) runs, with C wider than a panel
// (full and partial column panels) and beta both 0 and not.
func TestEveryRowCount(t *testing.T) {
	for name, kn := range levels(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(23, 0))
			for m := 1; m < 30; m++ {
				tc := gemmCase{transA: m%2 == 0, m: m, n: 45, k: 37, pad: 3, alpha: 1.25, beta: float32(m%3) / 2}
				checkSgemm(t, kn, r, tc)
				checkBF16(t, kn, r, tc)
			}
		})
	}
}
