package transformer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Tolerances, float32 kernels against float64 references: elementwise
// functions 1e-6 relative (+1e-7 absolute); row reductions (norms,
// cross-entropy) 1e-5 relative to the row's scale.

var oddWidths = []int{1, 7, 63, 257, 1024}

func TestExpf(t *testing.T) {
	for x := float32(-90); x <= 89; x += 0.01337 {
		got, want := float64(expf(x)), math.Exp(float64(x))
		if x < -87.3 { // at the bottom of float32's normal range expf flushes to 0
			if got != 0 {
				t.Fatalf("expf(%v) = %v, want about %v", x, got, want)
			}
			continue
		}
		if want > math.MaxFloat32 {
			if !math.IsInf(got, 1) {
				t.Fatalf("expf(%v) = %v, want +Inf", x, got)
			}
			continue
		}
		if math.Abs(got-want) > 1e-6*want {
			t.Fatalf("expf(%v) = %v, want %v", x, got, want)
		}
	}
	if expf(float32(math.Inf(-1))) != 0 || !math.IsInf(float64(expf(float32(math.Inf(1)))), 1) {
		t.Fatal("expf at infinities")
	}
	if v := expf(float32(math.NaN())); v == v {
		t.Fatal("expf(NaN) is not NaN")
	}
}

func closeRel(got float32, want, rel, abs float64) bool {
	return math.Abs(float64(got)-want) <= abs+rel*math.Abs(want)
}

func TestActivationsAgainstFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range oddWidths {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			x, g, d := randSlice(r, n), randSlice(r, n), randSlice(r, n)
			for i := range x {
				x[i] *= 3
				g[i] *= 3
			}
			out := make([]float32, n)
			sig := make([]float32, n)
			geluForward(out, sig, x)
			dg := append([]float32(nil), d...)
			geluBackward(dg, sig, x)
			dg2 := append([]float32(nil), d...)
			geluBackward(dg2, nil, x)
			for i := range dg {
				if !closeRel(dg2[i], float64(dg[i]), 1e-6, 1e-7) {
					t.Fatalf("gelu backward recomputed %v, kept %v", dg2[i], dg[i])
				}
			}
			for i, v := range x {
				xv := float64(v)
				u := geluC * (xv + 0.044715*xv*xv*xv)
				th := math.Tanh(u)
				want := 0.5 * xv * (1 + th)
				dwant := float64(d[i]) * (0.5*(1+th) + 0.5*xv*(1-th*th)*geluC*(1+3*0.044715*xv*xv))
				if !closeRel(out[i], want, 1e-6, 1e-7) || !closeRel(dg[i], dwant, 1e-5, 1e-6) {
					t.Fatalf("gelu(%v) = %v (d %v), want %v (d %v)", v, out[i], dg[i], want, dwant)
				}
			}
			swigluForward(out, g, x)
			dh := append([]float32(nil), d...)
			dgate := make([]float32, n)
			swigluBackward(dh, dgate, g, x)
			for i := range x {
				gv, uv, dv := float64(g[i]), float64(x[i]), float64(d[i])
				s := 1 / (1 + math.Exp(-gv))
				if !closeRel(out[i], gv*s*uv, 1e-6, 1e-7) ||
					!closeRel(dh[i], dv*gv*s, 1e-6, 1e-7) ||
					!closeRel(dgate[i], dv*uv*s*(1+gv*(1-s)), 1e-5, 1e-6) {
					t.Fatalf("swiglu at g=%v up=%v: h %v dup %v dgate %v", gv, uv, out[i], dh[i], dgate[i])
				}
			}
		})
	}
}

