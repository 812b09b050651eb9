package simd

import (
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// floatKernel computes one mr×nr tile: C = alpha·Apanel·Bpanel + beta·C,
// reading C only when beta ≠ 0. kc counts the dwords of a panel row (one
// float32, or a pair of bf16).
type floatKernel func(kc int, a, b, c unsafe.Pointer, ldc int, alpha, beta float32)

// int8Func computes one mr×nr INT8 tile, writing
// C = aScale[r]·bScale[j]·(acc − comp[j]).
type int8Func func(kc int, a, b, c unsafe.Pointer, ldc int, comp, aScale, bScale unsafe.Pointer)

// geometry is a microkernel and the blocking around it: A blocks of mc
// rows by kc (in elements), B slabs of kc by nc, panels of mr rows and nr
// columns.
type geometry struct {
	mr, nr, kc, mc, nc int
	kern               floatKernel
	// rows[r] is kern for the first r rows of a panel (nil: edge panels
	// go through a full tile in scratch).
	rows []floatKernel
}

var genericGeometry = geometry{mr: 4, nr: 4, kc: 256, mc: 64, nc: 1024, kern: genericKernel}

// Below this many multiply-adds a product runs on the calling goroutine.
const parallelMinWork = 1 << 15

// genericKernel is the portable 4×4 microkernel, one row at a time: the
// Go compiler keeps four accumulators and the operands in registers
// (more spill to the stack).
func genericKernel(kc int, a, b, c unsafe.Pointer, ldc int, alpha, beta float32) {
	const mr, nr = 4, 4
	ap := unsafe.Slice((*float32)(a), kc*mr)
	bp := unsafe.Slice((*float32)(b), kc*nr)
	cp := unsafe.Slice((*float32)(c), (mr-1)*ldc+nr)
	for r := range mr {
		var c0, c1, c2, c3 float32
		for p := range kc {
			av := ap[p*mr+r]
			bv := bp[p*nr : p*nr+nr : p*nr+nr]
			c0 += av * bv[0]
			c1 += av * bv[1]
			c2 += av * bv[2]
			c3 += av * bv[3]
		}
		row := cp[r*ldc : r*ldc+nr : r*ldc+nr]
		if beta == 0 {
			row[0], row[1], row[2], row[3] = alpha*c0, alpha*c1, alpha*c2, alpha*c3
			continue
		}
		row[0] = alpha*c0 + beta*row[0]
		row[1] = alpha*c1 + beta*row[1]
		row[2] = alpha*c2 + beta*row[2]
		row[3] = alpha*c3 + beta*row[3]
	}
}

// checkGemm panics with a clear message when a matrix is too short for
// its shape and stride (as the runtime's portable Sgemm does).
func checkGemm(op string, transA, transB bool, m, n, k int, la, lda, lb, ldb, lc, ldc int) {
	need := func(name string, rows, cols, ld, have int) {
		if rows == 0 || cols == 0 {
			return
		}
		if ld < cols {
			panic(fmt.Sprintf("%s: leading dimension of %s %d is below its %d columns", op, name, ld, cols))
		}
		if n := (rows-1)*ld + cols; have < n {
			panic(fmt.Sprintf("%s: %s has %d elements, needs %d", op, name, have, n))
		}
	}
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("%s: negative size m=%d n=%d k=%d", op, m, n, k))
	}
	if transA {
		need("a", k, m, lda, la)
	} else {
		need("a", m, k, lda, la)
	}
	if transB {
		need("b", n, k, ldb, lb)
	} else {
		need("b", k, n, ldb, lb)
	}
	need("c", m, n, ldc, lc)
}

