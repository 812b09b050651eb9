package transformer

import "github.com/llmesh/llmesh/accel/simd"

// Decoding multiplies a few rows (one per sequence decoding) by each
// weight matrix. A packed GEMM copies the whole weight matrix into panels
// on every call and fills a register tile meant for many rows, which costs
// more than the product itself at that size; below gemvMaxRows rows the
// decoder streams each weight row once instead, splitting the output
// columns across the worker pool.

// gemvMaxRows is the most rows the streaming path takes; more go to
// Kernels.Sgemm.
const gemvMaxRows = 16

// parallelWork is the least work (multiply-adds) that the decoder splits
// across the worker pool, waking helpers if need be. A single-row product
// of the reference model (256×768, 0.2M) runs in about 10-20 µs on one
// core: a wake-up on a loaded machine can take longer than the product, so
// such products are only cut into pieces for helpers already spinning
// (shortWork, RunShort), which back off when they keep the caller waiting.
const parallelWork = 1 << 21

// shortWork is the least work that the decoder splits across helpers
// already spinning (simd.Pool.RunShort): a few microseconds, where a
// hand-off to a spinning helper costs well under one.
const shortWork = 1 << 15

// par runs t's n pieces on the pool when work (multiply-adds) is large
// enough to pay for a wake-up, across spinning helpers when it pays for a
// hand-off, else on the calling goroutine.
func (d *Decoder) par(t simd.Task, n, work int) {
	switch {
	case work >= parallelWork:
		d.pool.Run(t, n)
	case work >= shortWork:
		d.pool.RunShort(t, n)
	default:
		for i := range n {
			t.Run(i)
		}
	}
}

// VectorKernels is an optional extension of Kernels (found by type
// assertion) with the two vector primitives the decoder's few-row
// products are made of. Without it the decoder uses portable loops.
type VectorKernels interface {
	// Dot returns Σ x[i]·y[i] (len(x) == len(y)).
	Dot(x, y []float32) float32
	// Axpy adds alpha·x to y (len(x) == len(y)).
	Axpy(alpha float32, x, y []float32)
}

type portableVec struct{}

func (portableVec) Dot(x, y []float32) float32         { return dot(x, y) }
func (portableVec) Axpy(alpha float32, x, y []float32) { axpy(alpha, x, y) }

// gemvTask is one few-row product, cut into column ranges.
type gemvTask struct {
	vk         VectorKernels
	rk         RowKernels // the kernels' own, or nil
	transB     bool
	out, in, w []float32
	N, I, O    int
	per        int // columns per piece, a multiple of 16
}

// matmul adds in[N,I]·W[I,O] to out[N,O], or in[N,I]·W[O,I]ᵀ when transB;
// an INT8 model's quantized matrices run on the INT8 kernels.
func (d *Decoder) matmul(transB bool, out, in, w []float32, N, I, O int) {
	if qm := d.m.int8Mat(w); qm != nil {
		d.m.int8.product(&d.m.int8.dScr, qm, out, in, N, true, d.k)
		return
	}
	if N > gemvMaxRows {
		if pk, ok := d.k.(PackedKernels); ok {
			if pb := d.packed(pk, transB, w, I, O); pb != nil {
				pk.SgemmPacked(false, N, 1, in, I, pb, 1, out, O)
				return
			}
		}
		ldb := O
		if transB {
			ldb = I
		}
		d.k.Sgemm(false, transB, N, O, I, 1, in, I, w, ldb, 1, out, O)
		return
	}
	t := &d.tGemv
	*t = gemvTask{vk: d.vk, rk: d.rkOwn, transB: transB, out: out, in: in, w: w, N: N, I: I, O: O}
	pieces := 1
	if N*I*O >= shortWork {
		pieces = d.pool.Helpers() + 1
	}
	t.per = (O/pieces + 15) &^ 15
	pieces = (O + t.per - 1) / t.per
	d.par(t, pieces, N*I*O)
	t.out, t.in, t.w = nil, nil, nil
}

