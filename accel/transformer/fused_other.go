//go:build !amd64

package transformer

var useAVX512Exp = false

// expShift sets dst[i] = exp(src[i] - m) (dst may be src).
func expShift(dst, src []float32, m float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = expf(v - m)
	}
}
