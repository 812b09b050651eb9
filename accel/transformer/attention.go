package transformer

import (
	"math"
	"sync"
)

// Tiled causal attention in the FlashAttention style, on a CPU: queries
// are taken in blocks of attnBq rows and keys in blocks of attnBk, the
// softmax is computed online (running max and sum per query row), and only
// the output and each row's log-sum-exp are stored. The T×T score matrix is
// never written; the backward pass recomputes scores block by block from q,
// k and the stored log-sum-exp.
const (
	attnBq = 64
	attnBk = 64
)

// attnPattern says which keys a query sees: causal, optionally limited to
// a sliding window of Window positions plus Global leading positions (see
// Config.Visible, which it mirrors).
type attnPattern struct{ window, global int }

func (p attnPattern) visible(q, k int) bool {
	if k > q {
		return false
	}
	if p.window <= 0 || q-k < p.window {
		return true
	}
	return k < p.global
}

// blockVisible reports whether any query of [q0,q1) sees any key of [k0,k1).
func (p attnPattern) blockVisible(q0, q1, k0, k1 int) bool {
	if k0 > q1-1 {
		return false
	}
	if p.window <= 0 || k0 < p.global {
		return true
	}
	// Window: query q sees keys >= q-window+1; the last query sees most.
	return k1-1 >= q0-p.window+1
}

// attnHead describes one (sequence, head) of an attention call: its rows
// in the packed qkv [T, 3D] / out [T, D] buffers start at the offsets
// below and advance by the strides.
type attnHead struct {
	T, hd      int
	qkvStride  int // 3·D
	outStride  int // D
	qOff, kOff int // column offsets of this head's q and k (and v = k + D) in qkv rows
	vOff, oOff int
	scale      float32
	pat        attnPattern
}

// blockFull reports whether every query of [q0,q1) sees every key of
// [k0,k1) (no mask needed inside the tile).
func (p attnPattern) blockFull(q0, q1, k0, k1 int) bool {
	if k1-1 > q0 {
		return false
	}
	return p.window <= 0 || q1-1-k0 < p.window || k1 <= p.global
}

type attnScratch struct {
	s, dp        []float32 // attnBq × attnBk scores / probabilities and their gradient
	acc          []float32 // attnBq × hd output accumulator
	mx, sum, dlt []float32 // attnBq
}

var attnScratchPool = sync.Pool{New: func() any { return new(attnScratch) }}

