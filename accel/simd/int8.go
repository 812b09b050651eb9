package simd

import (
	"fmt"
	"sync"
	"unsafe"
)

// MaxInt8K is the longest inner dimension GemmInt8 takes: VNNI sums
// unsigned-by-signed byte products in int32, which this keeps from
// overflowing.
const MaxInt8K = 1 << 16

// GemmInt8 computes C[i,j] = aScale[i]·bScale[j]·Σₚ A[i,p]·op(B)[p,j]
// with signed int8 A (m×k, row stride lda: quantized activations, one
// scale per row or one for all) and signed int8 B (k×n, or n×k with
// transB: weights in the out×in layout, one scale per output channel j or
// one for all), summing exactly in int32 and writing float32 C (m×n,
// stride ldc; C is overwritten, not read). k must not exceed MaxInt8K.
//
// On AVX-512 VNNI, A is shifted to unsigned (A+128) for VPDPBUSD and the
// 128·Σₚ B[p,j] this adds is subtracted per column, as oneDNN does; the
// result is exact up to the final float32 scaling. Without VNNI the
// operands are widened to float32 and the float32 kernels run: exact
// for k ≤ 1024, float32 rounding between 1024-slabs beyond.
func (k *Kernels) GemmInt8(transB bool, m, n, kk int, a []int8, lda int, aScale []float32, b []int8, ldb int, bScale []float32, c []float32, ldc int) {
	checkGemm("gemm int8", false, transB, m, n, kk, len(a), lda, len(b), ldb, len(c), ldc)
	if kk > MaxInt8K {
		panic(fmt.Sprintf("gemm int8: k=%d exceeds %d (int32 sums could overflow)", kk, MaxInt8K))
	}
	if len(aScale) != m && len(aScale) != 1 {
		panic(fmt.Sprintf("gemm int8: %d row scales for m=%d (want m or 1)", len(aScale), m))
	}
	if len(bScale) != n && len(bScale) != 1 {
		panic(fmt.Sprintf("gemm int8: %d column scales for n=%d (want n or 1)", len(bScale), n))
	}
	if m == 0 || n == 0 {
		return
	}
	j := int8Jobs.Get().(*int8Job)
	*j = int8Job{mr: 14, nr: 32, transB: transB, m: m, n: n, k: kk,
		a: a, lda: lda, aScale: aScale, b: b, ldb: ldb, bScale: bScale, c: c, ldc: ldc}
	switch k.int8 {
	case int8Go:
		*j = int8Job{}
		int8Jobs.Put(j)
		k.gemmInt8Wide(transB, m, n, kk, a, lda, aScale, b, ldb, bScale, c, ldc)
		return
	case int8VNNI:
		j.kern = int8Kernel()
	case int8AMX:
		j.amx, j.mr = k.amxI8, 32
	}
	j.run2(k)
	*j = int8Job{}
	int8Jobs.Put(j)
}

// int8Job is one INT8 product in flight; recycled. B is packed whole
// (k is not blocked: panels of kg groups of four bytes), A per block.
type int8Job struct {
	kern               int8Func
	amx                amxFunc      // AMX tiles instead of kern (A as signed rows, k padded to 64)
	pre                *Int8Weights // B packed already
	mr, nr             int
	transB             bool
	m, n, k            int
	a                  []int8
	lda                int
	aScale             []float32
	b                  []int8
	ldb                int
	bScale             []float32
	c                  []float32
	ldc                int
	kg                 int       // groups of four k
	bp                 []byte    // packed B: panels × kg × nr × 4
	comp               []int32   // 128·Σₚ B[p,j], padded to whole panels
	bs                 []float32 // bScale, padded to whole panels
	packing            bool
	chunk              int
	mc, mBlocks, group int
	panels             int
}

var int8Jobs = sync.Pool{New: func() any { return new(int8Job) }}