// refNorm returns norm(x + add) per row in float64, with the mean and
// 1/std, and the backward pass for dout: dx, dw, db.
func refNorm(x, add, bias, w, b, dout []float32, N, D int, rms bool) (sum, out, dx, dw, db []float64) {
	sum, out, dx = make([]float64, N*D), make([]float64, N*D), make([]float64, N*D)
	dw, db = make([]float64, D), make([]float64, D)
	for r := range N {
		var mu, ss float64
		for j := range D {
			v := float64(x[r*D+j])
			if add != nil {
				v += float64(add[r*D+j])
				if bias != nil {
					v += float64(bias[j])
				}
			}
			sum[r*D+j] = v
			mu += v
		}
		mu /= float64(D)
		if rms {
			mu = 0
		}
		for j := range D {
			d := sum[r*D+j] - mu
			ss += d * d
		}
		rs := 1 / math.Sqrt(ss/float64(D)+normEps)
		xh := make([]float64, D)
		var mD, mDX float64
		for j := range D {
			xh[j] = (sum[r*D+j] - mu) * rs
			out[r*D+j] = xh[j] * float64(w[j])
			if !rms {
				out[r*D+j] += float64(b[j])
			}
			dn := float64(dout[r*D+j]) * float64(w[j])
			mD += dn / float64(D)
			mDX += dn * xh[j] / float64(D)
			dw[j] += float64(dout[r*D+j]) * xh[j]
			db[j] += float64(dout[r*D+j])
		}
		if rms {
			mD = 0
		}
		for j := range D {
			dx[r*D+j] = rs * (float64(dout[r*D+j])*float64(w[j]) - mD - xh[j]*mDX)
		}
	}
	return
}

func TestNormsAgainstFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, D := range oddWidths {
		for _, rms := range []bool{false, true} {
			for _, withAdd := range []bool{false, true} {
				t.Run(fmt.Sprintf("D=%d/rms=%v/add=%v", D, rms, withAdd), func(t *testing.T) {
					N := 5
					x, w, dout := randSlice(r, N*D), randSlice(r, D), randSlice(r, N*D)
					for i := range x {
						x[i] = 2*x[i] + 3 // an offset, as residual streams have
					}
					var add, bias, b []float32
					if withAdd {
						add, bias = randSlice(r, N*D), randSlice(r, D)
					}
					if !rms {
						b = randSlice(r, D)
					}
					wantSum, wantOut, wantDx, wantDw, wantDb := refNorm(x, add, bias, w, b, dout, N, D, rms)
					out, mean, rstd := make([]float32, N*D), make([]float32, N), make([]float32, N)
					xs := append([]float32(nil), x...)
					addNormForward(out, mean, rstd, xs, add, bias, w, b, 0, N, D)
					dx, dw := make([]float32, N*D), make([]float32, D)
					var db []float32
					if !rms {
						db = make([]float32, D)
					}
					normBackwardRows(dx, dw, db, dout, xs, mean, rstd, w, 0, N, D)
					check := func(name string, got []float32, want []float64, scale float64) {
						for i := range want {
							if !closeRel(got[i], want[i], 1e-5, 1e-5*scale) {
								t.Fatalf("%s[%d] = %v, want %v", name, i, got[i], want[i])
							}
						}
					}
					check("sum", xs, wantSum, 1)
					check("out", out, wantOut, 1)
					check("dx", dx, wantDx, 1)
					check("dw", dw, wantDw, float64(N))
					if !rms {
						check("db", db, wantDb, float64(N))
					}
				})
			}
		}
	}
}

func TestCrossEntropyAgainstFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	for _, V := range oddWidths {
		for _, eps := range []float32{0, 0.1, 0.5} {
			t.Run(fmt.Sprintf("V=%d/eps=%v", V, eps), func(t *testing.T) {
				row := randSlice(r, V)
				for i := range row {
					row[i] *= 4
				}
				tgt := r.IntN(V)
				mx := math.Inf(-1)
				for _, v := range row {
					mx = math.Max(mx, float64(v))
				}
				var sum, sumX float64
				for _, v := range row {
					sum += math.Exp(float64(v) - mx)
					sumX += float64(v)
				}
				lse := mx + math.Log(sum)
				want := lse - (1-float64(eps))*float64(row[tgt]) - float64(eps)*sumX/float64(V)
				const scale = 0.25
				grad := append([]float32(nil), row...)
				got := crossEntropyRow(grad, tgt, eps, scale, true)
				if math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
					t.Fatalf("loss %v, want %v", got, want)
				}
				if l := crossEntropyRow(append([]float32(nil), row...), tgt, eps, scale, false); math.Abs(l-got) > 1e-9*math.Abs(got) {
					t.Fatalf("loss without gradient %v, with %v", l, got)
				}
				for j, v := range row {
					tj := float64(eps) / float64(V)
					if j == tgt {
						tj += 1 - float64(eps)
					}
					wg := scale * (math.Exp(float64(v)-lse) - tj)
					if !closeRel(grad[j], wg, 1e-5, 1e-7) {
						t.Fatalf("grad[%d] = %v, want %v", j, grad[j], wg)
					}
				}
			})
		}
	}
}

func TestRopeAgainstFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 11))
	for _, hd := range []int{2, 8, 64} {
		H := 3
		row := randSlice(r, 2*H*hd)
		cos, sin := make([]float32, hd/2), make([]float32, hd/2)
		ang := make([]float64, hd/2)
		for i := range ang {
			ang[i] = 10 * r.Float64()
			cos[i], sin[i] = float32(math.Cos(ang[i])), float32(math.Sin(ang[i]))
		}
		got := append([]float32(nil), row...)
		ropeRow(got, cos, sin, hd, false)
		for h := 0; h < len(row); h += hd {
			for i := range hd / 2 {
				x0, x1 := float64(row[h+2*i]), float64(row[h+2*i+1])
				w0 := x0*math.Cos(ang[i]) - x1*math.Sin(ang[i])
				w1 := x0*math.Sin(ang[i]) + x1*math.Cos(ang[i])
				if !closeRel(got[h+2*i], w0, 1e-6, 1e-6) || !closeRel(got[h+2*i+1], w1, 1e-6, 1e-6) {
					t.Fatalf("hd %d: rope pair %d = (%v,%v), want (%v,%v)", hd, i, got[h+2*i], got[h+2*i+1], w0, w1)
				}
			}
		}
		ropeRow(got, cos, sin, hd, true)
		for i := range row {
			if !closeRel(got[i], float64(row[i]), 1e-5, 1e-5) {
				t.Fatalf("hd %d: inverse rotation does not undo: %v vs %v", hd, got[i], row[i])
			}
		}
	}
}

// TestExpShift checks the vector exponential (and the portable one) against
// math.Exp: 3e-7 relative (2.5 ulp) over the range the kernels use, 0 for -Inf and
// below float32's range, odd lengths for the tails.
func TestExpShift(t *testing.T) {
	paths := map[string]bool{"portable": false}
	if useAVX512Exp {
		paths["avx512"] = true
	}
	defer func(v bool) { useAVX512Exp = v }(useAVX512Exp)
	r := rand.New(rand.NewPCG(3, 3))
	for name, on := range paths {
		useAVX512Exp = on
		for _, n := range []int{1, 15, 16, 17, 63, 257, 4096} {
			src := make([]float32, n)
			for i := range src {
				src[i] = float32(r.Float64()*170 - 85)
			}
			src[0] = float32(math.Inf(-1))
			if n > 2 {
				src[n-1] = -200
				src[1] = 0
			}
			const m = 1.5
			dst := make([]float32, n)
			expShift(dst, src, m)
			for i, v := range src {
				want := math.Exp(float64(v - m)) // the shift is a float32 subtraction
				got := float64(dst[i])
				if want < 1.2e-38 {
					if got > 1.2e-38 {
						t.Fatalf("%s n=%d: exp(%v) = %v, want about %v", name, n, float64(v)-m, got, want)
					}
					continue
				}
				if math.Abs(got-want) > 3e-7*want {
					t.Fatalf("%s n=%d: exp(%v) = %v, want %v", name, n, float64(v)-m, got, want)
				}
			}
			in := append([]float32(nil), src...)
			expShift(in, in, m)
			for i := range in {
				if in[i] != dst[i] {
					t.Fatalf("%s: in place differs at %d", name, i)
				}
			}
		}
	}
}