// scaleC sets C = beta·C (beta 0 clears, NaNs included).
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 1:
		case 0:
			clear(row)
		default:
			for x := range row {
				row[x] *= beta
			}
		}
	}
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C on row-major float32
// matrices (op(X) is X or Xᵀ; op(A) m×k, op(B) k×n, C m×n; strides lda,
// ldb, ldc). beta 0 does not read C. It has the signature of the
// runtime's Kernels.Sgemm and panics on a matrix too short for its shape.
func (k *Kernels) Sgemm(transA, transB bool, m, n, kk int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm("sgemm", transA, transB, m, n, kk, len(a), lda, len(b), ldb, len(c), ldc)
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || kk == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	j := gemmJobs.Get().(*gemmJob)
	*j = gemmJob{g: k.f32, kind: kindF32, transA: transA, transB: transB, m: m, n: n, k: kk,
		alpha: alpha, beta: beta, a: a, b: b, lda: lda, ldb: ldb, c: c, ldc: ldc}
	k.runGemm(j)
	*j = gemmJob{}
	gemmJobs.Put(j)
}

type gemmKind uint8

const (
	kindF32       gemmKind = iota
	kindBF16Pairs          // bf16 packed as pairs for VDPBF16PS
	kindBF16Wide           // bf16 widened to float32 while packing
	kindInt8Wide           // int8 widened to float32 while packing (A not transposed)
	kindBF16AMX            // bf16 pairs for AMX tiles: A row-major, k padded to 32
)

// amxGeometry blocks the AMX BF16 product: 32×32 tile products, k slabs
// of 512 (16 tile steps).
var amxGeometry = geometry{mr: 32, nr: 32, kc: 512, mc: 32 * 4, nc: 32 * 64}

// gemmJob is one float32 or bf16 product in flight; recycled.
type gemmJob struct {
	g              geometry
	kind           gemmKind
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b           []float32
	ah, bh         []uint16
	a8, b8         []int8
	lda, ldb       int
	c              []float32
	ldc            int
	amx            amxFunc // kindBF16AMX's tile product

	// The slab being computed: columns jc..jc+nc, k range pc..pc+kc.
	jc, nc, pc, kc int
	betaNow        float32
	bp             []float32 // packed B slab
	packing        bool      // the phase: pack B, or compute
	chunk          int       // B panels per packing piece
	mc, mBlocks    int
	nGroups, group int      // C columns of a slab split in nGroups; panels per group
	packed         *PackedB // B packed beforehand: no packing phase
	slab           int      // the packed slab in use
}

var gemmJobs = sync.Pool{New: func() any { return new(gemmJob) }}

// units returns how many kernel dwords hold kc elements.
func (j *gemmJob) units(kc int) int {
	switch j.kind {
	case kindBF16Pairs:
		return (kc + 1) / 2
	case kindBF16AMX:
		return roundUp((kc+1)/2, 16)
	}
	return kc
}

func (k *Kernels) runGemm(j *gemmJob) {
	g := j.g
	threads := k.threads
	if j.m*j.n*j.k < parallelMinWork {
		threads = 1
	}
	j.mBlocks = ceilDiv(j.m, g.mc)
	if threads > 1 && j.mBlocks%threads != 0 && j.m >= 2*g.mr*threads {
		j.mBlocks = roundUp(j.mBlocks, threads)
	}
	j.mBlocks = min(j.mBlocks, ceilDiv(j.m, g.mr))
	j.mc = ceilDiv(ceilDiv(j.m, g.mr), j.mBlocks) * g.mr // the largest block
	j.nGroups = 1
	if threads > 1 && j.mBlocks < threads {
		j.nGroups = threads
	}
	var bbuf *[]float32
	if j.packed == nil {
		bbuf = f32B.get(g.kc * roundUp(min(g.nc, j.n), g.nr))
		j.bp = *bbuf
	}
	j.slab = 0
	for j.jc = 0; j.jc < j.n; j.jc += g.nc {
		j.nc = min(g.nc, j.n-j.jc)
		panels := ceilDiv(j.nc, g.nr)
		for j.pc = 0; j.pc < j.k; j.pc += g.kc {
			j.kc = min(g.kc, j.k-j.pc)
			j.betaNow = j.beta
			if j.pc > 0 {
				j.betaNow = 1
			}
			if j.packed != nil {
				j.bp = j.packed.slabs[j.slab]
				j.slab++
			} else {
				j.packing = true
				if threads == 1 {
					j.chunk = panels
					j.Run(0)
				} else {
					j.chunk = ceilDiv(panels, 4*threads)
					k.pool.Run(j, ceilDiv(panels, j.chunk))
				}
			}
			j.packing = false
			groups := min(j.nGroups, panels)
			j.group = ceilDiv(panels, groups)
			pieces := j.mBlocks * ceilDiv(panels, j.group)
			if threads == 1 {
				for i := range pieces {
					j.Run(i)
				}
			} else {
				k.pool.Run(j, pieces)
			}
		}
	}
	if bbuf != nil {
		f32B.put(bbuf)
	}
}

