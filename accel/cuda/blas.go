package cuda

import (
	"fmt"
	"math"
)

// cublasOperation_t.
const (
	opN int32 = 0
	opT int32 = 1
)

// gemmArgs is a row-major Sgemm expressed as a column-major cuBLAS call.
// A row-major matrix with row stride ld is, read column-major, its
// transpose with leading dimension ld; so row-major C = op(A)·op(B) is
// column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, and the call takes the caller's B as
// its first operand and the caller's A as its second.
type gemmArgs struct {
	transa, transb int32 // cuBLAS ops on the first (caller's B) and second (caller's A) operand
	m, n, k        int   // cuBLAS sizes: m = caller's n, n = caller's m
	lda, ldb, ldc  int   // cuBLAS leading dimensions: caller's ldb, lda, ldc
}

// colMajorArgs maps a row-major Sgemm (as transformer.Kernels defines it)
// to the column-major cublasSgemm call that computes it.
func colMajorArgs(transA, transB bool, m, n, k, lda, ldb, ldc int) gemmArgs {
	op := func(t bool) int32 {
		if t {
			return opT
		}
		return opN
	}
	return gemmArgs{transa: op(transB), transb: op(transA), m: n, n: m, k: k, lda: ldb, ldb: lda, ldc: ldc}
}

// span is how many elements a row-major rows×cols matrix with row stride
// ld covers, from its first element to its last.
func span(rows, cols, ld int) int {
	if rows == 0 || cols == 0 {
		return 0
	}
	return (rows-1)*ld + cols
}

// checkGemm panics, like the portable kernels, on sizes that do not fit
// the slices, and on sizes cuBLAS's 32-bit ints cannot hold.
func checkGemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if err := checkGemmShape(transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc); err != nil {
		panic("sgemm: " + err.Error())
	}
}

// checkGemmShape checks a row-major GEMM's sizes against its operands'
// lengths (in elements) and cuBLAS's 32-bit limits.
func checkGemmShape(transA, transB bool, m, n, k int, lenA, lda, lenB, ldb, lenC, ldc int) error {
	if m < 0 || n < 0 || k < 0 {
		return fmt.Errorf("negative size m=%d n=%d k=%d", m, n, k)
	}
	need := func(name string, rows, cols, ld, have int) error {
		if rows == 0 || cols == 0 {
			return nil
		}
		if ld < cols {
			return fmt.Errorf("leading dimension of %s %d is below its %d columns", name, ld, cols)
		}
		if ld > math.MaxInt32 || rows > math.MaxInt32 {
			return fmt.Errorf("%s of %d rows with stride %d exceeds cuBLAS's 32-bit sizes", name, rows, ld)
		}
		if s := span(rows, cols, ld); have < s {
			return fmt.Errorf("%s has %d elements, needs %d", name, have, s)
		}
		return nil
	}
	ra, ca := m, k
	if transA {
		ra, ca = k, m
	}
	rb, cb := k, n
	if transB {
		rb, cb = n, k
	}
	if err := need("a", ra, ca, lda, lenA); err != nil {
		return err
	}
	if err := need("b", rb, cb, ldb, lenB); err != nil {
		return err
	}
	return need("c", m, n, ldc, lenC)
}

// gemmDevice is what sgemmVia needs from a device: three operand slots,
// copies in and out of them, and a column-major Sgemm on them. The GPU
// implements it with cuMemcpy and cublasSgemm_v2; tests with Go slices.
type gemmDevice interface {
	upload(slot int, src []float32) error
	download(dst []float32, slot int) error
	// sgemm runs the column-major call g with slot 0 (the caller's B) as
	// the first operand, slot 1 (the caller's A) as the second and slot 2
	// as C. When beta is 0 it must not read C.
	sgemm(g gemmArgs, alpha, beta float32) error
}

const (
	slotB = 0
	slotA = 1
	slotC = 2
)

// sgemmVia computes the row-major Sgemm on dev. Sizes are already
// checked. C is copied to the device when beta is not 0 or when its rows
// have gaps (ldc > n), so that the copy back leaves the gaps as they were.
func sgemmVia(dev gemmDevice, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) error {
	if m == 0 || n == 0 {
		return nil
	}
	cs := c[:span(m, n, ldc)]
	if k == 0 || alpha == 0 {
		// C = beta·C on the host: no product to run, and cuBLAS's rules
		// for k == 0 are not worth a round trip.
		for r := range m {
			row := c[r*ldc : r*ldc+n]
			switch beta {
			case 1:
			case 0:
				clear(row)
			default:
				for j := range row {
					row[j] *= beta
				}
			}
		}
		return nil
	}
	ra, ca := m, k
	if transA {
		ra, ca = k, m
	}
	rb, cb := k, n
	if transB {
		rb, cb = n, k
	}
	if err := dev.upload(slotA, a[:span(ra, ca, lda)]); err != nil {
		return err
	}
	if err := dev.upload(slotB, b[:span(rb, cb, ldb)]); err != nil {
		return err
	}
	if beta != 0 || ldc != n {
		if err := dev.upload(slotC, cs); err != nil {
			return err
		}
	}
	if err := dev.sgemm(colMajorArgs(transA, transB, m, n, k, lda, ldb, ldc), alpha, beta); err != nil {
		return err
	}
	return dev.download(cs, slotC)
}

// cublas is libcublas's entry points.
type cublas struct {
	lib     string
	create  func(h *uintptr) int32
	destroy func(h uintptr) int32
	sgemm   func(h uintptr, transa, transb int32, m, n, k int32, alpha *float32, a DevicePtr, lda int32, b DevicePtr, ldb int32, beta *float32, c DevicePtr, ldc int32) int32
	// gemmEx is the mixed-precision GEMM (optional: cuBLAS 8+).
	gemmEx        func(h uintptr, transa, transb int32, m, n, k int32, alpha *float32, a DevicePtr, atype int32, lda int32, b DevicePtr, btype int32, ldb int32, beta *float32, c DevicePtr, ctype int32, ldc int32, computeType int32, algo int32) int32
	getStatusName func(status int32) string // optional (cuBLAS 11.4+)
}

func loadCUBLAS() (*cublas, error) {
	h, lib, err := dlopenFirst(CUBLASLibraries)
	if err != nil {
		return nil, fmt.Errorf("%w: cuBLAS: %v", ErrNoLibrary, err)
	}
	c := &cublas{lib: lib}
	if err := bind(h, lib, map[string]any{
		"cublasCreate_v2":      &c.create,
		"cublasDestroy_v2":     &c.destroy,
		"cublasSgemm_v2":       &c.sgemm,
		"cublasGemmEx?":        &c.gemmEx,
		"cublasGetStatusName?": &c.getStatusName,
	}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoLibrary, err)
	}
	return c, nil
}

func (c *cublas) check(op string, st int32) error {
	if st == 0 {
		return nil
	}
	e := &Error{Op: op, Code: st, Name: cublasStatusNames[st]}
	if c.getStatusName != nil {
		e.Name = c.getStatusName(st)
	}
	return e
}