const (
	int8MC = 14 * 8
	// int8Chunk B panels (32 columns each) are multiplied by a whole A
	// block before the next: 8 panels of k=1024 are 256 KiB.
	int8Chunk = 8
)

func (j *int8Job) run2(k *Kernels) {
	threads := k.threads
	if j.m*j.n*j.k < 4*parallelMinWork {
		threads = 1
	}
	j.kg = ceilDiv(j.k, 4)
	if j.amx != nil {
		j.kg = roundUp(j.kg, 16)
	}
	j.panels = ceilDiv(j.n, j.nr)
	var bbuf *[]byte
	var cbuf *[]int32
	var sbuf *[]float32
	if j.pre == nil {
		bbuf = byteB.get(j.panels * j.kg * j.nr * 4)
		cbuf = int32Bufs.get(j.panels * j.nr)
		sbuf = f32Scales.get(j.panels * j.nr)
		j.bp, j.comp, j.bs = *bbuf, *cbuf, *sbuf
		j.packAll(k, threads)
	} else {
		j.bp, j.comp, j.bs = j.pre.bp, j.pre.comp, j.pre.bs
	}
	j.mBlocks = ceilDiv(j.m, int8MC)
	if threads > 1 && j.mBlocks%threads != 0 && j.m >= 2*j.mr*threads {
		j.mBlocks = roundUp(j.mBlocks, threads)
	}
	j.mBlocks = min(j.mBlocks, ceilDiv(j.m, j.mr))
	j.mc = ceilDiv(ceilDiv(j.m, j.mr), j.mBlocks) * j.mr // the largest block
	groups := 1
	if threads > 1 && j.mBlocks < threads {
		groups = min(threads, j.panels)
	}
	j.group = ceilDiv(j.panels, groups)
	groups = ceilDiv(j.panels, j.group)
	if threads == 1 {
		for i := range j.mBlocks * groups {
			j.Run(i)
		}
	} else {
		k.pool.Run(j, j.mBlocks*groups)
	}
	if j.pre == nil {
		byteB.put(bbuf)
		int32Bufs.put(cbuf)
		f32Scales.put(sbuf)
	}
}

// packAll packs every B panel into j.bp, j.comp and j.bs.
func (j *int8Job) packAll(k *Kernels, threads int) {
	j.packing = true
	if threads == 1 {
		j.chunk = j.panels
		j.Run(0)
	} else {
		j.chunk = ceilDiv(j.panels, 4*threads)
		k.pool.Run(j, ceilDiv(j.panels, j.chunk))
	}
	j.packing = false
}

// Int8Weights is B of GemmInt8 packed once (PackInt8), for weights that
// serve many products: GemmInt8Packed skips the packing that GemmInt8
// does on every call (for a few rows of activations, most of its time).
// It is read-only and safe to share.
type Int8Weights struct {
	n, k int
	mode int8Mode
	bp   []byte    // VNNI or AMX panels
	comp []int32   // their column sums times 128
	bs   []float32 // their scales, padded
	// Without VNNI: the weights as given (row-major k×n, or n×k with
	// transB), for GemmInt8.
	raw    []int8
	transB bool
	scale  []float32
}

// N and K are the weights' shape: K inputs, N output channels.
func (w *Int8Weights) N() int { return w.n }
func (w *Int8Weights) K() int { return w.k }