func (t *gemvTask) Run(p int) {
	lo, hi := p*t.per, min((p+1)*t.per, t.O)
	if lo >= hi {
		return
	}
	N, I, O := t.N, t.I, t.O
	if N == 1 && t.rk != nil {
		// One call over the piece's columns: out stays in registers
		// while the weight rows stream past.
		if t.transB {
			t.rk.DotRows(t.in[:I], t.w[lo*I:], I, t.out[lo:hi], true)
		} else {
			t.rk.AxpyRows(t.in[:I], t.w[lo:], O, t.out[lo:hi])
		}
		return
	}
	if t.transB {
		for o := lo; o < hi; o++ {
			wr := t.w[o*I : (o+1)*I]
			for r := range N {
				t.out[r*O+o] += t.vk.Dot(t.in[r*I:(r+1)*I], wr)
			}
		}
		return
	}
	i := 0
	if _, ok := t.vk.(portableVec); ok {
		// Four weight rows per pass: one load and store of out per four
		// multiply-adds.
		for ; i+4 <= I; i += 4 {
			w0, w1 := t.w[i*O+lo:i*O+hi], t.w[(i+1)*O+lo:(i+1)*O+hi]
			w2, w3 := t.w[(i+2)*O+lo:(i+2)*O+hi], t.w[(i+3)*O+lo:(i+3)*O+hi]
			for r := range N {
				a := t.in[r*I+i : r*I+i+4 : r*I+i+4]
				axpy4(t.out[r*O+lo:r*O+hi], w0, w1, w2, w3, a[0], a[1], a[2], a[3])
			}
		}
	}
	for ; i < I; i++ {
		wr := t.w[i*O+lo : i*O+hi]
		for r := range N {
			t.vk.Axpy(t.in[r*I+i], wr, t.out[r*O+lo:r*O+hi])
		}
	}
}

// axpy4 adds a0·w0 + a1·w1 + a2·w2 + a3·w3 to y.
func axpy4(y, w0, w1, w2, w3 []float32, a0, a1, a2, a3 float32) {
	n := len(y)
	w0, w1, w2, w3 = w0[:n], w1[:n], w2[:n], w3[:n]
	for j := range y {
		y[j] += (a0*w0[j] + a1*w1[j]) + (a2*w2[j] + a3*w3[j])
	}
}

// transposedMaxParams bounds the models whose decoders keep a transposed
// copy of the layer weights (up to 128 MiB more memory): with W stored
// [O, I], a product of several rows is one Dot per row and output over
// contiguous memory, each weight row read once and reused from L1 for
// every row, with no store per multiply-add as in Axpy.
const transposedMaxParams = 1 << 25

// transposed returns w [I, O] as [O, I], built on first use and kept until
// Reset; nil when the model is too large to keep copies, or for an INT8
// matrix (matmul runs those on the INT8 kernels).
func (d *Decoder) transposed(w []float32, I, O int) []float32 {
	if len(d.m.params) > transposedMaxParams || d.m.int8Mat(w) != nil {
		return nil
	}
	if d.wT == nil {
		d.wT = map[*float32][]float32{}
	}
	key := &w[0]
	if t, ok := d.wT[key]; ok {
		return t
	}
	t := make([]float32, I*O)
	for i := range I {
		row := w[i*O : (i+1)*O]
		for o, v := range row {
			t[o*I+i] = v
		}
	}
	d.wT[key] = t
	return t
}

// PackedKernels is an optional extension of Kernels (found by type
// assertion; *simd.Kernels has it): a GEMM whose right-hand side was
// packed once. The decoder packs each weight matrix on first use, so that
// a step of many rows (a batch of 17 or more sequences, or a prefill) does
// not repack the weights on every call — at 32 rows the packing cost as
// much as the product.
type PackedKernels interface {
	PackB(transB bool, k, n int, b []float32, ldb int) *simd.PackedB
	SgemmPacked(transA bool, m int, alpha float32, a []float32, lda int, pb *simd.PackedB, beta float32, c []float32, ldc int)
}

type packedKey struct {
	w      *float32
	transB bool
}

// packed returns w (I×O, or O×I when transB) packed by pk, cached until
// Reset; nil for models too large to keep a packed copy of (the same bound
// as the transposed copies).
func (d *Decoder) packed(pk PackedKernels, transB bool, w []float32, I, O int) *simd.PackedB {
	if len(d.m.params) > transposedMaxParams {
		return nil
	}
	key := packedKey{&w[0], transB}
	if pb, ok := d.wP[key]; ok {
		return pb
	}
	if d.wP == nil {
		d.wP = map[packedKey]*simd.PackedB{}
	}
	ldb := O
	if transB {
		ldb = I
	}
	pb := pk.PackB(transB, I, O, w, ldb)
	d.wP[key] = pb
	return pb
}