func (j *gemmJob) Run(i int) {
	g := j.g
	kcu := j.units(j.kc)
	panels := ceilDiv(j.nc, g.nr)
	if j.packing {
		for q := i * j.chunk; q < min((i+1)*j.chunk, panels); q++ {
			j.packB(j.bp[q*kcu*g.nr:(q+1)*kcu*g.nr], q*g.nr)
		}
		return
	}
	groups := ceilDiv(panels, j.group)
	ib, gi := i/groups, i%groups
	i0, mc := rowBlock(ib, j.mBlocks, j.m, g.mr)
	abuf := f32A.get(roundUp(mc, g.mr) * kcu)
	ap := *abuf
	j.packA(ap, i0, mc)
	if j.kind == kindBF16AMX {
		j.runAMX(ap, gi, i0, mc)
		f32A.put(abuf)
		return
	}
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	tmp := &sc.f
	for q := gi * j.group; q < min((gi+1)*j.group, panels); q++ {
		bq := unsafe.Pointer(&j.bp[q*kcu*g.nr])
		col := j.jc + q*g.nr
		cols := min(g.nr, j.n-col)
		for ir := 0; ir < mc; ir += g.mr {
			aq := unsafe.Pointer(&ap[ir*kcu])
			rows := min(g.mr, mc-ir)
			off := (i0+ir)*j.ldc + col
			kern := g.kern
			if rows < g.mr && g.rows != nil {
				kern = g.rows[rows]
			}
			if cols == g.nr && (rows == g.mr || g.rows != nil) {
				kern(kcu, aq, bq, unsafe.Pointer(&j.c[off]), j.ldc, j.alpha, j.betaNow)
				continue
			}
			kern(kcu, aq, bq, unsafe.Pointer(&tmp[0]), g.nr, j.alpha, 0)
			for r := range rows {
				dst := j.c[off+r*j.ldc : off+r*j.ldc+cols]
				src := tmp[r*g.nr : r*g.nr+cols]
				if j.betaNow == 0 {
					copy(dst, src)
					continue
				}
				for s, v := range src {
					dst[s] = v + j.betaNow*dst[s]
				}
			}
		}
	}
	f32A.put(abuf)
}

// runAMX multiplies the packed A block (32-row slabs) by the slab's B
// panels of group gi, 32×32 tiles at a time.
func (j *gemmJob) runAMX(ap []float32, gi, i0, mc int) {
	kcu := j.units(j.kc)
	panels := ceilDiv(j.nc, j.g.nr)
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	tile := &sc.f
	for q := gi * j.group; q < min((gi+1)*j.group, panels); q++ {
		bq := unsafe.Pointer(&j.bp[q*kcu*32])
		col := j.jc + q*32
		cols := min(32, j.n-col)
		for ir := 0; ir < mc; ir += 32 {
			j.amx(unsafe.Pointer(&amxConfig), unsafe.Pointer(&ap[ir*kcu]), kcu*4, bq, kcu/16, unsafe.Pointer(&tile[0]))
			for r := range min(32, mc-ir) {
				dst := j.c[(i0+ir+r)*j.ldc+col:][:cols]
				src := tile[r*32:][:cols]
				if j.betaNow == 0 {
					for s, v := range src {
						dst[s] = j.alpha * v
					}
					continue
				}
				for s, v := range src {
					dst[s] = j.alpha*v + j.betaNow*dst[s]
				}
			}
		}
	}
}