// PackInt8 packs B (k×n, or n×k with transB, row stride ldb; bScale one
// per output channel or one for all) for GemmInt8Packed on kernels of
// k's INT8 mode. The result keeps no reference to b.
func (k *Kernels) PackInt8(transB bool, n, kk int, b []int8, ldb int, bScale []float32) *Int8Weights {
	checkGemm("pack int8", false, transB, 0, n, kk, 0, kk, len(b), ldb, 0, n)
	if kk > MaxInt8K {
		panic(fmt.Sprintf("pack int8: k=%d exceeds %d (int32 sums could overflow)", kk, MaxInt8K))
	}
	if len(bScale) != n && len(bScale) != 1 {
		panic(fmt.Sprintf("pack int8: %d column scales for n=%d (want n or 1)", len(bScale), n))
	}
	w := &Int8Weights{n: n, k: kk, mode: k.int8, transB: transB, scale: append([]float32(nil), bScale...)}
	if k.int8 == int8Go || n == 0 || kk == 0 {
		rows, cols := kk, n
		if transB {
			rows, cols = n, kk
		}
		w.raw = make([]int8, rows*cols)
		for r := range rows {
			copy(w.raw[r*cols:(r+1)*cols], b[r*ldb:r*ldb+cols])
		}
		w.mode = int8Go
		return w
	}
	j := &int8Job{mr: 14, nr: 32, transB: transB, n: n, k: kk, b: b, ldb: ldb, bScale: bScale}
	if k.int8 == int8AMX {
		j.amx, j.mr = k.amxI8, 32
	}
	j.kg = ceilDiv(kk, 4)
	if j.amx != nil {
		j.kg = roundUp(j.kg, 16)
	}
	j.panels = ceilDiv(n, j.nr)
	w.bp = make([]byte, j.panels*j.kg*j.nr*4)
	w.comp = make([]int32, j.panels*j.nr)
	w.bs = make([]float32, j.panels*j.nr)
	j.bp, j.comp, j.bs = w.bp, w.comp, w.bs
	j.packAll(k, k.threads)
	return w
}

// GemmInt8Packed is GemmInt8 with B packed by PackInt8: C (m×n, stride
// ldc) = aScale[i]·w's scale[j]·Σₚ A[i,p]·B[p,j] for A m×k (stride lda).
// It panics when w was packed for another INT8 mode than k's.
func (k *Kernels) GemmInt8Packed(m int, a []int8, lda int, aScale []float32, w *Int8Weights, c []float32, ldc int) {
	if w.mode == int8Go {
		ldb := w.n
		if w.transB {
			ldb = w.k
		}
		k.GemmInt8(w.transB, m, w.n, w.k, a, lda, aScale, w.raw, ldb, w.scale, c, ldc)
		return
	}
	if w.mode != k.int8 {
		panic(fmt.Sprintf("gemm int8: weights packed for another kernel (mode %d, these kernels run %d)", w.mode, k.int8))
	}
	checkGemm("gemm int8", false, false, m, w.n, w.k, len(a), lda, w.n*w.k, w.n, len(c), ldc)
	if len(aScale) != m && len(aScale) != 1 {
		panic(fmt.Sprintf("gemm int8: %d row scales for m=%d (want m or 1)", len(aScale), m))
	}
	if m == 0 {
		return
	}
	j := int8Jobs.Get().(*int8Job)
	*j = int8Job{mr: 14, nr: 32, m: m, n: w.n, k: w.k, a: a, lda: lda, aScale: aScale, c: c, ldc: ldc, pre: w}
	switch w.mode {
	case int8VNNI:
		j.kern = int8Kernel()
	case int8AMX:
		j.amx, j.mr = k.amxI8, 32
	}
	j.run2(k)
	*j = int8Job{}
	int8Jobs.Put(j)
}

