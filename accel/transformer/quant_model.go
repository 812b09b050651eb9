package transformer

import (
	"fmt"
	"math"
	"runtime"

	"github.com/llmesh/llmesh/accel/simd"
)

// The model's three quantization modes, all hooked into Model.product
// (every weight product of the forward pass goes through it):
//
//   - INT8 (a model read from a quantized checkpoint, see Quantize):
//     products with a quantized matrix quantize their input rows to INT8
//     (per row, or with the matrix's static scale) and run accel/simd's
//     INT8 GEMM (VNNI where the CPU has it, a widened float32 product
//     elsewhere); ParamData holds the dequantized weights, which the
//     embedding lookup reads.
//   - QAT (SetQAT): the forward pass and the input gradients use the
//     fake-quantized weights (each quantizable matrix rounded through
//     INT8 as Quantize would, then dequantized), recomputed from the
//     fp32 master weights at the start of every pass; the weight
//     gradients pass straight through to the master weights (STE).
//   - Activation statistics (StartActivationStats): each product records
//     the largest |x| of its input rows, by weight name: the calibration
//     of static (W8A8) activation scales.

// int8State is an INT8 model's quantized matrices.
type int8State struct {
	static bool
	mats   map[*float32]*qmat // by the first element of the weight in ParamData
	order  []*qmat            // layout order
	k8     *simd.Kernels
	mScr   int8Scratch // the Model's
	dScr   int8Scratch // its Decoder's
}

// int8Scratch holds a product's quantized input rows and their scales.
type int8Scratch struct {
	xq []int8
	xs []float32
}

// int8Kernels are the INT8 kernels of a model on kernels k: k itself when
// it is accel/simd's, else accel/simd's portable level.
func int8Kernels(k Kernels) *simd.Kernels {
	if sk, ok := k.(*simd.Kernels); ok {
		return sk
	}
	return simd.Must(simd.WithLevel(simd.Generic), simd.WithThreads(runtime.GOMAXPROCS(0)))
}

// Quantized reports whether m is an INT8 model (read from a quantized
// checkpoint).
func (m *Model) Quantized() bool { return m.int8 != nil }

// QuantizedStatic reports whether an INT8 model quantizes activations
// with static (calibrated) scales.
func (m *Model) QuantizedStatic() bool { return m.int8 != nil && m.int8.static }

// int8Mat returns the INT8 matrix stored at w, or nil.
func (m *Model) int8Mat(w []float32) *qmat {
	if m.int8 == nil || len(w) == 0 {
		return nil
	}
	return m.int8.mats[&w[0]]
}

// product computes out[N,O] = in[N,I]·W[I,O] (beta 0) or adds it to out
// (beta 1); with transB W is [O,I] and the product takes Wᵀ. It is the
// one place the forward pass multiplies by weights: INT8 models, QAT and
// activation statistics hook in here.
func (m *Model) product(transB bool, out, in, w []float32, N, I, O int, beta float32) {
	if m.stats != nil {
		m.stats.observe(m, w, in[:N*I])
	}
	if qm := m.int8Mat(w); qm != nil {
		m.int8.product(&m.int8.mScr, qm, out, in, N, beta == 1, m.k)
		return
	}
	ldb := O
	if transB {
		ldb = I
	}
	m.k.Sgemm(false, transB, N, O, I, 1, in, I, m.fwdW(w), ldb, beta, out, O)
}

// fwdW is the weight the forward pass and the input gradients use in
// place of w: its fake-quantized copy under QAT, else w itself.
func (m *Model) fwdW(w []float32) []float32 {
	if m.qat != nil {
		if fq, ok := m.qat.fq[&w[0]]; ok {
			return fq
		}
	}
	return w
}

// product runs in[N,I]·W for the INT8 matrix qm into out[N,O] (adding to
// it when add).
func (s *int8State) product(sc *int8Scratch, qm *qmat, out, in []float32, N int, add bool, k Kernels) {
	I, O := qm.in(), qm.channels()
	if s.k8 == nil {
		s.k8 = int8Kernels(k)
	}
	w, _ := qm.packed.(*simd.Int8Weights)
	if w == nil {
		w = s.k8.PackInt8(qm.rowCh, O, I, qm.q, qm.cols, qm.scale)
		qm.packed = w
	}
	if cap(sc.xq) < N*I {
		sc.xq = make([]int8, N*I)
	}
	if cap(sc.xs) < N {
		sc.xs = make([]float32, N)
	}
	xq, xs := sc.xq[:N*I], sc.xs[:N]
	quantizeRows(xq, xs, in[:N*I], N, I, qm.act)
	// GemvInt8Packed: the few-row kernels for decoding steps, the GEMM
	// beyond; either adds to out when asked.
	s.k8.GemvInt8Packed(N, xq, I, xs, w, out[:N*O], O, add)
}

