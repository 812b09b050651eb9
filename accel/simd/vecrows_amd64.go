//go:build amd64 && !purego

package simd

import "unsafe"

// The assembly of vecrows_amd64.s (written by hand: two short loops).

//go:noescape
func dotRowsAVX512(x, a, out unsafe.Pointer, blocks, rows, lda, add int)

//go:noescape
func axpyRowsAVX512(alpha, a, y unsafe.Pointer, blocks, rows, lda int)

// rowsAsm reports whether DotRows and AxpyRows of rows of n elements run
// in assembly at level l.
func rowsAsm(l Level, n int) bool { return l >= AVX512 && n > 0 && n%16 == 0 }

func dotRowsAsm(x, a []float32, lda int, out []float32, add bool) {
	ad := 0
	if add {
		ad = 1
	}
	dotRowsAVX512(unsafe.Pointer(&x[0]), unsafe.Pointer(&a[0]), unsafe.Pointer(&out[0]), len(x)/16, len(out), lda, ad)
}

func axpyRowsAsm(alpha, a []float32, lda int, y []float32) {
	axpyRowsAVX512(unsafe.Pointer(&alpha[0]), unsafe.Pointer(&a[0]), unsafe.Pointer(&y[0]), len(y)/16, len(alpha), lda)
}