// packA copies op(A)[i0:i0+mc, pc:pc+kc] into panels of mr rows, kc
// units each, unit-major; rows past mc are zero.
func (j *gemmJob) packA(dst []float32, i0, mc int) {
	mr, kc, p0 := j.g.mr, j.kc, j.pc
	kcu := j.units(kc)
	if j.kind == kindBF16AMX {
		j.packAAMX(f32AsU32(dst), i0, mc)
		return
	}
	for ir := 0; ir < mc; ir += mr {
		panel := dst[ir*kcu : (ir+mr)*kcu]
		rows := min(mr, mc-ir)
		if rows < mr {
			clear(panel)
		}
		switch j.kind {
		case kindF32:
			if j.transA {
				for p := range kc {
					copy(panel[p*mr:p*mr+rows], j.a[(p0+p)*j.lda+i0+ir:])
				}
				continue
			}
			if rows == mr && mr == 14 {
				pack14(panel[:kc*14], j.a[(i0+ir)*j.lda+p0:][:13*j.lda+kc], j.lda, kc)
				continue
			}
			packT(panel[:kc*mr], mr, j.a[(i0+ir)*j.lda+p0:][:(rows-1)*j.lda+kc], rows, j.lda, kc)
		case kindBF16Wide:
			for r := range rows {
				for p := range kc {
					panel[p*mr+r] = widen(j.ah[j.aIndex(i0+ir+r, p0+p)])
				}
			}
		case kindInt8Wide:
			for r := range rows {
				for p, v := range j.a8[(i0+ir+r)*j.lda+p0:][:kc] {
					panel[p*mr+r] = float32(v)
				}
			}
		case kindBF16Pairs:
			u := f32AsU32(panel)
			full := kc / 2 // whole pairs; an odd kc leaves one element
			if j.transA {
				for q := range full {
					lo := j.ah[(p0+2*q)*j.lda+i0+ir:][:rows]
					hi := j.ah[(p0+2*q+1)*j.lda+i0+ir:][:rows]
					d := u[q*mr : q*mr+rows]
					for r := range d {
						d[r] = uint32(lo[r]) | uint32(hi[r])<<16
					}
				}
				if 2*full < kc {
					lo := j.ah[(p0+2*full)*j.lda+i0+ir:][:rows]
					d := u[full*mr : full*mr+rows]
					for r := range d {
						d[r] = uint32(lo[r])
					}
				}
				continue
			}
			if full > 0 {
				packPairsT(u[:full*mr], mr, j.ah[(i0+ir)*j.lda+p0:][:(rows-1)*j.lda+2*full], rows, j.lda, full)
			}
			if 2*full < kc {
				for r := range rows {
					u[full*mr+r] = uint32(j.ah[(i0+ir+r)*j.lda+p0+2*full])
				}
			}
		}
	}
}

// pack14 transposes 14 rows of src (stride lda, kc columns) into dst,
// kc groups of 14: one pass that writes dst in order (row by row, the
// strided writes cost several times more).
func pack14(dst, src []float32, lda, kc int) {
	_ = dst[kc*14-1]
	_ = src[13*lda+kc-1]
	base := unsafe.Pointer(&src[0])
	ld := uintptr(lda) * 4
	for p := range kc {
		d := (*[14]float32)(unsafe.Pointer(&dst[p*14]))
		s := unsafe.Add(base, p*4)
		d[0] = *(*float32)(s)
		d[1] = *(*float32)(unsafe.Add(s, ld))
		d[2] = *(*float32)(unsafe.Add(s, 2*ld))
		d[3] = *(*float32)(unsafe.Add(s, 3*ld))
		d[4] = *(*float32)(unsafe.Add(s, 4*ld))
		d[5] = *(*float32)(unsafe.Add(s, 5*ld))
		d[6] = *(*float32)(unsafe.Add(s, 6*ld))
		d[7] = *(*float32)(unsafe.Add(s, 7*ld))
		d[8] = *(*float32)(unsafe.Add(s, 8*ld))
		d[9] = *(*float32)(unsafe.Add(s, 9*ld))
		d[10] = *(*float32)(unsafe.Add(s, 10*ld))
		d[11] = *(*float32)(unsafe.Add(s, 11*ld))
		d[12] = *(*float32)(unsafe.Add(s, 12*ld))
		d[13] = *(*float32)(unsafe.Add(s, 13*ld))
	}
}

