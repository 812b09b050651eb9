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
	attnBq = 16
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

type attnScratch struct {
	s            []float32 // attnBq × attnBk scores / probabilities
	dp           []float32 // attnBq × attnBk
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

// attnForward computes out = softmax(q·kᵀ·scale, masked)·v for one head
// and stores each query row's log-sum-exp (natural log, of the scaled
// scores) in lse[0:T]. qkv and out are the head's sequence rows.
func attnForward(h attnHead, qkv, out, lse []float32) {
	sc := getAttnScratch(h.hd)
	defer attnScratchPool.Put(sc)
	T, hd := h.T, h.hd
	for q0 := 0; q0 < T; q0 += attnBq {
		q1 := min(q0+attnBq, T)
		nq := q1 - q0
		acc := sc.acc[:nq*hd]
		clear(acc)
		for r := range nq {
			sc.mx[r] = float32(math.Inf(-1))
			sc.sum[r] = 0
		}
		for k0 := 0; k0 < q1; k0 += attnBk {
			k1 := min(k0+attnBk, q1)
			if !h.pat.blockVisible(q0, q1, k0, k1) {
				continue
			}
			nk := k1 - k0
			for r := range nq {
				tq := q0 + r
				q := qkv[tq*h.qkvStride+h.qOff : tq*h.qkvStride+h.qOff+hd]
				s := sc.s[r*attnBk : r*attnBk+nk]
				mx := sc.mx[r]
				rowMax := float32(math.Inf(-1))
				for c := range nk {
					tk := k0 + c
					if !h.pat.visible(tq, tk) {
						s[c] = float32(math.Inf(-1))
						continue
					}
					v := dot(q, qkv[tk*h.qkvStride+h.kOff:tk*h.qkvStride+h.kOff+hd]) * h.scale
					s[c] = v
					rowMax = max(rowMax, v)
				}
				if math.IsInf(float64(rowMax), -1) {
					continue // nothing visible in this block for this row
				}
				newMx := max(mx, rowMax)
				a := acc[r*hd : (r+1)*hd]
				if newMx != mx {
					corr := expf(mx - newMx) // 0 when mx is -Inf
					sc.sum[r] *= corr
					for j := range a {
						a[j] *= corr
					}
					sc.mx[r] = newMx
				}
				var sum float32
				for c := range nk {
					if math.IsInf(float64(s[c]), -1) {
						continue
					}
					p := expf(s[c] - newMx)
					sum += p
					tk := k0 + c
					axpy(p, qkv[tk*h.qkvStride+h.vOff:tk*h.qkvStride+h.vOff+hd], a)
				}
				sc.sum[r] += sum
			}
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
// output and lse. Probabilities are recomputed per block as
// exp(score - lse).
func attnBackward(h attnHead, qkv, out, lse, dout, dqkv []float32) {
	sc := getAttnScratch(h.hd)
	defer attnScratchPool.Put(sc)
	T, hd := h.T, h.hd
	for q0 := 0; q0 < T; q0 += attnBq {
		q1 := min(q0+attnBq, T)
		nq := q1 - q0
		// delta_r = dout_r · out_r (the softmax backward's row term).
		for r := range nq {
			tq := q0 + r
			sc.dlt[r] = dot(dout[tq*h.outStride+h.oOff:tq*h.outStride+h.oOff+hd], out[tq*h.outStride+h.oOff:tq*h.outStride+h.oOff+hd])
		}
		for k0 := 0; k0 < q1; k0 += attnBk {
			k1 := min(k0+attnBk, q1)
			if !h.pat.blockVisible(q0, q1, k0, k1) {
				continue
			}
			nk := k1 - k0
			for r := range nq {
				tq := q0 + r
				q := qkv[tq*h.qkvStride+h.qOff : tq*h.qkvStride+h.qOff+hd]
				dq := dqkv[tq*h.qkvStride+h.qOff : tq*h.qkvStride+h.qOff+hd]
				g := dout[tq*h.outStride+h.oOff : tq*h.outStride+h.oOff+hd]
				l, dl := lse[tq], sc.dlt[r]
				for c := range nk {
					tk := k0 + c
					if !h.pat.visible(tq, tk) {
						continue
					}
					kb := tk * h.qkvStride
					k := qkv[kb+h.kOff : kb+h.kOff+hd]
					v := qkv[kb+h.vOff : kb+h.vOff+hd]
					p := expf(dot(q, k)*h.scale - l)
					axpy(p, g, dqkv[kb+h.vOff:kb+h.vOff+hd])
					ds := p * (dot(g, v) - dl) * h.scale
					axpy(ds, k, dq)
					axpy(ds, q, dqkv[kb+h.kOff:kb+h.kOff+hd])
				}
			}
		}
	}
}
