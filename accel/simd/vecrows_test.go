package simd

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestRows checks DotRows and AxpyRows against float64 on odd row
// lengths and counts, at every level (the assembly takes lengths that
// are multiples of 16). Tolerance: 1e-6·Σ|terms| + 1e-6 per result.
func TestRows(t *testing.T) {
	for name, kn := range levels(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 3))
			for _, n := range []int{1, 7, 15, 16, 17, 32, 48, 63, 64, 80, 96, 128, 200, 256} {
				for _, rows := range []int{0, 1, 2, 3, 5, 16, 17} {
					lda := n + []int{0, 0, 3, 16}[r.IntN(4)] // rows packed, or apart
					x := randF32(r, n)
					a := randF32(r, max(0, (rows-1)*lda+n)+r.IntN(3)) // a may run on
					add := r.IntN(2) == 0
					out := randF32(r, rows)
					out0 := append([]float32(nil), out...)
					kn.DotRows(x, a, lda, out, add)
					for j := range rows {
						var want, mag float64
						if add {
							want, mag = float64(out0[j]), math.Abs(float64(out0[j]))
						}
						for c := range n {
							p := float64(x[c]) * float64(a[j*lda+c])
							want += p
							mag += math.Abs(p)
						}
						if math.Abs(float64(out[j])-want) > 1e-6*mag+1e-6 {
							t.Fatalf("DotRows n=%d rows=%d lda=%d add=%v: out[%d] = %g, want %g", n, rows, lda, add, j, out[j], want)
						}
					}
					alpha := randF32(r, rows)
					y := randF32(r, n)
					y0 := append([]float32(nil), y...)
					kn.AxpyRows(alpha, a, lda, y)
					for c := range n {
						want, mag := float64(y0[c]), math.Abs(float64(y0[c]))
						for j := range rows {
							p := float64(alpha[j]) * float64(a[j*lda+c])
							want += p
							mag += math.Abs(p)
						}
						if math.Abs(float64(y[c])-want) > 1e-6*mag+1e-6 {
							t.Fatalf("AxpyRows n=%d rows=%d lda=%d: y[%d] = %g, want %g", n, rows, lda, c, y[c], want)
						}
					}
				}
			}
		})
	}
}

// Too short a matrix panics with the sizes.
func TestRowsBadInput(t *testing.T) {
	k := Must()
	for name, f := range map[string]func(){
		"DotRows":  func() { k.DotRows(make([]float32, 16), make([]float32, 35), 20, make([]float32, 2), false) },
		"AxpyRows": func() { k.AxpyRows(make([]float32, 2), make([]float32, 35), 20, make([]float32, 16)) },
		"lda":      func() { k.AxpyRows(make([]float32, 2), make([]float32, 36), 15, make([]float32, 16)) },
	} {
		func() {
			defer func() {
				if msg, _ := recover().(string); !strings.Contains(msg, "2 rows of 16 elements, ") || !strings.Contains(msg, "apart, from 3") {
					t.Errorf("%s: panic %q, want the sizes", name, msg)
				}
			}()
			f()
		}()
	}
}

// TestCols checks DotCols against float64 on odd row and column counts
// (the assembly takes whole blocks of 16 columns, Go the rest) and
// strides, at every level. Tolerance: 1e-6·Σ|terms| + 1e-6 per result.
func TestCols(t *testing.T) {
	for name, kn := range levels(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 11))
			for _, rows := range []int{0, 1, 2, 3, 4, 5, 7, 16, 17, 63, 64, 65} {
				for _, n := range []int{1, 5, 15, 16, 17, 31, 32, 33, 48, 80} {
					lda := n + []int{0, 0, 3, 16}[r.IntN(4)]
					x := randF32(r, rows)
					a := randF32(r, max(0, (rows-1)*lda+n)+r.IntN(3))
					add := r.IntN(2) == 0
					out := randF32(r, n)
					out0 := append([]float32(nil), out...)
					kn.DotCols(x, a, lda, out, add)
					for j := range n {
						var want, mag float64
						if add {
							want, mag = float64(out0[j]), math.Abs(float64(out0[j]))
						}
						for c := range rows {
							p := float64(x[c]) * float64(a[c*lda+j])
							want += p
							mag += math.Abs(p)
						}
						if math.Abs(float64(out[j])-want) > 1e-6*mag+1e-6 {
							t.Fatalf("DotCols rows=%d n=%d lda=%d add=%v: out[%d] = %g, want %g", rows, n, lda, add, j, out[j], want)
						}
					}
					kn.Prefetch(a) // a hint: must not change or fault on anything
				}
			}
		})
	}
}

// Too short a matrix for DotCols panics with the sizes.
func TestColsBadInput(t *testing.T) {
	k := Must()
	for name, f := range map[string]func(){
		"short": func() { k.DotCols(make([]float32, 2), make([]float32, 35), 20, make([]float32, 16), false) },
		"lda":   func() { k.DotCols(make([]float32, 2), make([]float32, 36), 15, make([]float32, 16), false) },
	} {
		func() {
			defer func() {
				if msg, _ := recover().(string); !strings.Contains(msg, "DotCols of 2 rows of 16 elements, ") || !strings.Contains(msg, "apart, from 3") {
					t.Errorf("%s: panic %q, want the sizes", name, msg)
				}
			}()
			f()
		}()
	}
}
