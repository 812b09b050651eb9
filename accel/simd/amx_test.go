package simd

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestAMXDrivers runs GemmInt8 and GemmBF16 through the AMX drivers
// (packing, 32×32 tiles, k padding, edges, scales, alpha and beta) on
// the Go doubles of the tile products, against the references of the
// other kernels, with their tolerances. The tile assembly itself needs an
// AMX CPU (TestAMXTilesOnHardware).
func TestAMXDrivers(t *testing.T) {
	for _, th := range []int{1, 2} {
		k, err := New(WithThreads(th), withAMXGo())
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(13, uint64(th)))
		for _, s := range [][3]int{{1, 1, 1}, {7, 33, 65}, {40, 31, 130}, {33, 64, 600}, {70, 7, 3}} {
			m, n, kk := s[0], s[1], s[2]
			for _, tB := range []bool{false, true} {
				checkInt8(t, k, r, tB, m, n, kk, kk%3, m%2 == 0, n%2 == 0)
				for _, tA := range []bool{false, true} {
					checkBF16(t, k, r, gemmCase{transA: tA, transB: tB, m: m, n: n, k: kk, pad: 1, alpha: 0.5, beta: float32(kk % 2)})
				}
			}
		}
	}
}

// TestAMXTilesOnHardware compares the assembly tile products with their
// Go doubles where the CPU has AMX (skipped elsewhere).
func TestAMXTilesOnHardware(t *testing.T) {
	f := CPU()
	if !f.AMXTile || !f.AMXInt8 || !f.AMXBF16 || !f.AVX512F {
		t.Skip("the CPU has no AMX")
	}
	if !f.AMXPermitted {
		t.Skipf("the OS refused AMX tile data: %s", f.AMXDenied)
	}
	i8, bf := amxTiles()
	r := rand.New(rand.NewPCG(17, 0))
	const steps, lda = 3, 3*64 + 8
	a := make([]byte, 32*lda)
	b := make([]byte, steps*2048)
	for i := range a {
		a[i] = byte(r.IntN(256))
	}
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	var got, want [32 * 32]int32
	cfg := unsafe.Pointer(&amxConfig)
	i8(cfg, unsafe.Pointer(&a[0]), lda, unsafe.Pointer(&b[0]), steps, unsafe.Pointer(&got[0]))
	amxInt8TileGo(cfg, unsafe.Pointer(&a[0]), lda, unsafe.Pointer(&b[0]), steps, unsafe.Pointer(&want[0]))
	if got != want {
		t.Fatalf("TDPBSSD tile differs from its Go double")
	}
	// bf16: values with few mantissa bits, so both sums are exact.
	ah, bh := unsafe.Slice((*uint16)(unsafe.Pointer(&a[0])), len(a)/2), unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), len(b)/2)
	for i := range ah {
		ah[i] = bf16(float32(r.IntN(16) - 8))
	}
	for i := range bh {
		bh[i] = bf16(float32(r.IntN(16) - 8))
	}
	var gf, wf [32 * 32]float32
	bf(cfg, unsafe.Pointer(&a[0]), lda, unsafe.Pointer(&b[0]), steps, unsafe.Pointer(&gf[0]))
	amxBF16TileGo(cfg, unsafe.Pointer(&a[0]), lda, unsafe.Pointer(&b[0]), steps, unsafe.Pointer(&wf[0]))
	if gf != wf {
		t.Fatalf("TDPBF16PS tile differs from its Go double")
	}
}
