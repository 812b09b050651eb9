package cuda

import (
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// PrecisionKernels is reduced-precision storage and compute
// (kernels/precision.cu and cuBLAS): bf16 and fp16 values are their 16
// bits in a uint16.
type PrecisionKernels interface {
	// ToBF16 rounds src to bf16 (nearest even) into dst.
	ToBF16(dst []uint16, src []float32) error
	// FromBF16 widens src into dst.
	FromBF16(dst []float32, src []uint16) error
	// ToF16 rounds src to fp16 (nearest even; beyond its range ±inf).
	ToF16(dst []uint16, src []float32) error
	// FromF16 widens src into dst.
	FromF16(dst []float32, src []uint16) error
	// UnscaleCheck multiplies grads by invScale in place and reports
	// whether every result is finite (dynamic loss scaling: a false skips
	// the step).
	UnscaleCheck(grads []float32, invScale float32) (finite bool, err error)
	// GemmBF16 is Sgemm with bf16 operands A and B, fp32 accumulation and
	// an fp32 C (cublasGemmEx, tensor cores where the GPU has them).
	GemmBF16(transA, transB bool, m, n, k int, alpha float32, a []uint16, lda int, b []uint16, ldb int, beta float32, c []float32, ldc int) error
}

// cudaDataType_t and cublasComputeType_t values used with cublasGemmEx.
const (
	cudaR32F          int32 = 0
	cudaR16BF         int32 = 14
	cublasCompute32F  int32 = 68
	cublasGemmDefault int32 = -1
)

// ErrNoGemmEx: the loaded cuBLAS has no cublasGemmEx.
var ErrNoGemmEx = errors.New("cuda: cuBLAS has no cublasGemmEx (bf16 GEMM needs cuBLAS 11+)")

func (k *Kernels) putBytes(slot int, p unsafe.Pointer, n int) (DevicePtr, error) {
	if err := k.d.ensure(&k.bufs[slot], n); err != nil {
		return 0, err
	}
	return k.bufs[slot].ptr, k.d.htodBytes(k.bufs[slot].ptr, p, n)
}

func u16ptr(s []uint16) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

// convert runs one elementwise conversion kernel: n inputs of inBytes
// each at in, n outputs of outBytes each to out.
func (k *Kernels) convert(fn string, out unsafe.Pointer, outBytes int, in unsafe.Pointer, inBytes, n int) error {
	if n == 0 {
		return nil
	}
	if n > math.MaxInt32 {
		return fmt.Errorf("cuda %s: %d values exceed a launch", fn, n)
	}
	return k.run(func(m *Module) error {
		pin, err := k.putBytes(0, in, n*inBytes)
		if err != nil {
			return err
		}
		if err := k.d.ensure(&k.bufs[1], n*outBytes); err != nil {
			return err
		}
		if err := m.launch(fn, blocks(n, threads), Dim3{X: threads}, k.bufs[1].ptr, pin, n); err != nil {
			return err
		}
		return k.d.dtohBytes(out, k.bufs[1].ptr, n*outBytes)
	})
}

func sameLen(op string, dst, src int) error {
	if dst < src {
		return fmt.Errorf("cuda %s: %d outputs for %d inputs", op, dst, src)
	}
	return nil
}

func (k *Kernels) ToBF16(dst []uint16, src []float32) error {
	if err := sameLen("f32_to_bf16", len(dst), len(src)); err != nil {
		return err
	}
	return k.convert("f32_to_bf16", u16ptr(dst), 2, unsafe.Pointer(unsafe.SliceData(src)), 4, len(src))
}

func (k *Kernels) FromBF16(dst []float32, src []uint16) error {
	if err := sameLen("bf16_to_f32", len(dst), len(src)); err != nil {
		return err
	}
	return k.convert("bf16_to_f32", unsafe.Pointer(unsafe.SliceData(dst)), 4, u16ptr(src), 2, len(src))
}

func (k *Kernels) ToF16(dst []uint16, src []float32) error {
	if err := sameLen("f32_to_f16", len(dst), len(src)); err != nil {
		return err
	}
	return k.convert("f32_to_f16", u16ptr(dst), 2, unsafe.Pointer(unsafe.SliceData(src)), 4, len(src))
}

func (k *Kernels) FromF16(dst []float32, src []uint16) error {
	if err := sameLen("f16_to_f32", len(dst), len(src)); err != nil {
		return err
	}
	return k.convert("f16_to_f32", unsafe.Pointer(unsafe.SliceData(dst)), 4, u16ptr(src), 2, len(src))
}

func (k *Kernels) UnscaleCheck(grads []float32, invScale float32) (bool, error) {
	n := len(grads)
	if n == 0 {
		return true, nil
	}
	if n > math.MaxInt32 {
		return false, fmt.Errorf("cuda unscale: %d gradients exceed a launch", n)
	}
	flag := []float32{0} // an int 0 has the same bits
	err := k.run(func(m *Module) error {
		pg, err := k.put(0, grads)
		if err != nil {
			return err
		}
		pf, err := k.put(1, flag)
		if err != nil {
			return err
		}
		if err := m.launch("unscale_check", blocks(n, threads), Dim3{X: threads}, pg, n, invScale, pf); err != nil {
			return err
		}
		if err := k.d.dtoh(grads, pg); err != nil {
			return err
		}
		return k.d.dtoh(flag, pf)
	})
	return math.Float32bits(flag[0]) == 0, err
}

func (k *Kernels) GemmBF16(transA, transB bool, m, n, kk int, alpha float32, a []uint16, lda int, b []uint16, ldb int, beta float32, c []float32, ldc int) error {
	if k.blas.gemmEx == nil {
		return ErrNoGemmEx
	}
	if err := checkGemmShape(transA, transB, m, n, kk, len(a), lda, len(b), ldb, len(c), ldc); err != nil {
		return fmt.Errorf("cuda bf16 gemm: %w", err)
	}
	if m == 0 || n == 0 {
		return nil
	}
	ra, ca := m, kk
	if transA {
		ra, ca = kk, m
	}
	rb, cb := kk, n
	if transB {
		rb, cb = n, kk
	}
	g := colMajorArgs(transA, transB, m, n, kk, lda, ldb, ldc)
	cs := c[:span(m, n, ldc)]
	return k.d.do(func() error {
		pa, err := k.putBytes(slotA, u16ptr(a), 2*span(ra, ca, lda))
		if err != nil {
			return err
		}
		pb, err := k.putBytes(slotB, u16ptr(b), 2*span(rb, cb, ldb))
		if err != nil {
			return err
		}
		pc, err := k.put(slotC, cs)
		if err != nil {
			return err
		}
		st := k.blas.gemmEx(k.handle, g.transa, g.transb, int32(g.m), int32(g.n), int32(g.k),
			&alpha, pb, cudaR16BF, int32(g.lda), pa, cudaR16BF, int32(g.ldb),
			&beta, pc, cudaR32F, int32(g.ldc), cublasCompute32F, cublasGemmDefault)
		if err := k.blas.check("cublasGemmEx", st); err != nil {
			return err
		}
		return k.d.dtoh(cs, pc)
	})
}