func (j *int8Job) Run(i int) {
	mr, nr, kg := j.mr, j.nr, j.kg
	if j.packing {
		for q := i * j.chunk; q < min((i+1)*j.chunk, j.panels); q++ {
			j.packB(q)
		}
		return
	}
	groups := ceilDiv(j.panels, j.group)
	ib, gi := i/groups, i%groups
	i0, mc := rowBlock(ib, j.mBlocks, j.m, j.mr)
	abuf := byteA.get(roundUp(mc, mr) * kg * 4)
	ap := *abuf
	if j.amx != nil {
		j.runAMX(ap, gi, i0, mc)
		byteA.put(abuf)
		return
	}
	j.packA(ap, i0, mc)
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	tmp, scales := &sc.f, &sc.s
	// B panels in chunks that stay in L2 while every A panel of the
	// block passes over them.
	qEnd := min((gi+1)*j.group, j.panels)
	for q0 := gi * j.group; q0 < qEnd; q0 += int8Chunk {
		for ir := 0; ir < mc; ir += mr {
			rows := min(mr, mc-ir)
			for r := range mr {
				switch {
				case r >= rows:
					scales[r] = 0
				case len(j.aScale) == 1:
					scales[r] = j.aScale[0]
				default:
					scales[r] = j.aScale[i0+ir+r]
				}
			}
			aq := unsafe.Pointer(&ap[ir*kg*4])
			for q := q0; q < min(q0+int8Chunk, qEnd); q++ {
				col := q * nr
				cols := min(nr, j.n-col)
				bq := unsafe.Pointer(&j.bp[q*kg*nr*4])
				comp, bs := unsafe.Pointer(&j.comp[col]), unsafe.Pointer(&j.bs[col])
				off := (i0+ir)*j.ldc + col
				if rows == mr && cols == nr {
					j.kern(kg, aq, bq, unsafe.Pointer(&j.c[off]), j.ldc, comp, unsafe.Pointer(&scales[0]), bs)
					continue
				}
				j.kern(kg, aq, bq, unsafe.Pointer(&tmp[0]), nr, comp, unsafe.Pointer(&scales[0]), bs)
				for r := range rows {
					copy(j.c[off+r*j.ldc:off+r*j.ldc+cols], tmp[r*nr:r*nr+cols])
				}
			}
		}
	}
	byteA.put(abuf)
}

// runAMX packs the A block as signed rows of kg·4 bytes (zero padded to
// 64 k and 32 rows) and multiplies it by the B panels of group gi with
// TDPBSSD tiles; signed by signed needs no compensation.
func (j *int8Job) runAMX(ap []byte, gi, i0, mc int) {
	kp := j.kg * 4
	clear(ap)
	for r := range mc {
		for p, v := range j.a[(i0+r)*j.lda:][:j.k] {
			ap[r*kp+p] = byte(v)
		}
	}
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	tile := &sc.i
	for q := gi * j.group; q < min((gi+1)*j.group, j.panels); q++ {
		col := q * 32
		cols := min(32, j.n-col)
		bq := unsafe.Pointer(&j.bp[q*j.kg*32*4])
		for ir := 0; ir < mc; ir += 32 {
			j.amx(unsafe.Pointer(&amxConfig), unsafe.Pointer(&ap[ir*kp]), kp, bq, j.kg/16, unsafe.Pointer(&tile[0]))
			for r := range min(32, mc-ir) {
				as := j.aScale[0]
				if len(j.aScale) > 1 {
					as = j.aScale[i0+ir+r]
				}
				dst := j.c[(i0+ir+r)*j.ldc+col:][:cols]
				for s := range dst {
					dst[s] = as * j.bs[col+s] * float32(tile[r*32+s])
				}
			}
		}
	}
}

// packA copies A[i0:i0+mc, :] into panels of mr rows: kg groups of mr×4
// bytes, each shifted to unsigned (x+128; padding is 0+128).
func (j *int8Job) packA(dst []byte, i0, mc int) {
	mr, kg := j.mr, j.kg
	full := j.k / 4
	for ir := 0; ir < mc; ir += mr {
		panel := dst[ir*kg*4 : (ir+mr)*kg*4]
		u := unsafe.Slice((*uint32)(unsafe.Pointer(&panel[0])), mr*kg)
		rows := min(mr, mc-ir)
		if full > 0 {
			src := j.a[(i0+ir)*j.lda:][:(rows-1)*j.lda+4*full]
			packWordsT(u[:full*mr], mr, unsafe.Pointer(&src[0]), uintptr(j.lda), rows, full, 0x80808080)
		}
		for r := rows; r < mr; r++ {
			for q := range kg {
				u[q*mr+r] = 0x80808080
			}
		}
		if full < kg {
			for r := range rows {
				src := j.a[(i0+ir+r)*j.lda:][:j.k]
				d := panel[(full*mr+r)*4:][:4]
				for t := range 4 {
					d[t] = 0x80
					if p := 4*full + t; p < j.k {
						d[t] = byte(src[p]) ^ 0x80
					}
				}
			}
		}
	}
}

