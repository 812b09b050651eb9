package cuda

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// These tests need an NVIDIA GPU (see gpu_test.go); elsewhere they skip.

func gpuModule(t *testing.T) *Kernels {
	t.Helper()
	_, k := gpuKernels(t)
	if _, err := k.module(); errors.Is(err, ErrNoLibrary) {
		t.Skipf("no CUDA device: no NVRTC: %v", err)
	} else if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return k
}

// refAttention is causal attention in float64 with Config.Visible's
// pattern: o, the row logsumexps, and (given dout) dq, dk, dv.
func refAttention(q, k, v, dout []float32, a AttentionShape) (o, lse, dq, dk, dv []float64) {
	T, HD := a.T, a.HD
	n := a.BH * T * HD
	o, lse = make([]float64, n), make([]float64, a.BH*T)
	dq, dk, dv = make([]float64, n), make([]float64, n), make([]float64, n)
	visible := func(i, j int) bool {
		return j <= i && (a.Window <= 0 || i-j < a.Window || j < a.Global)
	}
	for bh := range a.BH {
		base := bh * T * HD
		at := func(x []float32, r, d int) float64 { return float64(x[base+r*HD+d]) }
		p := make([][]float64, T)
		for i := range T {
			p[i] = make([]float64, T)
			m := math.Inf(-1)
			for j := range T {
				if !visible(i, j) {
					continue
				}
				s := 0.0
				for d := range HD {
					s += at(q, i, d) * at(k, j, d)
				}
				p[i][j] = s * float64(a.Scale)
				m = math.Max(m, p[i][j])
			}
			sum := 0.0
			for j := range T {
				if visible(i, j) {
					p[i][j] = math.Exp(p[i][j] - m)
					sum += p[i][j]
				}
			}
			lse[bh*T+i] = m + math.Log(sum)
			for j := range T {
				p[i][j] /= sum
				for d := range HD {
					o[base+i*HD+d] += p[i][j] * at(v, j, d)
				}
			}
		}
		for i := range T {
			Di := 0.0
			for d := range HD {
				Di += at(dout, i, d) * o[base+i*HD+d]
			}
			for j := range T {
				if !visible(i, j) {
					continue
				}
				dp := 0.0
				for d := range HD {
					dp += at(dout, i, d) * at(v, j, d)
				}
				ds := p[i][j] * (dp - Di) * float64(a.Scale)
				for d := range HD {
					dv[base+j*HD+d] += p[i][j] * at(dout, i, d)
					dq[base+i*HD+d] += ds * at(k, j, d)
					dk[base+j*HD+d] += ds * at(q, i, d)
				}
			}
		}
	}
	return
}

func TestGPUAttention(t *testing.T) {
	k := gpuModule(t)
	r := rand.New(rand.NewPCG(3, 4))
	for _, a := range []AttentionShape{
		{BH: 1, T: 1, HD: 8},
		{BH: 3, T: 7, HD: 16},
		{BH: 2, T: 63, HD: 32},
		{BH: 2, T: 130, HD: 64},
		{BH: 1, T: 257, HD: 128},
		{BH: 2, T: 100, HD: 32, Window: 17},
		{BH: 2, T: 150, HD: 32, Window: 40, Global: 5},
	} {
		a.Scale = float32(1 / math.Sqrt(float64(a.HD)))
		n := a.BH * a.T * a.HD
		q, kk, v, dout := randn(r, n, 1), randn(r, n, 1), randn(r, n, 1), randn(r, n, 1)
		o, lse := make([]float32, n), make([]float32, a.BH*a.T)
		if err := k.Attention(o, lse, q, kk, v, a); err != nil {
			t.Fatalf("%+v: %v", a, err)
		}
		dq, dk, dv := make([]float32, n), make([]float32, n), make([]float32, n)
		if err := k.AttentionBackward(dq, dk, dv, dout, q, kk, v, o, lse, a); err != nil {
			t.Fatalf("%+v: %v", a, err)
		}
		wo, wl, wdq, wdk, wdv := refAttention(q, kk, v, dout, a)
		closeTo(t, "o", o, wo, 1e-4)
		closeTo(t, "lse", lse, wl, 1e-4)
		closeTo(t, "dq", dq, wdq, 1e-3)
		closeTo(t, "dk", dk, wdk, 1e-3)
		closeTo(t, "dv", dv, wdv, 1e-3)
	}
	if err := k.Attention(nil, nil, nil, nil, nil, AttentionShape{BH: 1, T: 4, HD: 256}); err == nil {
		t.Error("head dim 256 accepted")
	}
}

