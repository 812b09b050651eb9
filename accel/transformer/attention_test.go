package transformer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// refAttention is the float64 reference for one head of attention:
// out, lse and, given dout, the gradients of q, k and v.
func refAttention(q, k, v, dout [][]float64, pat attnPattern) (out [][]float64, lse []float64, dq, dk, dv [][]float64) {
	T, hd := len(q), len(q[0])
	scale := 1 / math.Sqrt(float64(hd))
	p := make([][]float64, T)
	out, lse = make([][]float64, T), make([]float64, T)
	for i := range T {
		p[i] = make([]float64, T)
		mx := math.Inf(-1)
		for j := range T {
			if !pat.visible(i, j) {
				continue
			}
			var s float64
			for d := range hd {
				s += q[i][d] * k[j][d]
			}
			p[i][j] = s * scale
			mx = math.Max(mx, p[i][j])
		}
		var sum float64
		for j := range T {
			if pat.visible(i, j) {
				sum += math.Exp(p[i][j] - mx)
			}
		}
		lse[i] = mx + math.Log(sum)
		out[i] = make([]float64, hd)
		for j := range T {
			if !pat.visible(i, j) {
				p[i][j] = 0
				continue
			}
			p[i][j] = math.Exp(p[i][j] - lse[i])
			for d := range hd {
				out[i][d] += p[i][j] * v[j][d]
			}
		}
	}
	mat := func() [][]float64 {
		m := make([][]float64, T)
		for i := range m {
			m[i] = make([]float64, hd)
		}
		return m
	}
	dq, dk, dv = mat(), mat(), mat()
	for i := range T {
		dp := make([]float64, T)
		var dot float64
		for j := range T {
			for d := range hd {
				dp[j] += dout[i][d] * v[j][d]
				dv[j][d] += p[i][j] * dout[i][d]
			}
			dot += p[i][j] * dp[j]
		}
		for j := range T {
			ds := p[i][j] * (dp[j] - dot) * scale
			for d := range hd {
				dq[i][d] += ds * k[j][d]
				dk[j][d] += ds * q[i][d]
			}
		}
	}
	return
}

// checkAttention runs head 1 of a two-head packed layout (so that the
// column offsets matter) against refAttention. Tolerance for float32:
// |got - want| <= 2e-5·(1 + |want|)·sqrt(hd).
func checkAttention(t *testing.T, tk Kernels, r *rand.Rand, T, hd int, pat attnPattern) {
	t.Helper()
	const H = 2
	D := H * hd
	qkv := randSlice(r, T*3*D)
	dout := randSlice(r, T*D)
	out := make([]float32, T*D)
	lse := make([]float32, T)
	dqkv := make([]float32, T*3*D)
	h := attnHead{T: T, hd: hd, qkvStride: 3 * D, outStride: D, qOff: hd, kOff: D + hd, vOff: 2*D + hd, oOff: hd,
		scale: float32(1 / math.Sqrt(float64(hd))), pat: pat}
	attnForward(tk, h, qkv, out, lse)
	attnBackward(tk, h, qkv, out, lse, dout, dqkv)
	col := func(buf []float32, stride, off int) [][]float64 {
		m := make([][]float64, T)
		for i := range T {
			m[i] = make([]float64, hd)
			for d := range hd {
				m[i][d] = float64(buf[i*stride+off+d])
			}
		}
		return m
	}
	wOut, wLse, wdq, wdk, wdv := refAttention(col(qkv, 3*D, h.qOff), col(qkv, 3*D, h.kOff), col(qkv, 3*D, h.vOff), col(dout, D, hd), pat)
	tol := func(want float64) float64 { return 2e-5 * (1 + math.Abs(want)) * math.Sqrt(float64(hd)) }
	cmp := func(name string, got, want [][]float64) {
		for i := range T {
			for d := range hd {
				if math.Abs(got[i][d]-want[i][d]) > tol(want[i][d]) {
					t.Fatalf("%s[%d][%d] = %v, want %v", name, i, d, got[i][d], want[i][d])
				}
			}
		}
	}
	cmp("out", col(out, D, hd), wOut)
	for i := range T {
		if math.Abs(float64(lse[i])-wLse[i]) > tol(wLse[i]) {
			t.Fatalf("lse[%d] = %v, want %v", i, lse[i], wLse[i])
		}
	}
	cmp("dq", col(dqkv, 3*D, h.qOff), wdq)
	cmp("dk", col(dqkv, 3*D, h.kOff), wdk)
	cmp("dv", col(dqkv, 3*D, h.vOff), wdv)
	// Head 0's columns are untouched.
	for i := range T {
		for d := range hd {
			if out[i*D+d] != 0 || dqkv[i*3*D+d] != 0 {
				t.Fatalf("head 0 column written at row %d", i)
			}
		}
	}
}

func TestAttentionAgainstFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	pats := map[string]attnPattern{
		"causal":           {},
		"window5":          {window: 5},
		"window5+global3":  {window: 5, global: 3},
		"window70+global1": {window: 70, global: 1},
		"window1":          {window: 1},
	}
	for kname, k := range testKernels() {
		tk := tileKernels(k)
		for _, T := range []int{1, 7, 63, 65, 257} {
			for _, hd := range []int{1, 7, 64} {
				for pname, pat := range pats {
					t.Run(fmt.Sprintf("%s/T=%d/hd=%d/%s", kname, T, hd, pname), func(t *testing.T) {
						checkAttention(t, tk, r, T, hd, pat)
					})
				}
			}
		}
	}
}

// FuzzAttention checks random shapes and patterns against the reference.
func FuzzAttention(f *testing.F) {
	f.Add(uint8(17), uint8(3), uint8(0), uint8(0), uint64(1))
	f.Add(uint8(65), uint8(8), uint8(9), uint8(2), uint64(2))
	f.Add(uint8(1), uint8(1), uint8(1), uint8(1), uint64(3))
	f.Add(uint8(130), uint8(5), uint8(64), uint8(0), uint64(4))
	f.Fuzz(func(t *testing.T, T, hd, window, global uint8, seed uint64) {
		if T == 0 || hd == 0 || hd > 32 {
			t.Skip()
		}
		pat := attnPattern{window: int(window)}
		if window > 0 {
			pat.global = int(global % 8)
		}
		for _, k := range testKernels() {
			checkAttention(t, tileKernels(k), rand.New(rand.NewPCG(seed, 5)), int(T), int(hd), pat)
		}
	})
}

// TestAttnPatternMirrorsConfig checks the kernel's mask against
// Config.Visible, that blockVisible never skips a block with a visible
// pair and that blockFull never skips the mask of a block that needs one.
func TestAttnPatternMirrorsConfig(t *testing.T) {
	for _, wg := range [][2]int{{0, 0}, {1, 0}, {3, 0}, {3, 2}, {16, 1}, {40, 5}} {
		c := Config{AttnWindow: wg[0], AttnGlobal: wg[1]}
		p := attnPattern{window: wg[0], global: wg[1]}
		for q := range 100 {
			for k := range 100 {
				if c.Visible(q, k) != p.visible(q, k) {
					t.Fatalf("window %d global %d: (%d,%d) config %v, kernel %v", wg[0], wg[1], q, k, c.Visible(q, k), p.visible(q, k))
				}
			}
		}
		for q0 := 0; q0 < 100; q0 += 7 {
			for k0 := 0; k0 < 100; k0 += 5 {
				q1, k1 := q0+7, k0+5
				any, all := false, true
				for q := q0; q < q1; q++ {
					for k := k0; k < k1; k++ {
						any = any || p.visible(q, k)
						all = all && p.visible(q, k)
					}
				}
				if p.blockFull(q0, q1, k0, k1) && !all {
					t.Fatalf("window %d global %d: block q[%d,%d) k[%d,%d) called full but has masked pairs", wg[0], wg[1], q0, q1, k0, k1)
				}
				if any && !p.blockVisible(q0, q1, k0, k1) {
					t.Fatalf("window %d global %d: block q[%d,%d) k[%d,%d) skipped but has visible pairs", wg[0], wg[1], q0, q1, k0, k1)
				}
			}
		}
	}
}
