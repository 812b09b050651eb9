package transformer

import (
	"context"
	"fmt"
	"math"
)

// The forward and backward passes of a TPModel: the layout of Model's
// (forward, backward in model.go), on the local widths, with the four
// allreduces per layer where the split products meet the replicated
// residual stream. The kernels are the model's own (Sgemm, attnForward and
// attnBackward, addNormForward, normBackwardRows, the GELU/SwiGLU and
// cross-entropy rows).

// tpTask runs a closure as a pool task.
type tpTask func(i int)

func (f tpTask) Run(i int) { f(i) }

// ForwardBackward runs the batch forward and backward on this rank, ADDS
// the gradient of the training loss (the final head's mean cross-entropy,
// label-smoothed if set) to the local Grads, and returns the loss — the
// same on every rank.
func (m *TPModel) ForwardBackward(ctx context.Context, inputs, targets []int32, B, T int) (float64, error) {
	if err := m.checkBatch(inputs, targets, B, T); err != nil {
		return 0, err
	}
	m.ensureGrads()
	if err := m.forward(ctx, inputs, B, T); err != nil {
		return 0, err
	}
	loss := m.headLoss(targets, m.labelSmoothing, true)
	if err := m.backward(ctx, inputs); err != nil {
		return 0, err
	}
	return loss, nil
}

// Loss is Model.Loss: the final head's mean cross-entropy without label
// smoothing; gradients are not touched.
func (m *TPModel) Loss(ctx context.Context, inputs, targets []int32, B, T int) (float64, error) {
	if err := m.checkBatch(inputs, targets, B, T); err != nil {
		return 0, err
	}
	if err := m.forward(ctx, inputs, B, T); err != nil {
		return 0, err
	}
	return m.headLoss(targets, 0, false), nil
}

func (m *TPModel) checkBatch(inputs, targets []int32, B, T int) error {
	c := m.cfg
	if B <= 0 || T <= 0 {
		return fmt.Errorf("%w: batch %d and seq_len %d must be positive", ErrInvalidInput, B, T)
	}
	if T > c.NCtx {
		return fmt.Errorf("%w: seq_len %d exceeds n_ctx %d", ErrInvalidInput, T, c.NCtx)
	}
	if len(inputs) != B*T || len(targets) != B*T {
		return fmt.Errorf("%w: %d inputs and %d targets for batch %d x seq_len %d", ErrInvalidInput, len(inputs), len(targets), B, T)
	}
	for what, toks := range map[string][]int32{"input": inputs, "target": targets} {
		for i, t := range toks {
			if t < 0 || int(t) >= c.VocabSize {
				return fmt.Errorf("%w: %s %d at index %d is outside vocab_size %d", ErrInvalidInput, what, t, i, c.VocabSize)
			}
		}
	}
	return nil
}

// ensureActs sizes the activations for B·T rows; the split ones are
// local-width.
func (m *TPModel) ensureActs(B, T int) {
	N := B * T
	m.B, m.T, m.N = B, T, N
	a := &m.a
	if N <= a.rows {
		return
	}
	D, L, V := m.cfg.NEmbd, m.cfg.NLayer, m.cfg.VocabSize
	a.resid = growEach(a.resid, L+1, N*D)
	a.ln1 = growEach(a.ln1, L, N*D)
	a.ln2 = growEach(a.ln2, L, N*D)
	a.ln1Mean = growEach(a.ln1Mean, L, N)
	a.ln1Rstd = growEach(a.ln1Rstd, L, N)
	a.ln2Mean = growEach(a.ln2Mean, L, N)
	a.ln2Rstd = growEach(a.ln2Rstd, L, N)
	a.qkv = growEach(a.qkv, L, N*3*m.dl)
	a.lse = growEach(a.lse, L, N*m.hl)
	a.y = growEach(a.y, L, N*m.dl)
	a.x1 = growEach(a.x1, L, N*D)
	a.fc = growEach(a.fc, L, N*m.fl)
	a.gelu = growEach(a.gelu, L, N*m.fl)
	a.gate = growEach(a.gate, L, N*m.fl)
	a.dgate = grow(a.dgate, N*m.fl)
	a.lnf = grow(a.lnf, N*D)
	a.lnfMean = grow(a.lnfMean, N)
	a.lnfRst = grow(a.lnfRst, N)
	a.logits = grow(a.logits, N*V)
	a.dres = grow(a.dres, N*D)
	a.dtmp = grow(a.dtmp, N*D)
	a.dy = grow(a.dy, N*m.dl)
	a.dqkv = grow(a.dqkv, N*3*m.dl)
	a.dfc = grow(a.dfc, N*m.fl)
	if cap(m.rowLoss) < N {
		m.rowLoss = make([]float64, N)
	}
	a.rows = N
}

