package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/llmesh/llmesh/accel/transformer"
)

func TestOpenMissingDriver(t *testing.T) {
	_, err := Open(WithDriverLibrary("libcuda-llmesh-missing.so.1"))
	if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), "no CUDA device: dlopen libcuda-llmesh-missing.so.1") {
		t.Fatalf("Open of a missing driver: err = %v, want ErrNoDevice naming the library", err)
	}
}

func TestOpenDefault(t *testing.T) {
	d, err := Open()
	if err == nil {
		t.Logf("device found: %s", d)
		d.Close()
		t.Skip("a CUDA device is present: the no-device path is covered by TestOpenMissingDriver")
	}
	if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), "libcuda.so.1") {
		t.Fatalf("Open: err = %v, want ErrNoDevice naming libcuda.so.1", err)
	}
	t.Logf("Open: %v", err)
}

func TestFindMissing(t *testing.T) {
	_, err := Find([]string{"libllmesh-missing-a.so", "libllmesh-missing-b.so"})
	if err == nil || !strings.Contains(err.Error(), "libllmesh-missing-a.so") || !strings.Contains(err.Error(), "libllmesh-missing-b.so") {
		t.Fatalf("Find: err = %v, want both libraries named", err)
	}
}

// refColMajor is cublasSgemm's contract on CPU slices: column-major
// C = alpha·op(A)·op(B) + beta·C, element (i, j) of X at x[i + j·ldx],
// op(A) m×k, op(B) k×n. It panics where cuBLAS returns
// CUBLAS_STATUS_INVALID_VALUE, and does not read C when beta is 0.
func refColMajor(transa, transb int32, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	rowsA, rowsB := m, k // rows of A and B as stored
	if transa == opT {
		rowsA = k
	}
	if transb == opT {
		rowsB = n
	}
	if m < 0 || n < 0 || k < 0 || lda < max(1, rowsA) || ldb < max(1, rowsB) || ldc < max(1, m) {
		panic(fmt.Sprintf("CUBLAS_STATUS_INVALID_VALUE: m=%d n=%d k=%d lda=%d ldb=%d ldc=%d", m, n, k, lda, ldb, ldc))
	}
	at := func(i, p int) float64 {
		if transa == opT {
			return float64(a[p+i*lda])
		}
		return float64(a[i+p*lda])
	}
	bt := func(p, j int) float64 {
		if transb == opT {
			return float64(b[j+p*ldb])
		}
		return float64(b[p+j*ldb])
	}
	for j := range n {
		for i := range m {
			var s float64
			for p := range k {
				s += at(i, p) * bt(p, j)
			}
			v := float64(alpha) * s
			if beta != 0 {
				v += float64(beta) * float64(c[i+j*ldc])
			}
			c[i+j*ldc] = float32(v)
		}
	}
}

// refRowMajor is transformer.Kernels' Sgemm in float64, element by
// element, straight from its definition.
func refRowMajor(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, len(c))
	for i := range c {
		out[i] = float64(c[i])
	}
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
			out[i*ldc+j] = v
		}
	}
	return out
}

type gemmCase struct {
	transA, transB bool
	m, n, k        int
	padA, padB     int // extra row stride
	padC           int
	alpha, beta    float32
}

// gemmCases is every transpose pair over odd shapes, tight and padded
// strides, and the alpha/beta values the runtime uses plus odd ones.
func gemmCases() map[string]gemmCase {
	cases := map[string]gemmCase{}
	shapes := [][3]int{{1, 1, 1}, {3, 5, 7}, {7, 3, 5}, {17, 13, 1}, {1, 31, 9}, {33, 1, 65}, {65, 67, 63}}
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for si, s := range shapes {
				for _, pad := range []int{0, 3} {
					alpha, beta := float32(1), float32(0)
					switch si % 3 {
					case 1:
						beta = 1
					case 2:
						alpha, beta = -0.75, 0.5
					}
					name := fmt.Sprintf("tA=%v/tB=%v/%dx%dx%d/pad=%d/alpha=%g/beta=%g", tA, tB, s[0], s[1], s[2], pad, alpha, beta)
					cases[name] = gemmCase{tA, tB, s[0], s[1], s[2], pad, 2 * pad, pad + 1, alpha, beta}
				}
			}
		}
	}
	return cases
}

// gapValue fills the gaps between C's rows (ldc > n): they must come
// back unchanged.
const gapValue = -7777

