package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randBF16(r *rand.Rand, n int) []uint16 {
	x := make([]uint16, n)
	ToBF16(x, randF32(r, n))
	return x
}

// TestGemmBF16 checks the BF16 GEMM against float64 sums of the same
// bf16 inputs. Tolerance: 2e-6·(k·|alpha| + |beta|) + 1e-6 (float32
// accumulation of exact bf16 products, as for Sgemm).
func TestGemmBF16(t *testing.T) {
	sizes := []int{1, 7, 63, 257}
	for name, kn := range levels(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, uint64(kn.level)))
			for _, tA := range []bool{false, true} {
				for _, tB := range []bool{false, true} {
					for _, m := range sizes {
						for _, n := range sizes {
							for _, k := range []int{1, 2, 7, 63, 300} {
								if m*n*k > 257*63*63 && !(m == 63 && n == 257 && k == 300) {
									continue
								}
								tc := gemmCase{transA: tA, transB: tB, m: m, n: n, k: k, pad: k % 3, alpha: 1.5, beta: float32(m%2) * 0.5}
								checkBF16(t, kn, r, tc)
							}
						}
					}
					// k over several slabs of the BF16 kernel (512).
					checkBF16(t, kn, r, gemmCase{transA: tA, transB: tB, m: 9, n: 40, k: 1100, pad: 2, alpha: 1, beta: 0.5})
				}
			}
		})
	}
}

func checkBF16(t *testing.T, kn *Kernels, r *rand.Rand, tc gemmCase) {
	t.Helper()
	ra, ca, rb, cb := tc.dims()
	lda, ldb, ldc := ca+tc.pad, cb+tc.pad, tc.n+tc.pad
	a, b := randBF16(r, ra*lda), randBF16(r, rb*ldb)
	c := randF32(r, (tc.m+guardRows)*ldc)
	orig := append([]float32(nil), c...)
	want := refGemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, float64(tc.alpha), func(i int) float64 { return float64(widen(a[i])) }, lda,
		func(i int) float64 { return float64(widen(b[i])) }, ldb, float64(tc.beta), c, ldc)
	kn.GemmBF16(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
	tol := 2e-6*(float64(tc.k)*math.Abs(float64(tc.alpha))+math.Abs(float64(tc.beta))) + 1e-6
	for i := range tc.m + guardRows {
		for j := range ldc {
			x := i*ldc + j
			if i >= tc.m || j >= tc.n {
				if c[x] != orig[x] {
					t.Fatalf("%v: C[%d,%d] outside m×n changed", tc, i, j)
				}
				continue
			}
			if d := math.Abs(float64(c[x]) - want[x]); !(d <= tol) {
				t.Fatalf("%v: C[%d,%d] = %g, want %g (diff %g > %g)", tc, i, j, c[x], want[x], d, tol)
			}
		}
	}
}

func TestToBF16(t *testing.T) {
	cases := map[string]struct {
		in   float32
		want uint16
	}{
		"one":            {1, 0x3f80},
		"round down":     {math.Float32frombits(0x3f807fff), 0x3f80},
		"tie to even 0":  {math.Float32frombits(0x3f808000), 0x3f80},
		"tie to even 1":  {math.Float32frombits(0x3f818000), 0x3f82},
		"round up":       {math.Float32frombits(0x3f808001), 0x3f81},
		"max rounds inf": {math.MaxFloat32, 0x7f80},
		"minus zero":     {float32(math.Copysign(0, -1)), 0x8000},
		"inf":            {float32(math.Inf(-1)), 0xff80},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out [1]uint16
			ToBF16(out[:], []float32{tc.in})
			if out[0] != tc.want {
				t.Fatalf("ToBF16(%g) = %#04x, want %#04x", tc.in, out[0], tc.want)
			}
		})
	}
	var out [1]uint16
	ToBF16(out[:], []float32{float32(math.NaN())})
	if f := widen(out[0]); !math.IsNaN(float64(f)) {
		t.Fatalf("NaN became %g", f)
	}
	// Nearest: no other bf16 is closer than the one chosen.
	r := rand.New(rand.NewPCG(7, 7))
	for range 10000 {
		f := float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(40)-20)))
		ToBF16(out[:], []float32{f})
		got := float64(widen(out[0]))
		for _, nb := range []uint16{out[0] - 1, out[0] + 1} {
			if d, dn := math.Abs(got-float64(f)), math.Abs(float64(widen(nb))-float64(f)); dn < d {
				t.Fatalf("ToBF16(%g) = %g, but %g is closer", f, got, widen(nb))
			}
		}
	}
	back := make([]float32, 3)
	FromBF16(back, []uint16{0x3f80, 0xc000, 0})
	if back[0] != 1 || back[1] != -2 || back[2] != 0 {
		t.Fatalf("FromBF16 = %v", back)
	}
}