// packT transposes rows rows of src (stride lda, kc columns) into dst,
// kc groups of width values (the first rows set), writing dst in order.
func packT(dst []float32, width int, src []float32, rows, lda, kc int) {
	_ = dst[(kc-1)*width+rows-1]
	_ = src[(rows-1)*lda+kc-1]
	base := unsafe.Pointer(&src[0])
	ld := uintptr(lda) * 4
	for p := range kc {
		d := dst[p*width : p*width+rows]
		s := unsafe.Add(base, p*4)
		for r := range d {
			d[r] = *(*float32)(unsafe.Add(s, uintptr(r)*ld))
		}
	}
}

// interleave sets d[s] = lo[s] | hi[s]<<16: two bf16 rows into pairs.
func interleave(d []uint32, lo, hi []uint16) {
	n := interleaveBlocks(d, lo, hi)
	lo, hi = lo[n:len(d)], hi[n:len(d)]
	for s := range lo {
		d[n+s] = uint32(lo[s]) | uint32(hi[s])<<16
	}
}

// packPairsT is packT for bf16 pairs: rows rows of src (stride ld
// elements) give pairs (src[2q], src[2q+1]) for q < pairs, written as
// pairs groups of width uint32 in order.
func packPairsT(dst []uint32, width int, src []uint16, rows, ld, pairs int) {
	_ = dst[(pairs-1)*width+rows-1]
	_ = src[(rows-1)*ld+2*pairs-1]
	packWordsT(dst, width, unsafe.Pointer(&src[0]), uintptr(ld)*2, rows, pairs, 0)
}

// packWordsT transposes 4-byte words: word q of row r (at base +
// r·stride + 4q) goes to dst[q·width + r], xor-ed with x, for q < words
// and r < rows, in order. The caller checks the bounds.
func packWordsT(dst []uint32, width int, base unsafe.Pointer, stride uintptr, rows, words int, x uint32) {
	for q := range words {
		d := dst[q*width : q*width+rows]
		s := unsafe.Add(base, q*4)
		for r := range d {
			d[r] = *(*uint32)(unsafe.Add(s, uintptr(r)*stride)) ^ x
		}
	}
}

// packAAMX copies op(A)[i0:i0+mc, pc:pc+kc] as row-major bf16 pairs,
// kcu to a row (zero past kc), rows up to a multiple of 32 (zero past mc).
func (j *gemmJob) packAAMX(u []uint32, i0, mc int) {
	kc, p0, kcu := j.kc, j.pc, j.units(j.kc)
	clear(u)
	full := kc / 2
	if j.transA {
		for q := range (kc + 1) / 2 {
			lo := j.ah[(p0+2*q)*j.lda+i0:][:mc]
			var hi []uint16
			if 2*q+1 < kc {
				hi = j.ah[(p0+2*q+1)*j.lda+i0:][:mc]
			}
			for r, v := range lo {
				x := uint32(v)
				if hi != nil {
					x |= uint32(hi[r]) << 16
				}
				u[r*kcu+q] = x
			}
		}
		return
	}
	for r := range mc {
		src := j.ah[(i0+r)*j.lda+p0:][:kc]
		copy(u[r*kcu:], u16AsU32(src[:2*full]))
		if full*2 < kc {
			u[r*kcu+full] = uint32(src[2*full])
		}
	}
}

func (j *gemmJob) aIndex(i, p int) int {
	if j.transA {
		return p*j.lda + i
	}
	return i*j.lda + p
}

func (j *gemmJob) bIndex(p, c int) int {
	if j.transB {
		return c*j.ldb + p
	}
	return p*j.ldb + c
}

