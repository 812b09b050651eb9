package simd

import "math"

// BF16 values are stored as uint16: the top half of a float32 (sign,
// 8 exponent bits, 7 mantissa bits).

// ToBF16 rounds src to bfloat16 into dst (to nearest, ties to even; NaNs
// stay NaN; AVX-512 where the CPU has it, with the same results). It
// panics when dst is shorter than src.
func ToBF16(dst []uint16, src []float32) {
	if len(dst) < len(src) {
		panic("simd: ToBF16 destination is shorter than its source")
	}
	for i := toBF16Blocks(dst, src); i < len(src); i++ {
		dst[i] = bf16(src[i])
	}
}

func bf16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40 // quiet NaN
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// FromBF16 widens src into dst (exact). It panics when dst is shorter
// than src.
func FromBF16(dst []float32, src []uint16) {
	if len(dst) < len(src) {
		panic("simd: FromBF16 destination is shorter than its source")
	}
	for i := fromBF16Blocks(dst, src); i < len(src); i++ {
		dst[i] = widen(src[i])
	}
}

// GemmBF16 computes C = alpha·op(A)·op(B) + beta·C with A and B in
// bfloat16 and C in float32, accumulating in float32 (mixed-precision
// training). Shapes and strides are those of Sgemm. On AVX-512 BF16 it
// runs VDPBF16PS (on AMX, TDPBF16PS), which sums each pair of products
// before adding it (so results can differ from a sequential float32 sum
// by float32 rounding); elsewhere B and A are widened to float32 while
// packing and the float32 kernel runs.
func (k *Kernels) GemmBF16(transA, transB bool, m, n, kk int, alpha float32, a []uint16, lda int, b []uint16, ldb int, beta float32, c []float32, ldc int) {
	checkGemm("gemm bf16", transA, transB, m, n, kk, len(a), lda, len(b), ldb, len(c), ldc)
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || kk == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	j := gemmJobs.Get().(*gemmJob)
	*j = gemmJob{g: k.f32, kind: kindBF16Wide, transA: transA, transB: transB, m: m, n: n, k: kk,
		alpha: alpha, beta: beta, ah: a, bh: b, lda: lda, ldb: ldb, c: c, ldc: ldc}
	switch k.bf16 {
	case bf16Pairs:
		j.g, j.kind = bf16Geometry(), kindBF16Pairs
	case bf16AMX:
		j.g, j.kind, j.amx = amxGeometry, kindBF16AMX, k.amxBF
	}
	k.runGemm(j)
	*j = gemmJob{}
	gemmJobs.Put(j)
}
