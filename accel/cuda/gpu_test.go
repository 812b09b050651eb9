package cuda

import (
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/llmesh/llmesh/accel/acceltest"
	"github.com/llmesh/llmesh/accel/engine"
	"github.com/llmesh/llmesh/accel/transformer"
)

// The tests in this file need an NVIDIA GPU with its driver, cuBLAS and
// NVRTC; elsewhere they skip with "no CUDA device: …".

func openDevice(t *testing.T) *Device {
	t.Helper()
	d, err := Open()
	if errors.Is(err, ErrNoDevice) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	t.Logf("%s, driver %d", d, d.DriverVersion)
	return d
}

func gpuKernels(t *testing.T) (*Device, *Kernels) {
	t.Helper()
	d := openDevice(t)
	k, err := d.Kernels()
	if errors.Is(err, ErrNoLibrary) {
		t.Skipf("no CUDA device: %s has no cuBLAS: %v", d.Name, err)
	}
	if err != nil {
		t.Fatalf("Kernels: %v", err)
	}
	return d, k.(*Kernels)
}

func TestGPUSgemmMatchesPortable(t *testing.T) {
	_, k := gpuKernels(t)
	r := rand.New(rand.NewPCG(5, 6))
	cases := gemmCases()
	cases["large/tB"] = gemmCase{transB: true, m: 257, n: 1031, k: 771, padC: 5, alpha: 1}
	cases["large/tA/beta=1"] = gemmCase{transA: true, m: 768, n: 513, k: 1025, alpha: 1, beta: 1}
	portable := transformer.PortableKernels()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a, lda, b, ldb, c, ldc := tc.operands(r)
			want := refRowMajor(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
			p := append([]float32(nil), c...)
			portable.Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, p, ldc)
			k.Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
			gemmClose(t, c, want, tc.k)
			gemmClose(t, p, want, tc.k)
		})
	}
}

func TestGPUSgemmConcurrent(t *testing.T) {
	_, k := gpuKernels(t)
	tc := gemmCase{m: 33, n: 65, k: 17, alpha: 1}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for range 20 {
				a, lda, b, ldb, c, ldc := tc.operands(r)
				want := refRowMajor(false, false, tc.m, tc.n, tc.k, 1, a, lda, b, ldb, 0, c, ldc)
				k.Sgemm(false, false, tc.m, tc.n, tc.k, 1, a, lda, b, ldb, 0, c, ldc)
				if err := gemmDiff(c, want, tc.k); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestGPUAcceltest runs the conformance suite on the cuda engine with the
// cpu engine as the reference.
func TestGPUAcceltest(t *testing.T) {
	_, k := gpuKernels(t)
	acceltest.Run(t, engine.New("cuda", k), acceltest.Options{Reference: engine.New("cpu", nil), Tolerance: 1e-3})
}

func randn(r *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(scale * r.NormFloat64())
	}
	return x
}

func closeTo(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol*max(1, math.Abs(want[i]))) {
			t.Fatalf("%s[%d] = %g, want %g (tolerance %g)", what, i, got[i], want[i], tol)
		}
	}
}