// packB copies op(B)[pc:pc+kc, c0:c0+nr] (c0 relative to the slab) into
// one panel of nr columns, unit-major; columns past n are zero.
func (j *gemmJob) packB(panel []float32, c0 int) {
	nr, kc, p0 := j.g.nr, j.kc, j.pc
	col := j.jc + c0
	cols := min(nr, j.n-col)
	kcu := j.units(kc)
	if cols < nr || (j.kind == kindBF16AMX && 2*kcu != kc) {
		clear(panel)
	}
	switch j.kind {
	case kindF32:
		if !j.transB {
			for p := range kc {
				copy(panel[p*nr:p*nr+cols], j.b[(p0+p)*j.ldb+col:])
			}
			return
		}
		packT(panel[:kc*nr], nr, j.b[col*j.ldb+p0:][:(cols-1)*j.ldb+kc], cols, j.ldb, kc)
	case kindBF16Wide:
		for p := range kc {
			for s := range cols {
				panel[p*nr+s] = widen(j.bh[j.bIndex(p0+p, col+s)])
			}
		}
	case kindInt8Wide:
		for p := range kc {
			for s := range cols {
				panel[p*nr+s] = float32(j.b8[j.bIndex(p0+p, col+s)])
			}
		}
	case kindBF16Pairs, kindBF16AMX:
		u := f32AsU32(panel)
		full := kc / 2
		if j.transB {
			if full > 0 {
				packPairsT(u[:full*nr], nr, j.bh[col*j.ldb+p0:][:(cols-1)*j.ldb+2*full], cols, j.ldb, full)
			}
			if 2*full < kc {
				for s := range cols {
					u[full*nr+s] = uint32(j.bh[(col+s)*j.ldb+p0+2*full])
				}
			}
			return
		}
		for q := range full {
			lo := j.bh[(p0+2*q)*j.ldb+col:][:cols]
			hi := j.bh[(p0+2*q+1)*j.ldb+col:][:cols]
			interleave(u[q*nr:q*nr+cols], lo, hi)
		}
		if 2*full < kc {
			lo := j.bh[(p0+2*full)*j.ldb+col:][:cols]
			d := u[full*nr : full*nr+cols]
			for s := range d {
				d[s] = uint32(lo[s])
			}
		}
	}
}

func widen(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

func f32AsU32(x []float32) []uint32 {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(&x[0])), len(x))
}

// u16AsU32 views an even number of little-endian uint16 as uint32 pairs,
// the first of each pair in the low half.
func u16AsU32(x []uint16) []uint32 {
	if len(x) < 2 {
		return nil
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(&x[0])), len(x)/2)
}

// rowBlock returns the first row and the row count of block ib of
// blocks over m rows: whole panels of mr rows shared out as evenly as
// they go (sizes differ by at most one panel), so that threads finish
// together.
func rowBlock(ib, blocks, m, mr int) (i0, rows int) {
	panels := ceilDiv(m, mr)
	p0, p1 := ib*panels/blocks, (ib+1)*panels/blocks
	i0 = p0 * mr
	return i0, min(p1*mr, m) - i0
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }

// bufPool recycles packing buffers so that a warm call does not allocate.
type bufPool[T any] struct{ p sync.Pool }

func (b *bufPool[T]) get(n int) *[]T {
	if p, ok := b.p.Get().(*[]T); ok {
		if cap(*p) >= n {
			*p = (*p)[:n]
			return p
		}
	}
	s := make([]T, n, n+n/4)
	return &s
}

func (b *bufPool[T]) put(p *[]T) { b.p.Put(p) }

// scratch is a task's tile-sized workspace: edge tiles and AMX tiles are
// written here before they are merged into C. (A local array would move
// to the heap: kernels are called through function values.)
type scratch struct {
	f [32 * 32]float32
	i [32 * 32]int32
	s [32]float32
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

// One pool per use, so that a call never draws a buffer sized for
// another use and drops it.
var (
	f32A, f32B   bufPool[float32] // packed A blocks, packed B slabs
	byteA, byteB bufPool[byte]    // the same for INT8
	int32Bufs    bufPool[int32]   // INT8 column sums; the portable INT8 rows
	f32Scales    bufPool[float32] // INT8 column scales
)
