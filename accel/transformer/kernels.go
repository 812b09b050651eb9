package transformer

import (
	"fmt"
	"sync"

	"github.com/llmesh/llmesh/accel/simd"
)

// Kernels is the small set of dense primitives the model is written
// against. Backends supply faster implementations (SIMD, AMX, a device);
// PortableKernels is the pure-Go reference every backend can fall back to.
// Extra capabilities (fused attention, say) are meant to be added as
// optional interfaces found by type assertion, not as methods here.
type Kernels interface {
	// Sgemm computes C = alpha·op(A)·op(B) + beta·C on row-major
	// matrices, where op(X) is X or Xᵀ, op(A) is m×k, op(B) is k×n and C is
	// m×n with row strides lda, ldb and ldc. When beta is 0, C is not read
	// (NaNs in it do not propagate). It must be safe for concurrent use.
	Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
}

// Blocking of the portable Sgemm: C is cut into mcBlock×ncBlock tiles
// (one parallel piece each), the k dimension into kcBlock slabs; packed
// panels are mr×kc of A and kc×nr of B, multiplied by a 4×4 register kernel.
const (
	mr, nr  = 4, 4
	mcBlock = 64
	ncBlock = 256
	kcBlock = 256
	// Below this many multiply-adds a product runs on the calling
	// goroutine alone.
	parallelMinWork = 1 << 16
)

type portable struct{ pool *simd.Pool }

// PortableKernels returns the pure-Go kernels: cache-blocked, packed,
// register-tiled and split across GOMAXPROCS goroutines for large
// products. Safe for concurrent use.
func PortableKernels() Kernels { return portable{pool: defaultPool()} }

// tileKernels returns kernels for the small products inside the model's
// own parallel tasks (attention tiles): they must run on the calling
// goroutine. For accel/simd kernels that is a one-thread instance at the
// same level; for anything else, the portable kernels without helpers.
func tileKernels(k Kernels) Kernels {
	if sk, ok := k.(*simd.Kernels); ok {
		if t, err := simd.New(simd.WithLevel(sk.Level()), simd.WithThreads(1)); err == nil {
			return t
		}
	}
	return portable{pool: simd.SharedPool(1)}
}

type packBufs struct{ a, b []float32 }

var packPool = sync.Pool{New: func() any {
	return &packBufs{a: make([]float32, mcBlock*kcBlock), b: make([]float32, kcBlock*ncBlock)}
}}

// gemmJob is one Sgemm call cut into C tiles; recycled through gemmJobs.
type gemmJob struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
	tilesN         int
}

var gemmJobs = sync.Pool{New: func() any { return new(gemmJob) }}

func checkGemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	need := func(name string, rows, cols, ld int, buf []float32) {
		if rows == 0 || cols == 0 {
			return
		}
		if ld < cols {
			panic(fmt.Sprintf("sgemm: leading dimension of %s %d is below its %d columns", name, ld, cols))
		}
		if n := (rows-1)*ld + cols; len(buf) < n {
			panic(fmt.Sprintf("sgemm: %s has %d elements, needs %d", name, len(buf), n))
		}
	}
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("sgemm: negative size m=%d n=%d k=%d", m, n, k))
	}
	if transA {
		need("a", k, m, lda, a)
	} else {
		need("a", m, k, lda, a)
	}
	if transB {
		need("b", n, k, ldb, b)
	} else {
		need("b", k, n, ldb, b)
	}
	need("c", m, n, ldc, c)
}

func (p portable) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	j := gemmJobs.Get().(*gemmJob)
	*j = gemmJob{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: a, b: b, c: c, lda: lda, ldb: ldb, ldc: ldc, tilesN: (n + ncBlock - 1) / ncBlock}
	tiles := ((m + mcBlock - 1) / mcBlock) * j.tilesN
	if m*n*k < parallelMinWork || tiles == 1 {
		for i := range tiles {
			j.Run(i)
		}
	} else {
		p.pool.Run(j, tiles)
	}
	*j = gemmJob{}
	gemmJobs.Put(j)
}