// bf16Round is round-to-nearest-even to bf16, in Go, the reference for
// f32_to_bf16.
func bf16Round(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

func TestGPUPrecision(t *testing.T) {
	k := gpuModule(t)
	r := rand.New(rand.NewPCG(5, 6))
	src := randn(r, 1003, 100)
	src = append(src, 0, float32(math.Inf(1)), float32(math.NaN()), 1e-40, 70000, -65504)
	b := make([]uint16, len(src))
	if err := k.ToBF16(b, src); err != nil {
		t.Fatal(err)
	}
	back := make([]float32, len(src))
	if err := k.FromBF16(back, b); err != nil {
		t.Fatal(err)
	}
	for i, f := range src {
		if b[i] != bf16Round(f) {
			t.Fatalf("bf16(%g) = %#04x, want %#04x", f, b[i], bf16Round(f))
		}
		if want := math.Float32frombits(uint32(b[i]) << 16); math.Float32bits(back[i]) != math.Float32bits(want) {
			t.Fatalf("widen %#04x = %g, want %g", b[i], back[i], want)
		}
	}
	h := make([]uint16, len(src))
	if err := k.ToF16(h, src); err != nil {
		t.Fatal(err)
	}
	if err := k.FromF16(back, h); err != nil {
		t.Fatal(err)
	}
	for i, f := range src[:1003] {
		if d := math.Abs(float64(back[i] - f)); d > math.Abs(float64(f))*1e-3+1e-7 {
			t.Fatalf("fp16 round trip of %g = %g", f, back[i])
		}
	}
	if !math.IsInf(float64(back[1003+4]), 1) {
		t.Errorf("70000 in fp16 = %g, want +inf", back[1003+4])
	}

	g := randn(r, 5000, 1000)
	finite, err := k.UnscaleCheck(g, 1.0/1024)
	if err != nil || !finite {
		t.Fatalf("finite gradients: %v %v", finite, err)
	}
	g[4321] = float32(math.Inf(-1))
	if finite, err = k.UnscaleCheck(g, 1); err != nil || finite {
		t.Fatalf("an inf gradient: finite=%v err=%v", finite, err)
	}
}

func TestGPUGemmBF16(t *testing.T) {
	k := gpuModule(t)
	r := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct {
		ta, tb  bool
		m, n, k int
	}{{false, false, 1, 1, 1}, {false, true, 7, 63, 257}, {true, false, 64, 33, 130}, {true, true, 129, 65, 31}} {
		a32, b32 := randn(r, tc.m*tc.k, 1), randn(r, tc.k*tc.n, 1)
		a, b := make([]uint16, len(a32)), make([]uint16, len(b32))
		for i, f := range a32 {
			a[i] = bf16Round(f)
			a32[i] = math.Float32frombits(uint32(a[i]) << 16)
		}
		for i, f := range b32 {
			b[i] = bf16Round(f)
			b32[i] = math.Float32frombits(uint32(b[i]) << 16)
		}
		lda, ldb := tc.k, tc.n
		if tc.ta {
			lda = tc.m
		}
		if tc.tb {
			ldb = tc.k
		}
		c := make([]float32, tc.m*tc.n)
		if err := k.GemmBF16(tc.ta, tc.tb, tc.m, tc.n, tc.k, 1, a, lda, b, ldb, 0, c, tc.n); errors.Is(err, ErrNoGemmEx) {
			t.Skip(err)
		} else if err != nil {
			t.Fatal(err)
		}
		want := refRowMajor(tc.ta, tc.tb, tc.m, tc.n, tc.k, 1, a32, lda, b32, ldb, 0, make([]float32, tc.m*tc.n), tc.n)
		gemmClose(t, c, want, tc.k)
	}
}
