package simd

import "math"

// GeluTanh applies GELU in its tanh form to x in place, computed as
// x·sigmoid(2u) = x / (1 + e^{-2u}) with u = sqrt(2/π)·(x + 0.044715x³),
// which equals 0.5x(1 + tanh u) without its cancellation for negative x.
// On AVX-512 whole blocks of 16 run in assembly (e^{-2u} by range
// reduction and a degree-6 polynomial, a few ulp); the rest in Go.
func (k *Kernels) GeluTanh(x []float32) {
	for i := geluAsm(k.level, x); i < len(x); i++ {
		v := x[i]
		a := -2 * geluC * (v + 0.044715*v*v*v)
		x[i] = v / (1 + float32(math.Exp(float64(a))))
	}
}

const geluC = 0.7978845608028654 // sqrt(2/π)