func getAttnScratch(hd int) *attnScratch {
	s := attnScratchPool.Get().(*attnScratch)
	s.s = grow(s.s, attnBq*attnBk)
	s.dp = grow(s.dp, attnBq*attnBk)
	s.acc = grow(s.acc, attnBq*hd)
	s.mx = grow(s.mx, attnBq)
	s.sum = grow(s.sum, attnBq)
	s.dlt = grow(s.dlt, attnBq)
	return s
}

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy adds alpha·x to y.
func axpy(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

// mask sets the invisible entries of a score tile (rows q0.., columns
// k0.., row stride attnBk) to v.
func (p attnPattern) mask(s []float32, q0, nq, k0, nk int, v float32) {
	for r := range nq {
		row := s[r*attnBk : r*attnBk+nk]
		for c := range row {
			if !p.visible(q0+r, k0+c) {
				row[c] = v
			}
		}
	}
}

// attnForward computes out = softmax(q·kᵀ·scale, masked)·v for one head
// and stores each query row's log-sum-exp (natural log, of the scaled
// scores) in lse[0:T]. qkv and out are the head's sequence rows. The tile
// products run on tk, which must not split work across goroutines (the
// model already runs one head per goroutine).
func attnForward(tk Kernels, h attnHead, qkv, out, lse []float32) {
	sc := getAttnScratch(h.hd)
	defer attnScratchPool.Put(sc)
	T, hd, st := h.T, h.hd, h.qkvStride
	negInf := float32(math.Inf(-1))
	for q0 := 0; q0 < T; q0 += attnBq {
		q1 := min(q0+attnBq, T)
		nq := q1 - q0
		acc := sc.acc[:nq*hd]
		clear(acc)
		for r := range nq {
			sc.mx[r], sc.sum[r] = negInf, 0
		}
		for k0 := 0; k0 < q1; k0 += attnBk {
			k1 := min(k0+attnBk, q1)
			if !h.pat.blockVisible(q0, q1, k0, k1) {
				continue
			}
			nk := k1 - k0
			tk.Sgemm(false, true, nq, nk, hd, h.scale, qkv[q0*st+h.qOff:], st, qkv[k0*st+h.kOff:], st, 0, sc.s, attnBk)
			if !h.pat.blockFull(q0, q1, k0, k1) {
				h.pat.mask(sc.s, q0, nq, k0, nk, negInf)
			}
			for r := range nq {
				s := sc.s[r*attnBk : r*attnBk+nk]
				rowMax := negInf
				for _, v := range s {
					rowMax = max(rowMax, v)
				}
				if rowMax == negInf {
					clear(s) // nothing visible in this tile for this row
					continue
				}
				if m := sc.mx[r]; rowMax > m {
					corr := expf(m - rowMax) // 0 when m is -Inf
					sc.sum[r] *= corr
					a := acc[r*hd : (r+1)*hd]
					for j := range a {
						a[j] *= corr
					}
					sc.mx[r] = rowMax
				}
				expShift(s, s, sc.mx[r])
				var sum float32
				for _, p := range s {
					sum += p
				}
				sc.sum[r] += sum
			}
			tk.Sgemm(false, false, nq, hd, nk, 1, sc.s, attnBk, qkv[k0*st+h.vOff:], st, 1, acc, hd)
		}
		for r := range nq {
			tq := q0 + r
			o := out[tq*h.outStride+h.oOff : tq*h.outStride+h.oOff+hd]
			inv := 1 / sc.sum[r]
			a := acc[r*hd : (r+1)*hd]
			for j := range o {
				o[j] = a[j] * inv
			}
			lse[tq] = sc.mx[r] + float32(math.Log(float64(sc.sum[r])))
		}
	}
}

// attnBackward adds the gradient of one head's attention to its q, k and
// v columns of dqkv (which the caller clears), given dout, the forward
// output and lse. Per tile it recomputes P = exp(scale·q·kᵀ - lse) and
// runs the five tile products of the FlashAttention backward on tk.
func attnBackward(tk Kernels, h attnHead, qkv, out, lse, dout, dqkv []float32) {
	sc := getAttnScratch(h.hd)
	defer attnScratchPool.Put(sc)
	T, hd, st, ost := h.T, h.hd, h.qkvStride, h.outStride
	for q0 := 0; q0 < T; q0 += attnBq {
		q1 := min(q0+attnBq, T)
		nq := q1 - q0
		// delta_r = dout_r · out_r (the softmax backward's row term).
		for r := range nq {
			o := (q0+r)*ost + h.oOff
			sc.dlt[r] = dot(dout[o:o+hd], out[o:o+hd])
		}
		for k0 := 0; k0 < q1; k0 += attnBk {
			k1 := min(k0+attnBk, q1)
			if !h.pat.blockVisible(q0, q1, k0, k1) {
				continue
			}
			nk := k1 - k0
			P, dP := sc.s, sc.dp
			tk.Sgemm(false, true, nq, nk, hd, h.scale, qkv[q0*st+h.qOff:], st, qkv[k0*st+h.kOff:], st, 0, P, attnBk)
			for r := range nq {
				row := P[r*attnBk : r*attnBk+nk]
				expShift(row, row, lse[q0+r])
			}
			if !h.pat.blockFull(q0, q1, k0, k1) {
				h.pat.mask(P, q0, nq, k0, nk, 0)
			}
			// dV_j += Pᵀ·dO_i; dP = dO_i·V_jᵀ.
			tk.Sgemm(true, false, nk, hd, nq, 1, P, attnBk, dout[q0*ost+h.oOff:], ost, 1, dqkv[k0*st+h.vOff:], st)
			tk.Sgemm(false, true, nq, nk, hd, 1, dout[q0*ost+h.oOff:], ost, qkv[k0*st+h.vOff:], st, 0, dP, attnBk)
			// dS = P ⊙ (dP - delta)·scale, in dP.
			for r := range nq {
				dl := sc.dlt[r]
				p, d := P[r*attnBk:r*attnBk+nk], dP[r*attnBk:r*attnBk+nk]
				for c := range d {
					d[c] = p[c] * (d[c] - dl) * h.scale
				}
			}
			// dQ_i += dS·K_j; dK_j += dSᵀ·Q_i.
			tk.Sgemm(false, false, nq, hd, nk, 1, dP, attnBk, qkv[k0*st+h.kOff:], st, 1, dqkv[q0*st+h.qOff:], st)
			tk.Sgemm(true, false, nk, hd, nq, 1, dP, attnBk, qkv[q0*st+h.qOff:], st, 1, dqkv[k0*st+h.kOff:], st)
		}
	}
}