func TestGPUNVRTCKernels(t *testing.T) {
	_, k := gpuKernels(t)
	if _, err := k.module(); errors.Is(err, ErrNoLibrary) {
		t.Skipf("no CUDA device: no NVRTC: %v", err)
	} else if err != nil {
		t.Fatalf("compile: %v", err)
	}
	r := rand.New(rand.NewPCG(8, 9))
	const c = 0.7978845608028654

	t.Run("GELU", func(t *testing.T) {
		in, dout := randn(r, 1001, 3), randn(r, 1001, 1)
		out, din := make([]float32, len(in)), make([]float32, len(in))
		if err := k.GELU(out, in); err != nil {
			t.Fatal(err)
		}
		if err := k.GELUBackward(din, in, dout); err != nil {
			t.Fatal(err)
		}
		wf, wb := make([]float64, len(in)), make([]float64, len(in))
		for i, v32 := range in {
			v := float64(v32)
			th := math.Tanh(c * (v + 0.044715*v*v*v))
			wf[i] = 0.5 * v * (1 + th)
			wb[i] = float64(dout[i]) * (0.5*(1+th) + 0.5*v*(1-th*th)*c*(1+3*0.044715*v*v))
		}
		closeTo(t, "gelu", out, wf, 1e-5)
		closeTo(t, "gelu'", din, wb, 1e-5)
	})

	t.Run("SoftmaxCrossEntropy", func(t *testing.T) {
		const rows, V = 7, 1003
		logits := randn(r, rows*V, 4)
		targets := make([]int32, rows)
		for i := range targets {
			targets[i] = int32(r.IntN(V))
		}
		wantLoss, wantGrad := make([]float64, rows), make([]float64, rows*V)
		for i := range rows {
			row := logits[i*V : (i+1)*V]
			mx := math.Inf(-1)
			for _, v := range row {
				mx = math.Max(mx, float64(v))
			}
			var s float64
			for _, v := range row {
				s += math.Exp(float64(v) - mx)
			}
			wantLoss[i] = math.Log(s) + mx - float64(row[targets[i]])
			for j, v := range row {
				wantGrad[i*V+j] = math.Exp(float64(v)-mx) / s / rows
			}
			wantGrad[i*V+int(targets[i])] -= 1.0 / rows
		}
		losses := make([]float32, rows)
		if err := k.SoftmaxCrossEntropy(logits, targets, rows, V, losses, 1.0/rows, true); err != nil {
			t.Fatal(err)
		}
		closeTo(t, "loss", losses, wantLoss, 1e-5)
		closeTo(t, "dlogits", logits, wantGrad, 1e-5)
	})

	for name, bias := range map[string]bool{"LayerNorm": true, "RMSNorm": false} {
		t.Run(name, func(t *testing.T) {
			const rows, D = 5, 771
			x, w := randn(r, rows*D, 2), randn(r, D, 1)
			var b []float32
			if bias {
				b = randn(r, D, 1)
			}
			out, mean, rstd := make([]float32, rows*D), make([]float32, rows), make([]float32, rows)
			if err := k.LayerNorm(out, mean, rstd, x, w, b, rows, D, 1e-5); err != nil {
				t.Fatal(err)
			}
			want := make([]float64, rows*D)
			for i := range rows {
				row := x[i*D : (i+1)*D]
				var mu, ss float64
				if bias {
					for _, v := range row {
						mu += float64(v)
					}
					mu /= D
				}
				for _, v := range row {
					ss += (float64(v) - mu) * (float64(v) - mu)
				}
				rs := 1 / math.Sqrt(ss/D+1e-5)
				for j, v := range row {
					want[i*D+j] = (float64(v) - mu) * rs * float64(w[j])
					if bias {
						want[i*D+j] += float64(b[j])
					}
				}
			}
			closeTo(t, "out", out, want, 1e-4)
		})
	}

	t.Run("AdamW", func(t *testing.T) {
		const n = 2049
		p := AdamWParams{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, Step: 3, GradScale: 0.5}
		params, grads, m, v := randn(r, n, 1), randn(r, n, 1), randn(r, n, 0.1), randn(r, n, 0.01)
		for i := range v {
			v[i] = float32(math.Abs(float64(v[i])))
		}
		want := make([]float64, n)
		bc1 := 1 - math.Pow(float64(p.Beta1), 3)
		bc2 := 1 - math.Pow(float64(p.Beta2), 3)
		for i := range params {
			g := float64(grads[i]) * float64(p.GradScale)
			mi := float64(p.Beta1)*float64(m[i]) + (1-float64(p.Beta1))*g
			vi := float64(p.Beta2)*float64(v[i]) + (1-float64(p.Beta2))*g*g
			want[i] = float64(params[i]) - float64(p.LR)*float64(p.WeightDecay)*float64(params[i]) -
				float64(p.LR)/bc1*mi/(math.Sqrt(vi)/math.Sqrt(bc2)+float64(p.Eps))
		}
		if err := k.AdamW(params, grads, m, v, p); err != nil {
			t.Fatal(err)
		}
		closeTo(t, "params", params, want, 1e-5)
	})
}

func TestGPUCompileError(t *testing.T) {
	d := openDevice(t)
	_, err := d.Compile(`extern "C" __global__ void broken( { }`, "broken.cu")
	if errors.Is(err, ErrNoLibrary) {
		t.Skipf("no CUDA device: no NVRTC: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Log == "" {
		t.Fatalf("Compile of broken code: err = %v, want an *Error with NVRTC's log", err)
	}
}

func TestGPUClose(t *testing.T) {
	d := openDevice(t)
	p, err := d.Alloc(1024)
	if err != nil {
		t.Fatal(err)
	}
	in := []float32{1, 2, 3}
	out := make([]float32, 3)
	if err := d.Upload(p, in); err != nil {
		t.Fatal(err)
	}
	if err := d.Download(out, p); err != nil || out[2] != 3 {
		t.Fatalf("round trip = %v, %v", out, err)
	}
	if err := d.Free(p); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := d.Alloc(16); !errors.Is(err, ErrClosed) {
		t.Errorf("Alloc after Close: err = %v, want ErrClosed", err)
	}
}