func (m *TPModel) chunks(n int) int { return max(1, min(n, 4*m.pool.Helpers()+4)) }

// rows runs f over the batch's rows in parallel chunks [lo, hi).
func (m *TPModel) rows(n int, f func(lo, hi int)) {
	c := m.chunks(n)
	m.pool.Run(tpTask(func(i int) { f(chunkRange(i, c, n)) }), c)
}

func (m *TPModel) addNorm(out, mean, rstd, x, add, bias, w, b []float32) {
	D := m.cfg.NEmbd
	m.rows(m.N, func(lo, hi int) { addNormForward(out, mean, rstd, x, add, bias, w, b, lo, hi, D) })
}

// normBack is Model.normBack: per-chunk partial parameter gradients,
// summed after.
func (m *TPModel) normBack(dx, dw, db, dout, x, mean, rstd, w []float32) {
	N, D := m.N, m.cfg.NEmbd
	c := m.chunks(N)
	part := grow(m.a.normPart, c*2*D)
	m.a.normPart = part
	clear(part)
	m.pool.Run(tpTask(func(i int) {
		lo, hi := chunkRange(i, c, N)
		var pb []float32
		if db != nil {
			pb = part[i*2*D+D : (i+1)*2*D]
		}
		normBackwardRows(dx, part[i*2*D:i*2*D+D], pb, dout, x, mean, rstd, w, lo, hi, D)
	}), c)
	for i := range c {
		axpy(1, part[i*2*D:i*2*D+D], dw)
		if db != nil {
			axpy(1, part[i*2*D+D:(i+1)*2*D], db)
		}
	}
}

// linear computes out[N,O] = in[N,I]·W[I,O] + b.
func (m *TPModel) linear(out, in, w, b []float32, N, I, O int) {
	out = out[:N*O]
	m.rows(N, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			copy(out[r*O:(r+1)*O], b)
		}
	})
	m.k.Sgemm(false, false, N, O, I, 1, in, I, w, O, 1, out, O)
}

// linearBackward is Model.linearBackward: dW += inᵀ·dout, db +=
// colsum(dout), din = dout·Wᵀ (+ beta·din).
func (m *TPModel) linearBackward(din []float32, beta float32, dw, db, dout, in, w []float32, N, I, O int) {
	m.linearWeightGrads(dw, db, dout, in, N, I, O)
	m.linearInputGrad(din, beta, dout, w, N, I, O)
}

// linearWeightGrads adds inᵀ·dout to dW and colsum(dout) to db.
func (m *TPModel) linearWeightGrads(dw, db, dout, in []float32, N, I, O int) {
	m.k.Sgemm(true, false, I, O, N, 1, in, I, dout, O, 1, dw, O)
	dout = dout[:N*O]
	m.rows(O, func(lo, hi int) {
		d := db[lo:hi]
		for r := 0; r+O <= len(dout); r += O {
			axpy(1, dout[r+lo:r+hi], d)
		}
	})
}

// linearInputGrad sets din = dout·Wᵀ (+ beta·din).
func (m *TPModel) linearInputGrad(din []float32, beta float32, dout, w []float32, N, I, O int) {
	m.k.Sgemm(false, true, N, I, O, 1, dout, O, w, O, beta, din, I)
}

// rope rotates the local q and k columns of qkv rows.
func (m *TPModel) rope(qkv []float32, inverse bool) {
	hd, T, W := m.cfg.HeadDim(), m.T, 3*m.dl
	m.rows(m.N, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			p := r % T
			ropeRow(qkv[r*W:r*W+2*m.dl], m.ropeCos[p*hd/2:(p+1)*hd/2], m.ropeSin[p*hd/2:(p+1)*hd/2], hd, inverse)
		}
	})
}

// head describes local head h in the local qkv [T, 3·dl] and y [T, dl].
func (m *TPModel) head(h int) attnHead {
	hd := m.cfg.HeadDim()
	return attnHead{T: m.T, hd: hd, qkvStride: 3 * m.dl, outStride: m.dl,
		qOff: h * hd, kOff: m.dl + h*hd, vOff: 2*m.dl + h*hd, oOff: h * hd,
		scale: float32(1 / math.Sqrt(float64(hd))),
		pat:   attnPattern{window: m.cfg.AttnWindow, global: m.cfg.AttnGlobal}}
}