// run computes C tile i.
func (g *gemmJob) Run(i int) {
	i0 := (i / g.tilesN) * mcBlock
	j0 := (i % g.tilesN) * ncBlock
	mc := min(mcBlock, g.m-i0)
	nc := min(ncBlock, g.n-j0)
	c, ldc := g.c, g.ldc
	// C tile *= beta.
	for r := i0; r < i0+mc; r++ {
		row := c[r*ldc+j0 : r*ldc+j0+nc]
		switch g.beta {
		case 1:
		case 0:
			clear(row)
		default:
			for x := range row {
				row[x] *= g.beta
			}
		}
	}
	if g.alpha == 0 || g.k == 0 {
		return
	}
	bufs := packPool.Get().(*packBufs)
	for p0 := 0; p0 < g.k; p0 += kcBlock {
		kc := min(kcBlock, g.k-p0)
		packA(bufs.a, g.transA, g.a, g.lda, i0, mc, p0, kc)
		packB(bufs.b, g.transB, g.b, g.ldb, p0, kc, j0, nc)
		for ir := 0; ir < mc; ir += mr {
			ap := bufs.a[ir*kc : ir*kc+mr*kc]
			rows := min(mr, mc-ir)
			for jr := 0; jr < nc; jr += nr {
				bp := bufs.b[jr*kc : jr*kc+nr*kc]
				cols := min(nr, nc-jr)
				off := (i0+ir)*ldc + j0 + jr
				if rows == mr && cols == nr {
					kernel4x4(kc, ap, bp, c[off:], ldc, g.alpha)
				} else {
					kernelEdge(kc, ap, bp, c[off:], ldc, g.alpha, rows, cols)
				}
			}
		}
	}
	packPool.Put(bufs)
}

// packA copies op(A)[i0:i0+mc, p0:p0+kc] into panels of mr rows,
// k-major (mr values per k), zero-padding the last panel.
func packA(dst []float32, trans bool, a []float32, lda, i0, mc, p0, kc int) {
	for ir := 0; ir < mc; ir += mr {
		panel := dst[ir*kc : ir*kc+mr*kc]
		rows := min(mr, mc-ir)
		if rows < mr {
			clear(panel)
		}
		for r := range rows {
			i := i0 + ir + r
			if trans {
				for p := range kc {
					panel[p*mr+r] = a[(p0+p)*lda+i]
				}
			} else {
				src := a[i*lda+p0 : i*lda+p0+kc]
				for p, v := range src {
					panel[p*mr+r] = v
				}
			}
		}
	}
}

// packB copies op(B)[p0:p0+kc, j0:j0+nc] into panels of nr columns,
// k-major (nr values per k), zero-padding the last panel.
func packB(dst []float32, trans bool, b []float32, ldb, p0, kc, j0, nc int) {
	for jr := 0; jr < nc; jr += nr {
		panel := dst[jr*kc : jr*kc+nr*kc]
		cols := min(nr, nc-jr)
		if trans {
			if cols < nr {
				clear(panel)
			}
			for s := range cols {
				src := b[(j0+jr+s)*ldb+p0 : (j0+jr+s)*ldb+p0+kc]
				for p, v := range src {
					panel[p*nr+s] = v
				}
			}
			continue
		}
		for p := range kc {
			row := b[(p0+p)*ldb+j0+jr:]
			d := panel[p*nr : p*nr+nr : p*nr+nr]
			if cols == nr {
				row = row[:nr:nr]
				d[0], d[1], d[2], d[3] = row[0], row[1], row[2], row[3]
				continue
			}
			for s := range nr {
				if s < cols {
					d[s] = row[s]
				} else {
					d[s] = 0
				}
			}
		}
	}
}

// kernel4x4 adds alpha·(A panel · B panel) to a 4×4 block of C, one row
// at a time: the Go compiler schedules all products of an iteration before
// their sums, so anything wider than four accumulators spills registers to
// the stack (measured: 1×4 rows run about 3× faster than a 4×4 or 2×4
// register tile). The B panel stays in L1 across the four rows.
func kernel4x4(kc int, a, b, c []float32, ldc int, alpha float32) {
	kernel1x4(kc, a, b, c, alpha, 0)
	kernel1x4(kc, a, b, c[ldc:], alpha, 1)
	kernel1x4(kc, a, b, c[2*ldc:], alpha, 2)
	kernel1x4(kc, a, b, c[3*ldc:], alpha, 3)
}

// kernel1x4 handles row r of the A panel.
func kernel1x4(kc int, a, b, c []float32, alpha float32, r int) {
	var c0, c1, c2, c3 float32
	a = a[:kc*mr]
	b = b[:kc*nr]
	for p := 0; p < kc; p++ {
		a0 := a[p*mr+r]
		bv := b[p*nr : p*nr+4 : p*nr+4]
		c0 += a0 * bv[0]
		c1 += a0 * bv[1]
		c2 += a0 * bv[2]
		c3 += a0 * bv[3]
	}
	row := c[0:4:4]
	row[0] += alpha * c0
	row[1] += alpha * c1
	row[2] += alpha * c2
	row[3] += alpha * c3
}

// kernelEdge is kernel4x4 for a partial block of rows×cols.
func kernelEdge(kc int, a, b, c []float32, ldc int, alpha float32, rows, cols int) {
	var acc [mr * nr]float32
	for p := range kc {
		av := a[p*mr : p*mr+mr]
		bv := b[p*nr : p*nr+nr]
		for r := range mr {
			for s := range nr {
				acc[r*nr+s] += av[r] * bv[s]
			}
		}
	}
	for r := range rows {
		for s := range cols {
			c[r*ldc+s] += alpha * acc[r*nr+s]
		}
	}
}
