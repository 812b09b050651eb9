package simd

import (
	"math"
	"unsafe"
)

// MaxAbs returns the largest |x[i]| (0 for an empty x). NaNs are skipped
// where the vector kernel runs and may be skipped or kept elsewhere; the
// result of a row holding NaN is not meaningful.
func MaxAbs(x []float32) float32 {
	var mx float32
	i := 0
	if hasAVX512 && len(x) >= 16 {
		var lanes [16]float32
		n := len(x) / 16
		maxAbsAVX512(unsafe.Pointer(&x[0]), n, unsafe.Pointer(&lanes[0]))
		for _, v := range lanes {
			mx = max(mx, v)
		}
		i = n * 16
	}
	for _, v := range x[i:] {
		mx = max(mx, float32(math.Abs(float64(v))))
	}
	return mx
}

// QuantizeInt8 writes src[i]·inv, clamped to [-127, 127] and rounded to
// the nearest integer (halves to even), into dst: the symmetric INT8
// quantization of activations with scale 1/inv. It panics when dst is
// shorter than src.
func QuantizeInt8(dst []int8, src []float32, inv float32) {
	if len(dst) < len(src) {
		panic("simd: QuantizeInt8 destination is shorter than its source")
	}
	i := 0
	if hasAVX512 && len(src) >= 16 {
		n := len(src) / 16
		quantAVX512(unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[0]), n, inv)
		i = n * 16
	}
	for ; i < len(src); i++ {
		dst[i] = quantInt8(src[i], inv)
	}
}

// quantInt8 is one element of QuantizeInt8.
func quantInt8(v, inv float32) int8 {
	f := max(-127, min(127, v*inv))
	return int8(math.RoundToEven(float64(f)))
}
