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
