package simd

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestPick(t *testing.T) {
	avx512 := Features{Assembly: true, AVX2: true, FMA: true, AVX512F: true, AVX512VNNI: true, AVX512BF16: true}
	amx := avx512
	amx.AMXTile, amx.AMXInt8, amx.AMXBF16, amx.AMXPermitted, amx.AMXKernels = true, true, true, true, true
	denied := amx
	denied.AMXPermitted, denied.AMXDenied = false, "arch_prctl: operation not permitted"
	noKernels := amx
	noKernels.AMXKernels = false
	cases := map[string]struct {
		f    Features
		want Level
	}{
		"nothing":              {Features{}, Generic},
		"no assembly":          {Features{AVX2: true, FMA: true, AVX512F: true}, Generic},
		"avx2 without fma":     {Features{Assembly: true, AVX2: true}, Generic},
		"avx2":                 {Features{Assembly: true, AVX2: true, FMA: true}, AVX2},
		"avx512":               {avx512, AVX512},
		"amx":                  {amx, AMX},
		"amx denied by the OS": {denied, AVX512},
		"amx without kernels":  {noKernels, AVX512},
		"amx tile but no int8": {func() Features { f := amx; f.AMXInt8 = false; return f }(), AVX512},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := pick(tc.f); got != tc.want {
				t.Fatalf("pick = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestAMXFallback: this build ships no AMX kernels, so the dispatcher
// runs the next level on every machine and a forced AMX level fails
// clearly. (Where the CPU has AMX, CPU() also reports whether the OS
// granted tile data.)
func TestAMXFallback(t *testing.T) {
	f := CPU()
	t.Logf("cpu: %+v", f)
	if Detect() == AMX {
		t.Fatalf("Detect = amx, but no AMX kernels ship")
	}
	if _, err := New(WithLevel(AMX)); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("New(amx) error = %v, want ErrUnsupported", err)
	}
	k, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if want := pick(Features{Assembly: f.Assembly, AVX2: f.AVX2, FMA: f.FMA, AVX512F: f.AVX512F}); k.Level() != want {
		t.Fatalf("New picked %s, want %s", k.Level(), want)
	}
	if f.AMXTile && !f.AMXPermitted && f.AMXDenied == "" {
		t.Fatalf("AMX present but neither permitted nor denied")
	}
}

func TestParseLevel(t *testing.T) {
	for l := Generic; l <= AMX; l++ {
		if got, err := ParseLevel(l.String()); err != nil || got != l {
			t.Fatalf("ParseLevel(%q) = %s, %v", l, got, err)
		}
	}
	if _, err := ParseLevel("sse"); err == nil {
		t.Fatal("ParseLevel(sse) did not fail")
	}
	if _, err := New(WithThreads(0)); err == nil {
		t.Fatal("New(0 threads) did not fail")
	}
}

// TestNoAllocations: a warm call allocates nothing, on one thread or
// two (jobs, packing buffers and pool work items are recycled).
func TestNoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("under the race detector sync.Pool drops items on purpose")
	}
	const n = 200
	a, c := make([]float32, n*n), make([]float32, n*n)
	h := make([]uint16, n*n)
	i8 := make([]int8, n*n)
	scale := []float32{1}
	for _, th := range []int{1, 2} {
		k := Must(WithThreads(th))
		calls := map[string]func(){
			"sgemm": func() { k.Sgemm(false, true, n, n, n, 1, a, n, a, n, 0, c, n) },
			"bf16":  func() { k.GemmBF16(true, false, n, n, n, 1, h, n, h, n, 1, c, n) },
			"int8":  func() { k.GemmInt8(false, n, n, n, i8, n, scale, i8, n, scale, c, n) },
		}
		w := k.PackInt8(true, n, n, i8, n, scale)
		calls["int8 packed"] = func() { k.GemmInt8Packed(n, i8, n, scale, w, c, n) }
		for name, f := range calls {
			if got := testing.AllocsPerRun(20, f); got != 0 {
				t.Errorf("%s on %d threads: %v allocations a call", name, th, got)
			}
		}
	}
}

// TestRowBlocks: blocks cover the rows once, in order, in whole panels
// (but the last), their sizes within one panel of each other.
func TestRowBlocks(t *testing.T) {
	for _, mr := range []int{4, 6, 14, 32} {
		for m := 1; m < 300; m += 7 {
			for blocks := 1; blocks <= (m+mr-1)/mr && blocks < 12; blocks++ {
				next, lo, hi := 0, m, 0
				for ib := range blocks {
					i0, rows := rowBlock(ib, blocks, m, mr)
					if i0 != next || rows <= 0 || i0%mr != 0 {
						t.Fatalf("mr=%d m=%d blocks=%d: block %d is [%d, +%d), want it to start at %d", mr, m, blocks, ib, i0, rows, next)
					}
					next = i0 + rows
					if next < m {
						lo, hi = min(lo, rows), max(hi, rows)
					}
				}
				if next != m {
					t.Fatalf("mr=%d m=%d blocks=%d: blocks end at %d", mr, m, blocks, next)
				}
				if hi > 0 && hi-lo > mr {
					t.Fatalf("mr=%d m=%d blocks=%d: sizes %d to %d", mr, m, blocks, lo, hi)
				}
			}
		}
	}
}

// TestConcurrentCalls: several goroutines share one Kernels (and its
// pool) and each gets its own right answer.
func TestConcurrentCalls(t *testing.T) {
	k := Must(WithThreads(2))
	done := make(chan error, 4)
	for g := range 4 {
		go func() {
			r := rand.New(rand.NewPCG(31, uint64(g)))
			const m, n, kk = 45, 70, 90
			a, b := randF32(r, m*kk), randF32(r, kk*n)
			want := make([]float32, m*n)
			Must(WithLevel(Generic), WithThreads(1)).Sgemm(false, false, m, n, kk, 1, a, kk, b, n, 0, want, n)
			got := make([]float32, m*n)
			for range 30 {
				k.Sgemm(false, false, m, n, kk, 1, a, kk, b, n, 0, got, n)
				for i := range got {
					if d := got[i] - want[i]; d > 1e-4 || d < -1e-4 {
						done <- fmt.Errorf("goroutine %d: C[%d] = %g, want %g", g, i, got[i], want[i])
						return
					}
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