// TestGemmInt8 checks the INT8 GEMM against exact int64 sums times the
// scales in float64. Tolerance: 1e-6·|want| + 1e-6 (the sum is exact;
// converting it and two float32 products round at ~3·2⁻²⁴), plus, where
// k spans several 1024-slabs, 2⁻²⁴·Σ|a·b|·scales per extra slab (the
// widened path without VNNI adds exact slab sums in float32).
func TestGemmInt8(t *testing.T) {
	sizes := []int{1, 7, 63, 257}
	for name, kn := range levels(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(9, uint64(kn.level)))
			for _, tB := range []bool{false, true} {
				for _, m := range sizes {
					for _, n := range sizes {
						for _, k := range []int{1, 3, 4, 63, 513} {
							if m*n*k > 257*63*513 {
								continue
							}
							checkInt8(t, kn, r, tB, m, n, k, (m+k)%4, m%2 == 0, n%2 == 1)
						}
					}
				}
			}
			checkInt8(t, kn, r, false, 20, 40, 4000, 3, false, false) // sums near int32's range
		})
	}
}

func checkInt8(t *testing.T, kn *Kernels, r *rand.Rand, transB bool, m, n, k, pad int, oneAScale, oneBScale bool) {
	t.Helper()
	lda, ldb, ldc := k+pad, n+pad, n+pad
	rb := k
	if transB {
		ldb, rb = k+pad, n
	}
	a, b := make([]int8, m*lda), make([]int8, rb*ldb)
	for i := range a {
		a[i] = int8(r.IntN(256) - 128)
	}
	for i := range b {
		b[i] = int8(r.IntN(256) - 128)
	}
	as, bs := make([]float32, m), make([]float32, n)
	if oneAScale {
		as = as[:1]
	}
	if oneBScale {
		bs = bs[:1]
	}
	for i := range as {
		as[i] = float32(r.Float64()*0.1 + 1e-3)
	}
	for i := range bs {
		bs[i] = float32(r.Float64()*0.1 + 1e-3)
	}
	c := randF32(r, m*ldc)
	orig := append([]float32(nil), c...)
	kn.GemmInt8(transB, m, n, k, a, lda, as, b, ldb, bs, c, ldc)
	for i := range m {
		for j := range ldc {
			x := i*ldc + j
			if j >= n {
				if c[x] != orig[x] {
					t.Fatalf("m=%d n=%d k=%d: C[%d,%d] past n changed", m, n, k, i, j)
				}
				continue
			}
			var s, abs int64
			for p := range k {
				var bv int8
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += int64(a[i*lda+p]) * int64(bv)
				abs += max(int64(a[i*lda+p])*int64(bv), -int64(a[i*lda+p])*int64(bv))
			}
			scale := float64(as[min(i, len(as)-1)]) * float64(bs[min(j, len(bs)-1)])
			want := float64(s) * scale
			slabs := float64((k + int8WideKC - 1) / int8WideKC)
			if d := math.Abs(float64(c[x]) - want); !(d <= 1e-6*math.Abs(want)+1e-6+(slabs-1)*0x1p-24*float64(abs)*scale) {
				t.Fatalf("transB=%v m=%d n=%d k=%d: C[%d,%d] = %g, want %g", transB, m, n, k, i, j, c[x], want)
			}
		}
	}
}

