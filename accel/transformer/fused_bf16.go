package transformer

import (
	"sync"

	"github.com/llmesh/llmesh/accel/simd"
)

// BF16 mixed precision (Model.SetBF16): every matrix product of the layers
// and heads takes both operands rounded to bfloat16 and accumulates in
// float32. With kernels that offer GemmBF16 (accel/simd: VDPBF16PS where
// the CPU has AVX-512 BF16, widening while packing elsewhere) the operands
// travel to the product as bf16; with other kernels they are rounded to
// bf16 values and the float32 product runs, which is the same arithmetic:
// the product of two bf16 significands (8 bits each) is exact in float32.
// Master weights, gradients, optimizer state, attention tiles and the
// elementwise kernels stay float32.

// bf16Gemmer is the optional capability of kernels with a bf16 GEMM.
type bf16Gemmer interface {
	GemmBF16(transA, transB bool, m, n, k int, alpha float32, a []uint16, lda int, b []uint16, ldb int, beta float32, c []float32, ldc int)
}

var _ bf16Gemmer = (*simd.Kernels)(nil)

// bf16Kernels wraps float32 kernels so that Sgemm runs on bf16 operands.
type bf16Kernels struct {
	inner Kernels
}

type bf16Bufs struct {
	a, b   []uint16
	fa, fb []float32
}

var bf16Pool = sync.Pool{New: func() any { return new(bf16Bufs) }}

// extent is how many elements of a row-major matrix with leading dimension
// ld an operand of rows×cols reads.
func extent(rows, cols, ld int) int {
	if rows == 0 || cols == 0 {
		return 0
	}
	return (rows-1)*ld + cols
}

func growU16(s []uint16, n int) []uint16 {
	if cap(s) < n {
		return make([]uint16, n)
	}
	return s[:n]
}

func (k bf16Kernels) Sgemm(transA, transB bool, m, n, kk int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, transB, m, n, kk, a, lda, b, ldb, c, ldc)
	ar, ac := m, kk
	if transA {
		ar, ac = kk, m
	}
	br, bc := kk, n
	if transB {
		br, bc = n, kk
	}
	bufs := bf16Pool.Get().(*bf16Bufs)
	defer bf16Pool.Put(bufs)
	bufs.a = growU16(bufs.a, extent(ar, ac, lda))
	bufs.b = growU16(bufs.b, extent(br, bc, ldb))
	simd.ToBF16(bufs.a, a[:len(bufs.a)])
	simd.ToBF16(bufs.b, b[:len(bufs.b)])
	if g, ok := k.inner.(bf16Gemmer); ok {
		g.GemmBF16(transA, transB, m, n, kk, alpha, bufs.a, lda, bufs.b, ldb, beta, c, ldc)
		return
	}
	bufs.fa = grow(bufs.fa, len(bufs.a))
	bufs.fb = grow(bufs.fb, len(bufs.b))
	simd.FromBF16(bufs.fa, bufs.a)
	simd.FromBF16(bufs.fb, bufs.b)
	k.inner.Sgemm(transA, transB, m, n, kk, alpha, bufs.fa, lda, bufs.fb, ldb, beta, c, ldc)
}

// SetBF16 switches bf16 mixed precision on or off for later passes (see
// bf16Kernels); off, the default, is float32 throughout.
func (m *Model) SetBF16(on bool) {
	base := m.k
	if bk, ok := base.(bf16Kernels); ok {
		base = bk.inner
	}
	if on {
		m.k = bf16Kernels{inner: base}
	} else {
		m.k = base
	}
}

// BF16 reports whether bf16 mixed precision is on.
func (m *Model) BF16() bool {
	_, ok := m.k.(bf16Kernels)
	return ok
}
