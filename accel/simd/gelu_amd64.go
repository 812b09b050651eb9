//go:build amd64 && !purego

package simd

import "unsafe"

//go:noescape
func geluTanhAVX512(x unsafe.Pointer, blocks int)

// geluAsm does the first len(x)/16·16 elements of GeluTanh at level l and
// returns how many it did.
func geluAsm(l Level, x []float32) int {
	if l < AVX512 || len(x) < 16 {
		return 0
	}
	geluTanhAVX512(unsafe.Pointer(&x[0]), len(x)/16)
	return len(x) &^ 15
}