// operands makes random A, B and C for tc, with gapValue in C's gaps and
// NaN in the rest of C when beta is 0 (it must not be read).
func (tc gemmCase) operands(r *rand.Rand) (a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	ra, ca := tc.m, tc.k
	if tc.transA {
		ra, ca = tc.k, tc.m
	}
	rb, cb := tc.k, tc.n
	if tc.transB {
		rb, cb = tc.n, tc.k
	}
	lda, ldb, ldc = ca+tc.padA, cb+tc.padB, tc.n+tc.padC
	fill := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		return x
	}
	a, b = fill(ra*lda), fill(rb*ldb)
	c = fill(tc.m * ldc)
	for i := range tc.m {
		for j := range ldc {
			switch {
			case j >= tc.n:
				c[i*ldc+j] = gapValue
			case tc.beta == 0:
				c[i*ldc+j] = float32(math.NaN())
			}
		}
	}
	return
}

// gemmClose compares got with want: gapValue exactly where want has it
// (the gaps), otherwise within 1e-5·(k+1) of the largest |entry|.
func gemmClose(t *testing.T, got []float32, want []float64, k int) {
	t.Helper()
	if err := gemmDiff(got, want, k); err != nil {
		t.Fatal(err)
	}
}

func gemmDiff(got []float32, want []float64, k int) error {
	scale := 1.0
	for _, w := range want {
		if w != gapValue {
			scale = max(scale, math.Abs(w))
		}
	}
	tol := 1e-5 * float64(k+1) * scale
	for i := range want {
		g := float64(got[i])
		if want[i] == gapValue {
			if g != gapValue {
				return fmt.Errorf("element %d: got %g, want the gap left as it was (%d)", i, g, gapValue)
			}
			continue
		}
		if math.IsNaN(g) || math.Abs(g-want[i]) > tol {
			return fmt.Errorf("element %d: got %g, want %g (tolerance %g)", i, g, want[i], tol)
		}
	}
	return nil
}

// TestColMajorArgs checks the row-major to column-major mapping alone:
// the cuBLAS call it produces, run by a CPU model of cuBLAS on the
// caller's row-major buffers, computes the row-major product.
func TestColMajorArgs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for name, tc := range gemmCases() {
		t.Run(name, func(t *testing.T) {
			a, lda, b, ldb, c, ldc := tc.operands(r)
			want := refRowMajor(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
			g := colMajorArgs(tc.transA, tc.transB, tc.m, tc.n, tc.k, lda, ldb, ldc)
			refColMajor(g.transa, g.transb, g.m, g.n, g.k, tc.alpha, b, g.lda, a, g.ldb, tc.beta, c, g.ldc)
			gemmClose(t, c, want, tc.k)
		})
	}
}

// fakeDevice is a gemmDevice over Go slices: slots hold whatever was last
// uploaded, start as NaN garbage, and its sgemm is refColMajor.
type fakeDevice struct {
	slots [3][]float32
	calls int
}

func (f *fakeDevice) grow(slot, n int) {
	for len(f.slots[slot]) < n {
		f.slots[slot] = append(f.slots[slot], float32(math.NaN()))
	}
}

func (f *fakeDevice) upload(slot int, src []float32) error {
	f.grow(slot, len(src))
	copy(f.slots[slot], src)
	return nil
}

func (f *fakeDevice) download(dst []float32, slot int) error {
	if len(f.slots[slot]) < len(dst) {
		return fmt.Errorf("download of %d from a slot of %d", len(dst), len(f.slots[slot]))
	}
	copy(dst, f.slots[slot])
	return nil
}

func (f *fakeDevice) sgemm(g gemmArgs, alpha, beta float32) error {
	f.calls++
	f.grow(slotC, (g.n-1)*g.ldc+g.m)
	refColMajor(g.transa, g.transb, g.m, g.n, g.k, alpha, f.slots[slotB], g.lda, f.slots[slotA], g.ldb, beta, f.slots[slotC], g.ldc)
	return nil
}