// quantizeRows quantizes the N rows of x (I wide) into q: with act = 0
// each row by its own scale max|x|/127 (stored in scales), else all with
// scale act (saturating at ±127). Rounding is to nearest, halves to even
// (simd.QuantizeInt8).
func quantizeRows(q []int8, scales, x []float32, N, I int, act float32) {
	for r := range N {
		row, qr := x[r*I:(r+1)*I], q[r*I:(r+1)*I]
		s := act
		if s == 0 {
			s = simd.MaxAbs(row) / 127
		}
		scales[r] = s
		if s == 0 || math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
			clear(qr)
			continue
		}
		simd.QuantizeInt8(qr, row, 1/s)
	}
}

// qatState holds the fake-quantized copies of the quantizable matrices.
type qatState struct {
	fq   map[*float32][]float32
	mats []qatMat
}

// qatMat is one matrix under QAT with its rounding buffers.
type qatMat struct {
	p     Param
	qm    qmat
	fq    []float32
	scale []float32
}

// Run refreshes matrix i (the matrices are independent: one pool piece
// each).
func (s *qatState) Run(i int) {
	e := &s.mats[i]
	quantizeMatrix(e.p.Data, e.qm.rows, e.qm.cols, e.qm.rowCh, e.qm.q, e.qm.scale)
	e.qm.dequantize(e.fq)
}

// SetQAT switches quantization-aware training on or off (see product):
// under QAT every pass of the Model sees the matrices Quantize quantizes
// rounded through symmetric per-output-channel INT8, and their gradients
// go straight through to the fp32 master weights. (A Decoder of the model
// decodes with the master weights.) An INT8 model refuses it.
func (m *Model) SetQAT(on bool) error {
	if !on {
		m.qat = nil
		return nil
	}
	if m.int8 != nil {
		return ErrQuantized
	}
	if m.qat == nil {
		s := &qatState{fq: map[*float32][]float32{}}
		for _, p := range quantizableParams(m) {
			qm := newQmat(p)
			fq := make([]float32, len(p.Data))
			s.fq[&p.Data[0]] = fq
			s.mats = append(s.mats, qatMat{p: p, qm: *qm, fq: fq})
		}
		m.qat = s
	}
	return nil
}

// QAT reports whether quantization-aware training is on.
func (m *Model) QAT() bool { return m.qat != nil }

// refreshQAT recomputes the fake-quantized weights from the master
// weights, at the start of every pass (the optimizer, or anyone holding
// ParamData, may have moved them), matrices in parallel: measured 25 ms
// against 0.8 s for a training step of the reference model (batch 8×256).
func (m *Model) refreshQAT() {
	m.pool.Run(m.qat, len(m.qat.mats))
}

// actStats records, per weight, the largest |x| of its input rows.
type actStats struct {
	names map[*float32]string
	max   map[string]float32
}

func (s *actStats) observe(m *Model, w, x []float32) {
	if s.names == nil {
		s.names = map[*float32]string{}
		for _, p := range m.ps {
			s.names[&p.Data[0]] = p.Name
		}
	}
	name, ok := s.names[&w[0]]
	if !ok {
		return
	}
	mx := s.max[name]
	for _, v := range x {
		mx = max(mx, abs32(v))
	}
	s.max[name] = mx
}

// StartActivationStats makes later passes record the largest |x| that
// enters each weight matrix (the linear layers and the LM head); see
// StopActivationStats.
func (m *Model) StartActivationStats() {
	m.stats = &actStats{max: map[string]float32{}}
}

// StopActivationStats stops recording and returns the maxima seen since
// StartActivationStats, by weight tensor name (the names Quantize's
// QuantOptions.ActivationMax takes); nil when none was started.
func (m *Model) StopActivationStats() map[string]float32 {
	if m.stats == nil {
		return nil
	}
	out := m.stats.max
	m.stats = nil
	return out
}

func (m *Model) checkTrainable() error {
	if m.int8 != nil {
		return fmt.Errorf("%w (%d INT8 matrices)", ErrQuantized, len(m.int8.order))
	}
	return nil
}
