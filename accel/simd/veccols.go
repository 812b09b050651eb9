package simd

// DotCols sets out[j] to the dot product of x with column j of a, for
// len(out) columns of len(x) rows lda apart (xᵀ·A: an attention head's
// query against a block of keys stored dimension-major, one row of len(out)
// positions per dimension), or adds it to out[j] when add is set. Unlike
// DotRows it needs no horizontal sums: each row of a is one broadcast
// multiply-add into a vector of columns. It panics when lda < len(out) or
// a is too short.
func (k *Kernels) DotCols(x, a []float32, lda int, out []float32, add bool) {
	n := len(out)
	if err := rowsCheck("DotCols", len(x), n, lda, len(a)); err != "" {
		panic(err)
	}
	if len(x) == 0 {
		if !add {
			clear(out)
		}
		return
	}
	done := 0
	if colsAsm(k.level, n) {
		dotColsAsm(x, a, lda, out, add)
		done = n &^ 15
	}
	if done == n {
		return
	}
	o := out[done:n]
	if !add {
		clear(o)
	}
	for c, v := range x {
		row := a[c*lda+done : c*lda+n]
		for j, av := range row {
			o[j] += v * av
		}
	}
}

// Prefetch hints that x will be read soon (on AVX-512 machines, one
// prefetch per cache line; elsewhere nothing), so that a kernel about to
// stream a block of memory the hardware prefetcher has not seen (a page of
// a paged cache) finds it on its way.
func (k *Kernels) Prefetch(x []float32) {
	if k.level >= AVX512 {
		prefetchAsm(x)
	}
}
