package simd

import (
	"fmt"
	"sync"
	"unsafe"
)

//go:generate go run gen_gemv.go

// GemvMaxRows is the most rows GemvInt8Packed runs on its own kernels;
// more go to GemmInt8Packed.
const GemvMaxRows = 16

// gemvParallelWork is the least work (multiply-adds) GemvInt8Packed
// splits across threads: a wake-up of a helper costs more than a product
// of a decoding step of a small model.
const gemvParallelWork = 1 << 22

// gemvFunc is a kernel of gen_gemv.go: rows of A (unsigned bytes, kg
// dwords each, stride lda bytes) times panels of packed B (stride
// pstride bytes), written to (acc = 0) or added to (acc = 1) C.
type gemvFunc func(kg int, a unsafe.Pointer, lda int, b unsafe.Pointer, pstride int, c unsafe.Pointer, ldc int, comp, aScale, bScale unsafe.Pointer, acc int)

// GemvInt8Packed is GemmInt8Packed for a few rows of A — decoding, one
// row per sequence — and can add to C instead of overwriting it: C (m×n,
// stride ldc) = [C +] aScale[i]·w's scale[j]·Σₚ A[i,p]·B[p,j]. The
// GEMM's register tile is 14 rows tall, so for one row it does 14 times
// the work; on VNNI these kernels stream the packed weights once per four
// rows with up to eight independent accumulator chains. Elsewhere (no
// VNNI, AMX packing) and beyond GemvMaxRows rows it runs GemmInt8Packed.
// The integer sums are exact, as in GemmInt8.
func (k *Kernels) GemvInt8Packed(m int, a []int8, lda int, aScale []float32, w *Int8Weights, c []float32, ldc int, accumulate bool) {
	if w.mode != int8Go && w.mode != k.int8 {
		panic(fmt.Sprintf("gemv int8: weights packed for another kernel (mode %d, these kernels run %d)", w.mode, k.int8))
	}
	checkGemm("gemv int8", false, false, m, w.n, w.k, len(a), lda, w.n*w.k, w.n, len(c), ldc)
	if len(aScale) != m && len(aScale) != 1 {
		panic(fmt.Sprintf("gemv int8: %d row scales for m=%d (want m or 1)", len(aScale), m))
	}
	if m == 0 || w.n == 0 {
		return
	}
	if w.mode != int8VNNI || m > GemvMaxRows || w.k == 0 {
		if !accumulate {
			k.GemmInt8Packed(m, a, lda, aScale, w, c, ldc)
			return
		}
		tmp := f32A.get(m * w.n)
		k.GemmInt8Packed(m, a, lda, aScale, w, *tmp, w.n)
		for i := range m {
			row := c[i*ldc : i*ldc+w.n]
			for j, v := range (*tmp)[i*w.n : (i+1)*w.n] {
				row[j] += v
			}
		}
		f32A.put(tmp)
		return
	}
	j := gemvJobs.Get().(*gemvJob)
	kg := ceilDiv(w.k, 4)
	abuf := byteA.get(m * kg * 4)
	*j = gemvJob{w: w, m: m, kg: kg, ap: *abuf, c: c, ldc: ldc, panels: ceilDiv(w.n, 32)}
	if accumulate {
		j.acc = 1
	}
	for i := range m {
		packRowU8(j.ap[i*kg*4:(i+1)*kg*4], a[i*lda:i*lda+w.k])
		j.as[i] = aScale[0]
		if len(aScale) > 1 {
			j.as[i] = aScale[i]
		}
	}
	pieces := 1
	if m*w.n*w.k >= gemvParallelWork && k.threads > 1 {
		pieces = min(k.threads, ceilDiv(j.panels, 4))
	}
	j.per = ceilDiv(j.panels, pieces)
	pieces = ceilDiv(j.panels, j.per)
	if pieces == 1 {
		j.Run(0)
	} else {
		k.pool.Run(j, pieces)
	}
	byteA.put(abuf)
	*j = gemvJob{}
	gemvJobs.Put(j)
}

// packRowU8 writes row shifted to unsigned (x+128), padded with 128 (a
// zero) to len(dst).
func packRowU8(dst []byte, row []int8) {
	n := len(row)
	i := 0
	for ; i+8 <= n; i += 8 {
		v := *(*uint64)(unsafe.Pointer(&row[i]))
		*(*uint64)(unsafe.Pointer(&dst[i])) = v ^ 0x8080808080808080
	}
	for ; i < n; i++ {
		dst[i] = byte(row[i]) ^ 0x80
	}
	for ; i < len(dst); i++ {
		dst[i] = 0x80
	}
}

// gemvJob is one GemvInt8Packed call, cut into ranges of panels.
type gemvJob struct {
	w      *Int8Weights
	m, kg  int
	ap     []byte
	as     [GemvMaxRows]float32
	c      []float32
	ldc    int
	acc    int
	panels int
	per    int
}

var gemvJobs = sync.Pool{New: func() any { return new(gemvJob) }}

func (j *gemvJob) Run(piece int) {
	q0, q1 := piece*j.per, min((piece+1)*j.per, j.panels)
	w := j.w
	n := w.n
	pstride := j.kg * 32 * 4
	lda := j.kg * 4
	var tmp *scratch
	for r0 := 0; r0 < j.m; r0 += 4 {
		rows := min(4, j.m-r0)
		a := unsafe.Pointer(&j.ap[r0*lda])
		as := unsafe.Pointer(&j.as[r0])
		P := gemvPanels[rows-1]
		q := q0
		for ; q+P <= q1 && (q+P)*32 <= n; q += P {
			gemvKernels[rows-1](j.kg, a, lda, unsafe.Pointer(&w.bp[q*pstride]), pstride,
				unsafe.Pointer(&j.c[r0*j.ldc+q*32]), j.ldc, unsafe.Pointer(&w.comp[q*32]), as, unsafe.Pointer(&w.bs[q*32]), j.acc)
		}
		for ; q < q1; q++ {
			col := q * 32
			b, comp, bs := unsafe.Pointer(&w.bp[q*pstride]), unsafe.Pointer(&w.comp[col]), unsafe.Pointer(&w.bs[col])
			if col+32 <= n {
				gemvKernels1[rows-1](j.kg, a, lda, b, pstride, unsafe.Pointer(&j.c[r0*j.ldc+col]), j.ldc, comp, as, bs, j.acc)
				continue
			}
			// The last, partial panel: through a scratch tile.
			if tmp == nil {
				tmp = scratches.Get().(*scratch)
				defer scratches.Put(tmp)
			}
			gemvKernels1[rows-1](j.kg, a, lda, b, pstride, unsafe.Pointer(&tmp.f[0]), 32, comp, as, bs, 0)
			cols := n - col
			for r := range rows {
				dst := j.c[(r0+r)*j.ldc+col:][:cols]
				src := tmp.f[r*32 : r*32+cols]
				if j.acc == 0 {
					copy(dst, src)
					continue
				}
				for s, v := range src {
					dst[s] += v
				}
			}
		}
	}
}
