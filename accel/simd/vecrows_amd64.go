//go:build amd64 && !purego

package simd

import "unsafe"

// The assembly of vecrows_amd64.s (written by hand: short loops).

//go:noescape
func dotRowsAVX512(x, a, out unsafe.Pointer, blocks, rows, lda, add int)

//go:noescape
func axpyRowsAVX512(alpha, a, y unsafe.Pointer, blocks, rows, lda int)

//go:noescape
func dotColsAVX512(x, a, out unsafe.Pointer, blocks, rows, lda, add int)

//go:noescape
func prefetchLines(p unsafe.Pointer, lines int)

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

// colsAsm reports whether DotCols of n columns runs in assembly at level
// l (whole blocks of 16 columns; the rest in Go).
func colsAsm(l Level, n int) bool { return l >= AVX512 && n >= 16 }

// dotColsAsm does the first len(out)/16·16 columns of DotCols.
func dotColsAsm(x, a []float32, lda int, out []float32, add bool) {
	ad := 0
	if add {
		ad = 1
	}
	dotColsAVX512(unsafe.Pointer(&x[0]), unsafe.Pointer(&a[0]), unsafe.Pointer(&out[0]), len(out)/16, len(x), lda, ad)
}

func prefetchAsm(x []float32) {
	if len(x) > 0 {
		prefetchLines(unsafe.Pointer(&x[0]), (len(x)+15)/16)
	}
}
