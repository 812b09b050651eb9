//go:build !amd64 || purego

package simd

func rowsAsm(Level, int) bool { return false }

func dotRowsAsm([]float32, []float32, int, []float32, bool) {
	panic("simd: no row kernels in this build")
}

func axpyRowsAsm([]float32, []float32, int, []float32) { panic("simd: no row kernels in this build") }

func colsAsm(Level, int) bool { return false }

func dotColsAsm([]float32, []float32, int, []float32, bool) {
	panic("simd: no column kernels in this build")
}

func prefetchAsm([]float32) {}
