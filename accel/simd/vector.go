package simd

import "fmt"

// Dot returns Σ x[i]·y[i]. It panics when the lengths differ.
func (k *Kernels) Dot(x, y []float32) float32 {
	if len(x) != len(y) {
		panic(fmt.Sprintf("simd: Dot of %d and %d elements", len(x), len(y)))
	}
	s, done := dotBlocks(k.level, x, y)
	for i := done; i < len(x); i++ {
		s += x[i] * y[i]
	}
	return s
}

// Axpy sets y += alpha·x. It panics when the lengths differ.
func (k *Kernels) Axpy(alpha float32, x, y []float32) {
	if len(x) != len(y) {
		panic(fmt.Sprintf("simd: Axpy of %d and %d elements", len(x), len(y)))
	}
	for i := axpyBlocks(k.level, alpha, x, y); i < len(x); i++ {
		y[i] += alpha * x[i]
	}
}

// Scale sets x *= alpha.
func (k *Kernels) Scale(alpha float32, x []float32) {
	for i := scaleBlocks(k.level, alpha, x); i < len(x); i++ {
		x[i] *= alpha
	}
}

// DotRows sets out[j] to the dot product of x with row j of a, for
// len(out) rows of len(x) elements lda apart (an attention head's block
// of keys against its query; a matrix-vector product with the matrix
// stored by rows), or adds it to out[j] when add is set. It panics when
// lda < len(x) or a is too short.
func (k *Kernels) DotRows(x, a []float32, lda int, out []float32, add bool) {
	n := len(x)
	if err := rowsCheck("DotRows", len(out), n, lda, len(a)); err != "" {
		panic(err)
	}
	if len(out) == 0 {
		return
	}
	if rowsAsm(k.level, n) {
		dotRowsAsm(x, a, lda, out, add)
		return
	}
	for j := range out {
		v := k.Dot(x, a[j*lda:j*lda+n])
		if add {
			v += out[j]
		}
		out[j] = v
	}
}

// AxpyRows adds alpha[j] times row j of a to y, for len(alpha) rows of
// len(y) elements lda apart (an attention head's softmax weights over a
// block of values; a vector-matrix product, the matrix stored by rows,
// over a range of its columns). It panics when lda < len(y) or a is too
// short.
func (k *Kernels) AxpyRows(alpha, a []float32, lda int, y []float32) {
	n := len(y)
	if err := rowsCheck("AxpyRows", len(alpha), n, lda, len(a)); err != "" {
		panic(err)
	}
	if len(alpha) == 0 {
		return
	}
	if rowsAsm(k.level, n) {
		axpyRowsAsm(alpha, a, lda, y)
		return
	}
	for j, s := range alpha {
		k.Axpy(s, a[j*lda:j*lda+n], y)
	}
}

// rowsCheck describes what is wrong with rows rows of n elements lda
// apart in a matrix of size elements, or returns "".
func rowsCheck(op string, rows, n, lda, size int) string {
	if lda < n || (rows > 0 && size < (rows-1)*lda+n) {
		return fmt.Sprintf("simd: %s of %d rows of %d elements, %d apart, from %d", op, rows, n, lda, size)
	}
	return ""
}