// act applies the MLP activation to layer l's local hidden columns (adding
// the c_fc and c_gate biases first), or on the backward pass turns a.dfc
// into its gradient (and fills a.dgate for SwiGLU).
func (m *TPModel) act(l int, backward bool) {
	W := m.fl
	a, lp := &m.a, &m.p.layers[l]
	swiglu := m.cfg.SwiGLU()
	m.rows(m.N, func(lo, hi int) {
		x := a.fc[l][lo*W : hi*W]
		if backward {
			if swiglu {
				swigluBackward(a.dfc[lo*W:hi*W], a.dgate[lo*W:hi*W], a.gate[l][lo*W:hi*W], x)
			} else {
				geluBackward(a.dfc[lo*W:hi*W], a.gate[l][lo*W:hi*W], x)
			}
			return
		}
		for r := 0; r < len(x); r += W {
			axpy(1, lp.fcB, x[r:r+W])
			g := a.gate[l][lo*W+r : lo*W+r+W]
			if swiglu {
				axpy(1, lp.gateB, g)
				swigluForward(a.gelu[l][lo*W+r:lo*W+r+W], g, x[r:r+W])
			} else {
				geluForward(a.gelu[l][lo*W+r:lo*W+r+W], g, x[r:r+W])
			}
		}
	})
}

// forward runs the network up to the final norm (a.lnf), with two
// allreduces per layer.
func (m *TPModel) forward(ctx context.Context, inputs []int32, B, T int) error {
	m.ensureActs(B, T)
	c := m.cfg
	D, N, L, H, dl, fl := c.NEmbd, B*T, c.NLayer, m.hl, m.dl, m.fl
	a := &m.a
	x := a.resid[0][:N*D]
	for i, tok := range inputs {
		row := x[i*D : (i+1)*D]
		copy(row, m.p.wte[int(tok)*D:])
		if !c.RoPE() {
			axpy(1, m.p.wpe[(i%T)*D:(i%T+1)*D], row)
		}
	}
	m.addNorm(a.ln1[0], a.ln1Mean[0], a.ln1Rstd[0], x, nil, nil, m.p.layers[0].ln1W, m.p.layers[0].ln1B)
	for l := range L {
		lp := &m.p.layers[l]
		in := a.resid[l][:N*D]
		m.linear(a.qkv[l], a.ln1[l], lp.attnW, lp.attnB, N, D, 3*dl)
		if c.RoPE() {
			m.rope(a.qkv[l], false)
		}
		qkv, y, lse := a.qkv[l], a.y[l], a.lse[l]
		m.pool.Run(tpTask(func(i int) {
			b, h := i/H, i%H
			attnForward(m.tk, m.head(h), qkv[b*T*3*dl:(b+1)*T*3*dl], y[b*T*dl:(b+1)*T*dl], lse[i*T:(i+1)*T])
		}), B*H)
		// This rank's heads' share of c_proj, summed over the group; the
		// bias is added once, with the residual, by the norm that follows.
		x1 := a.x1[l][:N*D]
		m.k.Sgemm(false, false, N, D, dl, 1, y, dl, lp.projW, D, 0, x1, D)
		if err := m.allReduce(ctx, x1); err != nil {
			return err
		}
		m.addNorm(a.ln2[l], a.ln2Mean[l], a.ln2Rstd[l], x1, in, lp.projB, lp.ln2W, lp.ln2B)
		m.k.Sgemm(false, false, N, fl, D, 1, a.ln2[l], D, lp.fcW, fl, 0, a.fc[l], fl)
		if c.SwiGLU() {
			m.k.Sgemm(false, false, N, fl, D, 1, a.ln2[l], D, lp.gateW, fl, 0, a.gate[l], fl)
		}
		m.act(l, false)
		out := a.resid[l+1][:N*D]
		m.k.Sgemm(false, false, N, D, fl, 1, a.gelu[l], fl, lp.mprojW, D, 0, out, D)
		if err := m.allReduce(ctx, out); err != nil {
			return err
		}
		if l+1 < L {
			np := &m.p.layers[l+1]
			m.addNorm(a.ln1[l+1], a.ln1Mean[l+1], a.ln1Rstd[l+1], out, x1, lp.mprojB, np.ln1W, np.ln1B)
		} else {
			m.addNorm(a.lnf, a.lnfMean, a.lnfRst, out, x1, lp.mprojB, m.p.lnfW, m.p.lnfB)
		}
	}
	return nil
}