// packB copies op(B)[:, q·nr : q·nr+nr] into panel q (kg groups of nr×4
// bytes, zero past k and n) and fills its column sums and scales.
func (j *int8Job) packB(q int) {
	nr, kg := j.nr, j.kg
	panel := j.bp[q*kg*nr*4 : (q+1)*kg*nr*4]
	col := q * nr
	cols := min(nr, j.n-col)
	if cols < nr || 4*kg != j.k {
		clear(panel)
	}
	for c := col + cols; c < col+nr; c++ {
		j.comp[c], j.bs[c] = 0, 0
	}
	sums := j.comp[col : col+cols]
	clear(sums)
	full := j.k / 4
	if j.transB {
		// Column c of op(B) is row c of B: its groups of four are
		// already contiguous.
		u := unsafe.Slice((*uint32)(unsafe.Pointer(&panel[0])), kg*nr)
		for s := range cols {
			src := j.b[(col+s)*j.ldb:][:j.k]
			var sum int32
			for _, v := range src {
				sum += int32(v)
			}
			sums[s] = sum
			if full > 0 {
				for q, v := range unsafe.Slice((*uint32)(unsafe.Pointer(&src[0])), full) {
					u[q*nr+s] = v
				}
			}
			for p := 4 * full; p < j.k; p++ {
				panel[(full*nr+s)*4+p-4*full] = byte(src[p])
			}
		}
	} else {
		for p := range j.k {
			row := j.b[p*j.ldb+col:][:cols]
			d := panel[(p/4)*nr*4+p%4:]
			for s, v := range row {
				d[s*4] = byte(v)
				sums[s] += int32(v)
			}
		}
	}
	for s := range cols {
		sums[s] *= 128
		if len(j.bScale) == 1 {
			j.bs[col+s] = j.bScale[0]
		} else {
			j.bs[col+s] = j.bScale[col+s]
		}
	}
}

// int8WideKC is the k slab of the widened INT8 path: float32 sums
// 1024 products of at most 128·128 = 2¹⁴ exactly (2²⁴ is float32's last
// exact integer step).
const int8WideKC = 1024

// gemmInt8Wide is GemmInt8 where there is no VNNI: A and B are widened
// to float32 while packing and the float32 kernels run (AVX2 or portable
// Go), then the scales apply. Sums are exact for k ≤ 1024; longer k adds
// its exact 1024-slabs with float32 rounding.
func (k *Kernels) gemmInt8Wide(transB bool, m, n, kk int, a []int8, lda int, aScale []float32, b []int8, ldb int, bScale []float32, c []float32, ldc int) {
	if kk > 0 {
		j := gemmJobs.Get().(*gemmJob)
		g := k.f32
		g.kc = int8WideKC
		*j = gemmJob{g: g, kind: kindInt8Wide, transB: transB, m: m, n: n, k: kk,
			alpha: 1, beta: 0, a8: a, b8: b, lda: lda, ldb: ldb, c: c, ldc: ldc}
		k.runGemm(j)
		*j = gemmJob{}
		gemmJobs.Put(j)
	}
	for i := range m {
		as := aScale[0]
		if len(aScale) > 1 {
			as = aScale[i]
		}
		row := c[i*ldc : i*ldc+n]
		if kk == 0 {
			clear(row)
			continue
		}
		if len(bScale) == 1 {
			k.Scale(as*bScale[0], row)
			continue
		}
		for jj := range row {
			row[jj] *= as * bScale[jj]
		}
	}
}