func TestGemmInt8BadScales(t *testing.T) {
	kn := Must()
	defer func() {
		if r := recover(); r == nil || fmt.Sprint(r) != "gemm int8: 2 row scales for m=3 (want m or 1)" {
			t.Fatalf("panic = %v", r)
		}
	}()
	kn.GemmInt8(false, 3, 2, 2, make([]int8, 6), 2, make([]float32, 2), make([]int8, 4), 2, []float32{1}, make([]float32, 6), 2)
}

// TestBF16ConversionsBulk: the vector paths (whole blocks of 16) give
// exactly the scalar results on every kind of float32: random bit
// patterns (NaNs, infinities, denormals), ties and near-ties.
func TestBF16ConversionsBulk(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 0))
	src := make([]float32, 4099)
	for i := range src {
		switch i % 4 {
		case 0:
			src[i] = math.Float32frombits(r.Uint32())
		case 1:
			src[i] = math.Float32frombits(r.Uint32()&0xffff0000 | 0x8000) // ties
		case 2:
			src[i] = math.Float32frombits(r.Uint32() & 0x807fffff) // zero and denormals
		default:
			src[i] = math.Float32frombits(0x7f800000 | r.Uint32()&0x807fffff) // inf and NaN
		}
	}
	got := make([]uint16, len(src))
	ToBF16(got, src)
	for i, f := range src {
		if want := bf16(f); got[i] != want {
			t.Fatalf("ToBF16(%#08x) = %#04x, want %#04x", math.Float32bits(f), got[i], want)
		}
	}
	back := make([]float32, len(got))
	FromBF16(back, got)
	for i, h := range got {
		if math.Float32bits(back[i]) != uint32(h)<<16 {
			t.Fatalf("FromBF16(%#04x) = %#08x", h, math.Float32bits(back[i]))
		}
	}
}

// TestGemmInt8Packed: weights packed once give bit for bit what GemmInt8
// gives (itself checked against the exact reference), on every level and
// on the AMX drivers, for several row counts over the same weights.
func TestGemmInt8Packed(t *testing.T) {
	ks := levels(t)
	ks["amx-go"] = Must(withAMXGo())
	for name, kn := range ks {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(29, 0))
			for _, tB := range []bool{false, true} {
				n, k := 70, 133
				ldb := n + 3
				if tB {
					ldb = k + 3
				}
				b := make([]int8, max(n, k)*ldb)
				for i := range b {
					b[i] = int8(r.IntN(256) - 128)
				}
				bs := randF32(r, n)
				w := kn.PackInt8(tB, n, k, b, ldb, bs)
				orig := append([]int8(nil), b...)
				for i := range b {
					b[i] = int8(r.IntN(256) - 128) // the weights keep no reference to b
				}
				for _, m := range []int{1, 5, 14, 33} {
					a := make([]int8, m*k)
					for i := range a {
						a[i] = int8(r.IntN(256) - 128)
					}
					as := randF32(r, m)
					got, want := make([]float32, m*n), make([]float32, m*n)
					kn.GemmInt8Packed(m, a, k, as, w, got, n)
					kn.GemmInt8(tB, m, n, k, a, k, as, orig, ldb, bs, want, n)
					for i := range got {
						if got[i] != want[i] {
							t.Fatalf("transB=%v m=%d: C[%d] = %g packed, %g unpacked", tB, m, i, got[i], want[i])
						}
					}
				}
			}
		})
	}
	vnni, err := New(WithLevel(AVX512))
	if err != nil || vnni.int8 != int8VNNI {
		return // no VNNI here: no second packed layout to mix up
	}
	w := vnni.PackInt8(false, 4, 4, make([]int8, 16), 4, []float32{1})
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("weights packed for VNNI ran on AMX kernels")
		}
	}()
	Must(withAMXGo()).GemmInt8Packed(1, make([]int8, 4), 4, []float32{1}, w, make([]float32, 4), 4)
}