// headLoss projects a.lnf onto the tied embedding and returns the mean
// cross-entropy (label smoothing eps); with grad it leaves dloss/dlogits
// in a.logits.
func (m *TPModel) headLoss(targets []int32, eps float32, grad bool) float64 {
	N, D, V := m.N, m.cfg.NEmbd, m.cfg.VocabSize
	m.k.Sgemm(false, true, N, V, D, 1, m.a.lnf, D, m.p.wte, D, 0, m.a.logits, V)
	scale := 1 / float32(N)
	m.rows(N, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			m.rowLoss[r] = crossEntropyRow(m.a.logits[r*V:(r+1)*V], int(targets[r]), eps, scale, grad)
		}
	})
	var loss float64
	for _, l := range m.rowLoss[:N] {
		loss += l
	}
	return loss / float64(N)
}

// backward propagates from dlogits to the local Grads, with two
// allreduces per layer (the input gradients of c_fc and c_attn, partial
// on each rank, summed before the norms' backward), each overlapping the
// weight gradients of its product.
func (m *TPModel) backward(ctx context.Context, inputs []int32) error {
	c := m.cfg
	N, D, V, T, H, dl, fl := m.N, c.NEmbd, c.VocabSize, m.T, m.hl, m.dl, m.fl
	a := &m.a
	dl0 := a.logits[:N*V]
	dx := a.dtmp[:N*D]
	m.k.Sgemm(false, false, N, D, V, 1, dl0, V, m.p.wte, D, 0, dx, D)
	m.k.Sgemm(true, false, V, D, N, 1, dl0, V, a.lnf, D, 1, m.g.wte, D)
	dres := a.dres[:N*D]
	clear(dres)
	m.normBack(dres, m.g.lnfW, m.g.lnfB, dx, a.resid[c.NLayer], a.lnfMean, a.lnfRst, m.p.lnfW)
	for l := c.NLayer - 1; l >= 0; l-- {
		lp, lg := &m.p.layers[l], &m.g.layers[l]
		// MLP: out = x1 + Σ_ranks act(ln2(x1))·Wproj + bproj.
		dfc := a.dfc[:N*fl]
		m.linearBackward(dfc, 0, lg.mprojW, lg.mprojB, dres, a.gelu[l], lp.mprojW, N, fl, D)
		m.act(l, true)
		// The input gradient first: its allreduce runs while the weight
		// gradients, which do not need it, are computed.
		m.linearInputGrad(dx, 0, dfc, lp.fcW, N, D, fl)
		if c.SwiGLU() {
			m.linearInputGrad(dx, 1, a.dgate[:N*fl], lp.gateW, N, D, fl)
		}
		wait := m.allReduceAsync(ctx, dx)
		m.linearWeightGrads(lg.fcW, lg.fcB, dfc, a.ln2[l], N, D, fl)
		if c.SwiGLU() {
			m.linearWeightGrads(lg.gateW, lg.gateB, a.dgate[:N*fl], a.ln2[l], N, D, fl)
		}
		if err := wait(); err != nil {
			return err
		}
		m.normBack(dres, lg.ln2W, lg.ln2B, dx, a.x1[l], a.ln2Mean[l], a.ln2Rstd[l], lp.ln2W)
		// Attention: x1 = in + Σ_ranks attn(ln1(in))·Wproj + bproj.
		dy := a.dy[:N*dl]
		m.linearBackward(dy, 0, lg.projW, lg.projB, dres, a.y[l], lp.projW, N, dl, D)
		qkv, y, lse, dqkv := a.qkv[l], a.y[l], a.lse[l], a.dqkv[:N*3*dl]
		clear(dqkv)
		m.pool.Run(tpTask(func(i int) {
			b, h := i/H, i%H
			attnBackward(m.tk, m.head(h), qkv[b*T*3*dl:(b+1)*T*3*dl], y[b*T*dl:(b+1)*T*dl],
				lse[i*T:(i+1)*T], dy[b*T*dl:(b+1)*T*dl], dqkv[b*T*3*dl:(b+1)*T*3*dl])
		}), m.B*H)
		if c.RoPE() {
			m.rope(dqkv, true)
		}
		m.linearInputGrad(dx, 0, dqkv, lp.attnW, N, D, 3*dl)
		wait = m.allReduceAsync(ctx, dx)
		m.linearWeightGrads(lg.attnW, lg.attnB, dqkv, a.ln1[l], N, D, 3*dl)
		if err := wait(); err != nil {
			return err
		}
		m.normBack(dres, lg.ln1W, lg.ln1B, dx, a.resid[l], a.ln1Mean[l], a.ln1Rstd[l], lp.ln1W)
	}
	for i, tok := range inputs {
		row := dres[i*D : (i+1)*D]
		axpy(1, row, m.g.wte[int(tok)*D:(int(tok)+1)*D])
		if !c.RoPE() {
			axpy(1, row, m.g.wpe[(i%T)*D:(i%T+1)*D])
		}
	}
	return nil
}