// TestSgemmVia runs the host side of the cuBLAS Sgemm (copy spans, when C
// goes up, the copy back) over a simulated device and compares with the
// portable kernels, including NaN in C's gaps and in C when beta is 0.
func TestSgemmVia(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	portable := transformer.PortableKernels()
	cases := gemmCases()
	cases["k=0/beta=0.5"] = gemmCase{m: 3, n: 4, k: 0, padC: 2, alpha: 1, beta: 0.5}
	cases["k=0/beta=0"] = gemmCase{m: 3, n: 4, k: 0, padC: 2, alpha: 1, beta: 0}
	cases["alpha=0/beta=1"] = gemmCase{transA: true, m: 5, n: 3, k: 4, padC: 1, alpha: 0, beta: 1}
	cases["m=0"] = gemmCase{m: 0, n: 3, k: 4, alpha: 1}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a, lda, b, ldb, c, ldc := tc.operands(r)
			want := refRowMajor(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
			wantP := append([]float32(nil), c...)
			portable.Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, wantP, ldc)
			dev := &fakeDevice{}
			checkGemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, a, lda, b, ldb, c, ldc)
			if err := sgemmVia(dev, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc); err != nil {
				t.Fatal(err)
			}
			gemmClose(t, c, want, tc.k)
			for i := range c {
				if d := math.Abs(float64(c[i] - wantP[i])); !(d <= 1e-4*float64(tc.k+1)*max(1, math.Abs(float64(wantP[i])))) {
					t.Fatalf("element %d: %g here, %g from the portable kernels", i, c[i], wantP[i])
				}
			}
			if wantCalls := tc.m > 0 && tc.k > 0 && tc.alpha != 0; (dev.calls == 1) != wantCalls {
				t.Errorf("device sgemm calls = %d, want a call: %v", dev.calls, wantCalls)
			}
		})
	}
}

func TestCheckGemmPanics(t *testing.T) {
	cases := map[string]func(){
		"short a": func() {
			checkGemm(false, false, 2, 2, 2, make([]float32, 3), 2, make([]float32, 4), 2, make([]float32, 4), 2)
		},
		"small lda": func() {
			checkGemm(true, false, 3, 2, 2, make([]float32, 6), 2, make([]float32, 4), 2, make([]float32, 6), 2)
		},
		"negative": func() { checkGemm(false, false, -1, 2, 2, nil, 2, nil, 2, nil, 2) },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

func TestPackArgs(t *testing.T) {
	vals, err := packArgs([]any{DevicePtr(0x1122334455667788), 7, int32(-2), uint32(9), float32(1.5), true, false})
	if err != nil {
		t.Fatal(err)
	}
	u64 := func(v kernelArg) uint64 {
		var x uint64
		for i := 7; i >= 0; i-- {
			x = x<<8 | uint64(v[i])
		}
		return x
	}
	want := []uint64{0x1122334455667788, 7, uint64(uint32(0xfffffffe)), 9, uint64(math.Float32bits(1.5)), 1, 0}
	for i, w := range want {
		if got := u64(vals[i]); got != w {
			t.Errorf("argument %d = %#x, want %#x", i, got, w)
		}
	}
	if _, err := packArgs([]any{1.5}); err == nil || !strings.Contains(err.Error(), "float64") {
		t.Errorf("float64 argument: err = %v, want it refused", err)
	}
	if _, err := packArgs([]any{1 << 40}); err == nil {
		t.Error("an int beyond 32 bits was accepted")
	}
}

// TestSources checks that every kernel file is embedded and defines, as
// extern "C", each kernel the Go side launches.
func TestSources(t *testing.T) {
	files := map[string][]string{
		"kernels/gelu.cu":         {"gelu_forward", "gelu_backward"},
		"kernels/softmax_xent.cu": {"softmax_xent"},
		"kernels/layernorm.cu":    {"layernorm_forward"},
		"kernels/adamw.cu":        {"adamw_update"},
		"kernels/attention.cu":    {"flash_attn_forward", "attn_row_dot", "flash_attn_backward_dq", "flash_attn_backward_dkv"},
		"kernels/precision.cu":    {"f32_to_bf16", "bf16_to_f32", "f32_to_f16", "f16_to_f32", "unscale_check"},
	}
	for name, kernels := range files {
		t.Run(name, func(t *testing.T) {
			src, err := Sources.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if len(strings.TrimSpace(string(src))) == 0 {
				t.Fatal("empty")
			}
			for _, k := range kernels {
				if !strings.Contains(string(src), `extern "C" __global__ void `+k+"(") {
					t.Errorf("no extern \"C\" kernel %s", k)
				}
			}
			if strings.Contains(string(src), "#include") {
				t.Error("includes a header: NVRTC is given none")
			}
		})
	}
	all, err := source()
	if err != nil || len(all) == 0 {
		t.Fatalf("source: %d bytes, %v", len(all), err)
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Op: "cuMemAlloc_v2", Code: 2, Name: "CUDA_ERROR_OUT_OF_MEMORY"}
	if got, want := e.Error(), "cuMemAlloc_v2: CUDA_ERROR_OUT_OF_MEMORY (2)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
