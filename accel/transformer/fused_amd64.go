package transformer

import "golang.org/x/sys/cpu"

// useAVX512Exp selects the AVX-512 exponential; tests turn it off to run
// the portable path.
var useAVX512Exp = cpu.X86.HasAVX512F

//go:noescape
func expShiftAVX512(dst, src *float32, n int, m float32)

// expShift sets dst[i] = exp(src[i] - m) (dst may be src). Inputs below
// -110 (and -Inf) give 0; the vector path clamps inputs above 88.7, where
// float32 exp overflows anyway.
func expShift(dst, src []float32, m float32) {
	dst = dst[:len(src)]
	i := 0
	if useAVX512Exp && len(src) >= 16 {
		i = len(src) &^ 15
		expShiftAVX512(&dst[0], &src[0], i, m)
	}
	for ; i < len(src); i++ {
		dst[i] = expf(src[i] - m)
	}
}
