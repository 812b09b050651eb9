package transformer

import "math"

// Fused elementwise kernels: each makes one pass over its rows where the
// unfused version made two or three (residual add + norm, GELU/SwiGLU and
// their derivatives, softmax + cross-entropy + its gradient). All are
// float32 with float32 or float64 accumulation as noted, and are checked
// against float64 references in fused_test.go.

// expf is exp for float32: Cody–Waite range reduction x = n·ln2 + r,
// |r| <= ln2/2, and a degree-6 polynomial (Cephes expf), about 2 ulp.
// It returns 0 below -87.3 (and for -Inf) and defers to math.Exp above 88.
func expf(x float32) float32 {
	switch {
	case x != x:
		return x
	case x < -87.3:
		return 0
	case x > 88:
		return float32(math.Exp(float64(x)))
	}
	// Round x·log2(e) to the nearest integer by adding and removing
	// 1.5·2²³ (float32 arithmetic is not reassociated by the compiler).
	const shifter = 12582912
	n := (x*1.44269504088896341 + shifter) - shifter
	r := x - n*0.693359375 + n*2.12194440e-4
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	y := p*r*r + r + 1
	return y * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// tanhf is tanh through expf: 1 - 2/(e^{2x}+1), exact limits beyond ±10.
func tanhf(x float32) float32 {
	if x > 10 {
		return 1
	}
	if x < -10 {
		return -1
	}
	return 1 - 2/(expf(2*x)+1)
}

const geluC = 0.7978845608028654 // sqrt(2/pi)

// geluForward writes GELU (tanh form) of x into out, computed as
// x·sigmoid(2u) with u = sqrt(2/pi)·(x + 0.044715x³), which equals
// 0.5x(1 + tanh u) without its cancellation for negative x. When sig is
// non-nil it keeps sigmoid(2u) there for geluBackward.
func geluForward(out, sig, x []float32) {
	out = out[:len(x)]
	if sig != nil {
		sig = sig[:len(x)]
	}
	if sig == nil {
		for j, v := range x {
			out[j] = v * sigmoidf(2*geluC*(v+0.044715*v*v*v))
		}
		return
	}
	// sig = exp(-2u) in one vector pass, then s = 1/(1+sig); in blocks
	// that stay in L1 between the passes.
	const blk = 1024
	for b0 := 0; b0 < len(x); b0 += blk {
		b1 := min(b0+blk, len(x))
		xs, ss, os := x[b0:b1], sig[b0:b1], out[b0:b1]
		ss, os = ss[:len(xs)], os[:len(xs)]
		for j, v := range xs {
			ss[j] = -2 * geluC * (v + 0.044715*v*v*v)
		}
		expShift(ss, ss, 0)
		for j, v := range xs {
			s := 1 / (1 + ss[j])
			ss[j] = s
			os[j] = v * s
		}
	}
}

// geluBackward multiplies d by GELU'(x) in place: with s = sigmoid(2u),
// GELU' = s + 2x·s(1-s)·u'(x). sig holds s from geluForward, or is nil
// to recompute it.
func geluBackward(d, sig, x []float32) {
	d = d[:len(x)]
	if sig != nil {
		sig = sig[:len(x)]
	}
	for j, v := range x {
		var s float32
		if sig != nil {
			s = sig[j]
		} else {
			s = sigmoidf(2 * geluC * (v + 0.044715*v*v*v))
		}
		d[j] *= s + 2*v*s*(1-s)*geluC*(1+3*0.044715*v*v)
	}
}

// sigmoidf is 1/(1+e^{-x}).
func sigmoidf(x float32) float32 { return 1 / (1 + expf(-x)) }

// swigluForward writes h = silu(gate) ⊙ up.
func swigluForward(h, gate, up []float32) {
	h, up = h[:len(gate)], up[:len(gate)]
	for j, g := range gate {
		h[j] = g * sigmoidf(g) * up[j]
	}
}

// swigluBackward turns dh (in place) into d/dup and writes d/dgate:
// dup = dh·silu(g), dgate = dh·up·s·(1 + g·(1-s)) with s = sigmoid(g).
func swigluBackward(dh, dgate, gate, up []float32) {
	dh, dgate, up = dh[:len(gate)], dgate[:len(gate)], up[:len(gate)]
	for j, g := range gate {
		s := sigmoidf(g)
		d := dh[j]
		dh[j] = d * g * s
		dgate[j] = d * up[j] * s * (1 + g*(1-s))
	}
}

// addNormForward is the residual add fused with the next norm: for each
// row, when add is non-nil, x += add (+ bias, the bias of the product that
// wrote x, when non-nil; x is the residual stream, updated in place), then
// out = norm(x) (LayerNorm with bias b, RMSNorm when b is nil), recording
// mean and 1/std. Sums are float64.
func addNormForward(out, mean, rstd, x, add, bias, w, b []float32, lo, hi, D int) {
	for r := lo; r < hi; r++ {
		row := x[r*D : (r+1)*D]
		switch {
		case add != nil && bias != nil:
			ar := add[r*D : (r+1)*D]
			bias := bias[:D]
			for j := range row {
				row[j] += ar[j] + bias[j]
			}
		case add != nil:
			ar := add[r*D : (r+1)*D]
			for j := range row {
				row[j] += ar[j]
			}
		}
		var s, ss float64
		for _, v := range row {
			s += float64(v)
			ss += float64(v) * float64(v)
		}
		mu := 0.0
		if b != nil {
			mu = s / float64(D)
		}
		vr := ss/float64(D) - mu*mu
		if vr < 0 {
			vr = 0
		}
		rs := 1 / math.Sqrt(vr+normEps)
		mean[r], rstd[r] = float32(mu), float32(rs)
		o := out[r*D : (r+1)*D]
		m32, r32 := float32(mu), float32(rs)
		if b != nil {
			for j, v := range row {
				o[j] = (v-m32)*r32*w[j] + b[j]
			}
		} else {
			for j, v := range row {
				o[j] = v * r32 * w[j]
			}
		}
	}
}

// normBackwardRows adds to dx (rows lo..hi) the gradient through the norm
// of dout, and to dw and db (nil for RMSNorm) the parameter gradients of
// those rows.
func normBackwardRows(dx, dw, db, dout, x, mean, rstd, w []float32, lo, hi, D int) {
	rms := db == nil
	for r := lo; r < hi; r++ {
		row, dr := x[r*D:(r+1)*D], dout[r*D:(r+1)*D]
		mu, rs := mean[r], rstd[r]
		var sumD, sumDX float32
		for j, v := range row {
			xh := (v - mu) * rs
			dn := dr[j] * w[j]
			sumD += dn
			sumDX += dn * xh
			dw[j] += dr[j] * xh
		}
		if !rms {
			for j, v := range dr {
				db[j] += v
			}
		}
		mD, mDX := sumD/float32(D), sumDX/float32(D)
		if rms {
			mD = 0
		}
		o := dx[r*D : (r+1)*D]
		for j, v := range row {
			xh := (v - mu) * rs
			o[j] += rs * (dr[j]*w[j] - mD - xh*mDX)
		}
	}
}

// crossEntropyRow computes one row's softmax cross-entropy with label
// smoothing eps (the target distribution is (1-eps)·onehot + eps/V) and,
// when grad, overwrites the logits with scale·(softmax - target). It
// returns the row's loss: lse - (1-eps)·x[tgt] - eps·mean(x).
func crossEntropyRow(row []float32, tgt int, eps float32, scale float32, grad bool) float64 {
	mx := row[0]
	for _, v := range row {
		mx = max(mx, v)
	}
	var sum, sumX float64
	xt := row[tgt]
	if grad {
		// Keep each exponential in the row: the gradient pass only scales.
		for _, v := range row {
			sumX += float64(v)
		}
		expShift(row, row, mx)
		for _, e := range row {
			sum += float64(e)
		}
	} else {
		for _, v := range row {
			sum += float64(expf(v - mx))
			sumX += float64(v)
		}
	}
	V := float64(len(row))
	lse := math.Log(sum) + float64(mx)
	loss := lse - (1-float64(eps))*float64(xt) - float64(eps)*sumX/V
	if grad {
		inv := float32(1/sum) * scale
		off := eps / float32(V) * scale
		for j, e := range row {
			row[j] = e*inv - off
		}
		row[tgt] -= (1 - eps) * scale
	}
	return loss
}
