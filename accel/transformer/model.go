package transformer

import (
	"errors"
	"fmt"
	"math"
	"runtime"
)

// ErrInvalidInput is wrapped by errors about a batch handed to the model
// (token ids, lengths, shapes).
var ErrInvalidInput = errors.New("transformer: invalid input")

const normEps = 1e-5

// Model is a decoder-only GPT (Pre-LN, GELU MLP, causal multi-head
// attention, tied embeddings) whose parameters live in one flat []float32.
//
// A Model is not safe for concurrent use: every method reuses the same
// activation buffers, which grow to the largest batch seen and are kept.
// Slices it returns from ParamData, Grads and Params alias its storage and
// stay valid for the Model's lifetime.
type Model struct {
	cfg     Config
	k       Kernels
	pool    *workerPool
	params  []float32
	grads   []float32
	ps      []Param
	p, g    modelParams
	ropeCos []float32 // [n_ctx, head_dim/2]
	ropeSin []float32
	a       acts

	// Shape of the batch in flight, read by the parallel tasks.
	B, T, N  int
	layer    int
	train    bool
	targets  []int32
	rowLoss  []float64
	tAttnFwd attnFwdTask
	tAttnBwd attnBwdTask
	tGelu    geluTask
	tCE      ceTask
}

// acts holds the activations of the last forward pass and the scratch of
// the backward pass. Capacity is in rows (B·T) and attention entries
// (B·H·T·T).
type acts struct {
	rows, attn int

	resid                [][]float32 // L+1 × [N,D]; resid[0] is the embedding
	ln1, ln2             [][]float32 // [N,D]
	ln1Mean, ln1Rstd     [][]float32 // [N]
	ln2Mean, ln2Rstd     [][]float32
	qkv                  [][]float32 // [N,3D], after rope
	att                  [][]float32 // [B,H,T,T] softmax probabilities
	y                    [][]float32 // [N,D] attention output before c_proj
	x1                   [][]float32 // [N,D] residual after attention
	fc, gelu             [][]float32 // [N,4D]
	lnf, lnfMean, lnfRst []float32
	logits               []float32 // [N,V]; probabilities or dlogits after a training pass

	dres, dtmp, dy []float32 // [N,D]
	dqkv           []float32 // [N,3D]
	dfc            []float32 // [N,4D]
	dp             []float32 // [B,H,T] attention backward scratch
}

// New builds a model with GPT-2 initialisation, deterministic in seed.
// The config must be valid (see Config.Validate); New panics otherwise.
func New(cfg Config, k Kernels, seed uint64) *Model {
	m := newEmpty(cfg, k)
	initParams(m.cfg, m.ps, seed)
	return m
}

func newEmpty(cfg Config, k Kernels) *Model {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if k == nil {
		k = PortableKernels()
	}
	m := &Model{cfg: cfg, k: k, pool: defaultPool()}
	m.ps = layout(cfg)
	last := m.ps[len(m.ps)-1]
	m.params = make([]float32, last.Offset+numel(last.Shape))
	m.p = bind(cfg, m.ps, m.params)
	if cfg.RoPE() {
		half := cfg.HeadDim() / 2
		m.ropeCos = make([]float32, cfg.NCtx*half)
		m.ropeSin = make([]float32, cfg.NCtx*half)
		for t := range cfg.NCtx {
			for i := range half {
				theta := float64(t) * math.Pow(10000, -2*float64(i)/float64(cfg.HeadDim()))
				m.ropeCos[t*half+i] = float32(math.Cos(theta))
				m.ropeSin[t*half+i] = float32(math.Sin(theta))
			}
		}
	}
	m.tAttnFwd.m, m.tAttnBwd.m, m.tGelu.m, m.tCE.m = m, m, m, m
	return m
}

// Config returns the model's config, defaults filled in.
func (m *Model) Config() Config { return m.cfg }

// NumParams is the number of parameters.
func (m *Model) NumParams() int { return len(m.params) }

// Params lists the tensors in their fixed order, each viewing ParamData.
func (m *Model) Params() []Param { return m.ps }

// ParamData is the flat parameter vector, in Params order.
func (m *Model) ParamData() []float32 { return m.params }

// Grads is the flat gradient vector, in Params order. It is allocated on
// first use and accumulates across ForwardBackward calls until ZeroGrads.
func (m *Model) Grads() []float32 {
	m.ensureGrads()
	return m.grads
}

// ZeroGrads clears the gradient vector.
func (m *Model) ZeroGrads() {
	m.ensureGrads()
	clear(m.grads)
}

func (m *Model) ensureGrads() {
	if m.grads == nil {
		m.grads = make([]float32, len(m.params))
		gps := make([]Param, len(m.ps))
		copy(gps, m.ps)
		m.g = bind(m.cfg, gps, m.grads)
	}
}

// ForwardBackward runs the batch (B rows of T tokens, row-major; targets
// are the next tokens) forward and backward, ADDS the gradient of the mean
// cross-entropy loss into Grads, and returns that loss.
func (m *Model) ForwardBackward(inputs, targets []int32, B, T int) (float64, error) {
	if err := m.checkBatch(inputs, targets, B, T); err != nil {
		return 0, err
	}
	m.ensureGrads()
	m.train = true
	m.forward(inputs, B, T)
	loss := m.crossEntropy(targets)
	m.backward(inputs)
	return loss, nil
}

// Loss returns the mean cross-entropy of the batch without touching the
// gradients.
func (m *Model) Loss(inputs, targets []int32, B, T int) (float64, error) {
	if err := m.checkBatch(inputs, targets, B, T); err != nil {
		return 0, err
	}
	m.train = false
	m.forward(inputs, B, T)
	return m.crossEntropy(targets), nil
}

// NextLogits returns, for each sequence, the logits of the token that
// follows it (one row of vocab_size per sequence). Sequences longer than
// n_ctx keep their last n_ctx tokens. The rows are freshly allocated.
func (m *Model) NextLogits(seqs [][]int32) ([][]float32, error) {
	if len(seqs) == 0 {
		return nil, fmt.Errorf("%w: no sequences", ErrInvalidInput)
	}
	T := 0
	for i, s := range seqs {
		if len(s) == 0 {
			return nil, fmt.Errorf("%w: sequence %d is empty", ErrInvalidInput, i)
		}
		T = max(T, min(len(s), m.cfg.NCtx))
	}
	B := len(seqs)
	// Right-pad with token 0: causal attention keeps padding from
	// affecting earlier positions, so row len-1 of each sequence is exact.
	inputs := make([]int32, B*T)
	for b, s := range seqs {
		if len(s) > m.cfg.NCtx {
			s = s[len(s)-m.cfg.NCtx:]
		}
		copy(inputs[b*T:], s)
	}
	if err := m.checkTokens("sequence token", inputs); err != nil {
		return nil, err
	}
	m.train = false
	m.forward(inputs, B, T)
	D, V := m.cfg.NEmbd, m.cfg.VocabSize
	last := make([]float32, B*D)
	for b, s := range seqs {
		n := min(len(s), m.cfg.NCtx)
		copy(last[b*D:(b+1)*D], m.a.lnf[(b*T+n-1)*D:])
	}
	out := make([]float32, B*V)
	m.k.Sgemm(false, true, B, V, D, 1, last, D, m.p.wte, D, 0, out, V)
	rows := make([][]float32, B)
	for b := range rows {
		rows[b] = out[b*V : (b+1)*V : (b+1)*V]
	}
	return rows, nil
}

func (m *Model) checkBatch(inputs, targets []int32, B, T int) error {
	if B <= 0 || T <= 0 {
		return fmt.Errorf("%w: batch %d and seq_len %d must be positive", ErrInvalidInput, B, T)
	}
	if T > m.cfg.NCtx {
		return fmt.Errorf("%w: seq_len %d exceeds n_ctx %d", ErrInvalidInput, T, m.cfg.NCtx)
	}
	if len(inputs) != B*T || len(targets) != B*T {
		return fmt.Errorf("%w: %d inputs and %d targets for batch %d x seq_len %d", ErrInvalidInput, len(inputs), len(targets), B, T)
	}
	if err := m.checkTokens("input", inputs); err != nil {
		return err
	}
	return m.checkTokens("target", targets)
}

func (m *Model) checkTokens(what string, toks []int32) error {
	for i, t := range toks {
		if t < 0 || int(t) >= m.cfg.VocabSize {
			return fmt.Errorf("%w: %s %d at index %d is outside vocab_size %d", ErrInvalidInput, what, t, i, m.cfg.VocabSize)
		}
	}
	return nil
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

func growEach(s [][]float32, layers, n int) [][]float32 {
	if len(s) != layers {
		s = make([][]float32, layers)
	}
	for i := range s {
		s[i] = grow(s[i], n)
	}
	return s
}

// ensureActs sizes the activation buffers for B·T rows, reusing them when
// they are big enough.
func (m *Model) ensureActs(B, T int) {
	N := B * T
	attn := B * m.cfg.NHead * T * T
	m.B, m.T, m.N = B, T, N
	a := &m.a
	if N <= a.rows && attn <= a.attn {
		return
	}
	rows, attnCap := max(N, a.rows), max(attn, a.attn)
	D, L, V := m.cfg.NEmbd, m.cfg.NLayer, m.cfg.VocabSize
	a.resid = growEach(a.resid, L+1, rows*D)
	a.ln1 = growEach(a.ln1, L, rows*D)
	a.ln2 = growEach(a.ln2, L, rows*D)
	a.ln1Mean = growEach(a.ln1Mean, L, rows)
	a.ln1Rstd = growEach(a.ln1Rstd, L, rows)
	a.ln2Mean = growEach(a.ln2Mean, L, rows)
	a.ln2Rstd = growEach(a.ln2Rstd, L, rows)
	a.qkv = growEach(a.qkv, L, rows*3*D)
	a.att = growEach(a.att, L, attnCap)
	a.y = growEach(a.y, L, rows*D)
	a.x1 = growEach(a.x1, L, rows*D)
	a.fc = growEach(a.fc, L, rows*4*D)
	a.gelu = growEach(a.gelu, L, rows*4*D)
	a.lnf = grow(a.lnf, rows*D)
	a.lnfMean = grow(a.lnfMean, rows)
	a.lnfRst = grow(a.lnfRst, rows)
	a.logits = grow(a.logits, rows*V)
	a.dres = grow(a.dres, rows*D)
	a.dtmp = grow(a.dtmp, rows*D)
	a.dy = grow(a.dy, rows*D)
	a.dqkv = grow(a.dqkv, rows*3*D)
	a.dfc = grow(a.dfc, rows*4*D)
	a.dp = grow(a.dp, rows*m.cfg.NHead)
	if cap(m.rowLoss) < rows {
		m.rowLoss = make([]float64, rows)
	}
	a.rows, a.attn = rows, attnCap
}

// forward runs the network up to the final norm (a.lnf).
func (m *Model) forward(inputs []int32, B, T int) {
	m.ensureActs(B, T)
	c := m.cfg
	D, N := c.NEmbd, B*T
	a := &m.a
	x := a.resid[0][:N*D]
	for i, tok := range inputs {
		row := x[i*D : (i+1)*D]
		copy(row, m.p.wte[int(tok)*D:])
		if !c.RoPE() {
			pos := m.p.wpe[(i%T)*D : (i%T+1)*D]
			for j := range row {
				row[j] += pos[j]
			}
		}
	}
	for l := range c.NLayer {
		lp := &m.p.layers[l]
		in := a.resid[l][:N*D]
		normForward(a.ln1[l], a.ln1Mean[l], a.ln1Rstd[l], in, lp.ln1W, lp.ln1B, N, D)
		m.linear(a.qkv[l], a.ln1[l], lp.attnW, lp.attnB, N, D, 3*D)
		if c.RoPE() {
			m.rope(a.qkv[l], false)
		}
		m.layer = l
		m.pool.run(&m.tAttnFwd, B*c.NHead)
		x1 := a.x1[l][:N*D]
		m.linear(x1, a.y[l], lp.projW, lp.projB, N, D, D)
		for i := range x1 {
			x1[i] += in[i]
		}
		normForward(a.ln2[l], a.ln2Mean[l], a.ln2Rstd[l], x1, lp.ln2W, lp.ln2B, N, D)
		m.linear(a.fc[l], a.ln2[l], lp.fcW, lp.fcB, N, D, 4*D)
		m.tGelu.backward = false
		m.pool.run(&m.tGelu, m.chunks(N))
		out := a.resid[l+1][:N*D]
		m.linear(out, a.gelu[l], lp.mprojW, lp.mprojB, N, 4*D, D)
		for i := range out {
			out[i] += x1[i]
		}
	}
	normForward(a.lnf, a.lnfMean, a.lnfRst, a.resid[c.NLayer][:N*D], m.p.lnfW, m.p.lnfB, N, D)
}

// crossEntropy computes the logits of every row and the mean loss; on a
// training pass it leaves dloss/dlogits in a.logits.
func (m *Model) crossEntropy(targets []int32) float64 {
	N, D, V := m.N, m.cfg.NEmbd, m.cfg.VocabSize
	m.k.Sgemm(false, true, N, V, D, 1, m.a.lnf, D, m.p.wte, D, 0, m.a.logits, V)
	m.targets = targets
	m.pool.run(&m.tCE, m.chunks(N))
	var loss float64
	for _, l := range m.rowLoss[:N] {
		loss += l
	}
	m.targets = nil
	return loss / float64(N)
}

// backward propagates from dlogits (left by crossEntropy) to Grads.
func (m *Model) backward(inputs []int32) {
	c := m.cfg
	N, D, V, T := m.N, c.NEmbd, c.VocabSize, m.T
	a := &m.a
	dl := a.logits[:N*V]
	dx := a.dtmp[:N*D]
	m.k.Sgemm(false, false, N, D, V, 1, dl, V, m.p.wte, D, 0, dx, D)
	m.k.Sgemm(true, false, V, D, N, 1, dl, V, a.lnf, D, 1, m.g.wte, D)
	dres := a.dres[:N*D]
	clear(dres)
	normBackward(dres, m.g.lnfW, m.g.lnfB, dx, a.resid[c.NLayer], a.lnfMean, a.lnfRst, m.p.lnfW, N, D)
	for l := c.NLayer - 1; l >= 0; l-- {
		lp, lg := &m.p.layers[l], &m.g.layers[l]
		// MLP: out = x1 + gelu(ln2(x1)·Wfc + bfc)·Wproj + bproj.
		dfc := a.dfc[:N*4*D]
		m.linearBackward(dfc, 0, lg.mprojW, lg.mprojB, dres, a.gelu[l], lp.mprojW, N, 4*D, D)
		m.layer = l
		m.tGelu.backward = true
		m.pool.run(&m.tGelu, m.chunks(N))
		m.linearBackward(dx, 0, lg.fcW, lg.fcB, dfc, a.ln2[l], lp.fcW, N, D, 4*D)
		normBackward(dres, lg.ln2W, lg.ln2B, dx, a.x1[l], a.ln2Mean[l], a.ln2Rstd[l], lp.ln2W, N, D)
		// Attention: x1 = in + attn(ln1(in))·Wproj + bproj.
		dy := a.dy[:N*D]
		m.linearBackward(dy, 0, lg.projW, lg.projB, dres, a.y[l], lp.projW, N, D, D)
		m.pool.run(&m.tAttnBwd, m.B*c.NHead)
		if c.RoPE() {
			m.rope(a.dqkv, true)
		}
		m.linearBackward(dx, 0, lg.attnW, lg.attnB, a.dqkv[:N*3*D], a.ln1[l], lp.attnW, N, D, 3*D)
		normBackward(dres, lg.ln1W, lg.ln1B, dx, a.resid[l], a.ln1Mean[l], a.ln1Rstd[l], lp.ln1W, N, D)
	}
	for i, tok := range inputs {
		row := dres[i*D : (i+1)*D]
		g := m.g.wte[int(tok)*D : (int(tok)+1)*D]
		for j, v := range row {
			g[j] += v
		}
		if !c.RoPE() {
			g = m.g.wpe[(i%T)*D : (i%T+1)*D]
			for j, v := range row {
				g[j] += v
			}
		}
	}
}

// chunks is how many row chunks elementwise work over n rows is split in.
func (m *Model) chunks(n int) int {
	return min(n, 4*runtime.GOMAXPROCS(0))
}

func chunkRange(i, chunks, n int) (lo, hi int) {
	return i * n / chunks, (i + 1) * n / chunks
}

// linear computes out[N,O] = in[N,I]·W[I,O] + b.
func (m *Model) linear(out, in, w, b []float32, N, I, O int) {
	out = out[:N*O]
	for r := range N {
		copy(out[r*O:(r+1)*O], b)
	}
	m.k.Sgemm(false, false, N, O, I, 1, in, I, w, O, 1, out, O)
}

// linearBackward adds in^T·dout to dW and colsum(dout) to db, and sets
// din = dout·W^T (scaled by nothing; beta says whether din accumulates).
func (m *Model) linearBackward(din []float32, beta float32, dw, db, dout, in, w []float32, N, I, O int) {
	m.k.Sgemm(true, false, I, O, N, 1, in, I, dout, O, 1, dw, O)
	for r := range N {
		row := dout[r*O : (r+1)*O]
		for j, v := range row {
			db[j] += v
		}
	}
	m.k.Sgemm(false, true, N, I, O, 1, dout, O, w, O, beta, din, I)
}

// rope rotates the q and k parts of qkv rows (inverse=true applies the
// transpose rotation, which is the backward pass).
func (m *Model) rope(qkv []float32, inverse bool) {
	D, hd, T := m.cfg.NEmbd, m.cfg.HeadDim(), m.T
	half := hd / 2
	for r := range m.N {
		t := r % T
		cos, sin := m.ropeCos[t*half:(t+1)*half], m.ropeSin[t*half:(t+1)*half]
		row := qkv[r*3*D : r*3*D+2*D]
		for h := 0; h < 2*D; h += hd {
			v := row[h : h+hd]
			for i := range half {
				x0, x1 := v[2*i], v[2*i+1]
				c, s := cos[i], sin[i]
				if inverse {
					s = -s
				}
				v[2*i] = x0*c - x1*s
				v[2*i+1] = x0*s + x1*c
			}
		}
	}
}

// normForward normalises each row of x (LayerNorm, or RMSNorm when b is
// nil) and records mean and 1/std for the backward pass.
func normForward(out, mean, rstd, x, w, b []float32, N, D int) {
	for r := range N {
		row := x[r*D : (r+1)*D]
		var mu float64
		if b != nil {
			for _, v := range row {
				mu += float64(v)
			}
			mu /= float64(D)
		}
		var ss float64
		for _, v := range row {
			d := float64(v) - mu
			ss += d * d
		}
		rs := 1 / math.Sqrt(ss/float64(D)+normEps)
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

// normBackward adds to dx the gradient through the norm of dout, and to
// dw and db (nil for RMSNorm) the parameter gradients.
func normBackward(dx, dw, db, dout, x, mean, rstd, w []float32, N, D int) {
	rms := db == nil
	for r := range N {
		row, dr := x[r*D:(r+1)*D], dout[r*D:(r+1)*D]
		mu, rs := mean[r], rstd[r]
		var sumD, sumDX float64
		for j, v := range row {
			xh := (v - mu) * rs
			dn := dr[j] * w[j]
			sumD += float64(dn)
			sumDX += float64(dn * xh)
			dw[j] += dr[j] * xh
			if !rms {
				db[j] += dr[j]
			}
		}
		mD, mDX := float32(sumD/float64(D)), float32(sumDX/float64(D))
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

type attnFwdTask struct{ m *Model }

// run computes causal softmax attention for one (batch row, head).
func (t *attnFwdTask) run(i int) {
	m := t.m
	H, T, D, hd := m.cfg.NHead, m.T, m.cfg.NEmbd, m.cfg.HeadDim()
	b, h := i/H, i%H
	qkv, y := m.a.qkv[m.layer], m.a.y[m.layer]
	att := m.a.att[m.layer][(b*H+h)*T*T : (b*H+h+1)*T*T]
	scale := float32(1 / math.Sqrt(float64(hd)))
	for tq := range T {
		q := qkv[(b*T+tq)*3*D+h*hd : (b*T+tq)*3*D+h*hd+hd]
		p := att[tq*T : (tq+1)*T]
		mx := float32(math.Inf(-1))
		for u := 0; u <= tq; u++ {
			k := qkv[(b*T+u)*3*D+D+h*hd : (b*T+u)*3*D+D+h*hd+hd]
			var s float32
			for j, qv := range q {
				s += qv * k[j]
			}
			s *= scale
			p[u] = s
			mx = max(mx, s)
		}
		var sum float32
		for u := 0; u <= tq; u++ {
			e := float32(math.Exp(float64(p[u] - mx)))
			p[u] = e
			sum += e
		}
		inv := 1 / sum
		out := y[(b*T+tq)*D+h*hd : (b*T+tq)*D+h*hd+hd]
		clear(out)
		for u := 0; u <= tq; u++ {
			p[u] *= inv
			v := qkv[(b*T+u)*3*D+2*D+h*hd : (b*T+u)*3*D+2*D+h*hd+hd]
			pu := p[u]
			for j, vv := range v {
				out[j] += pu * vv
			}
		}
		clear(p[tq+1:])
	}
}

type attnBwdTask struct{ m *Model }

// run back-propagates a.dy through attention for one (batch row, head)
// into that head's q, k and v columns of a.dqkv.
func (t *attnBwdTask) run(i int) {
	m := t.m
	H, T, D, hd := m.cfg.NHead, m.T, m.cfg.NEmbd, m.cfg.HeadDim()
	b, h := i/H, i%H
	qkv, dqkv, dy := m.a.qkv[m.layer], m.a.dqkv, m.a.dy
	att := m.a.att[m.layer][(b*H+h)*T*T : (b*H+h+1)*T*T]
	dp := m.a.dp[(b*H+h)*T : (b*H+h+1)*T]
	scale := float32(1 / math.Sqrt(float64(hd)))
	for tq := range T {
		base := (b*T + tq) * 3 * D
		clear(dqkv[base+h*hd : base+h*hd+hd])
		clear(dqkv[base+D+h*hd : base+D+h*hd+hd])
		clear(dqkv[base+2*D+h*hd : base+2*D+h*hd+hd])
	}
	for tq := range T {
		p := att[tq*T : (tq+1)*T]
		g := dy[(b*T+tq)*D+h*hd : (b*T+tq)*D+h*hd+hd]
		var dot float32
		for u := 0; u <= tq; u++ {
			off := (b*T+u)*3*D + 2*D + h*hd
			v, dv := qkv[off:off+hd], dqkv[off:off+hd]
			var s float32
			pu := p[u]
			for j, gv := range g {
				s += gv * v[j]
				dv[j] += pu * gv
			}
			dp[u] = s
			dot += pu * s
		}
		qoff := (b*T+tq)*3*D + h*hd
		q, dq := qkv[qoff:qoff+hd], dqkv[qoff:qoff+hd]
		for u := 0; u <= tq; u++ {
			ds := p[u] * (dp[u] - dot) * scale
			koff := (b*T+u)*3*D + D + h*hd
			k, dk := qkv[koff:koff+hd], dqkv[koff:koff+hd]
			for j := range hd {
				dq[j] += ds * k[j]
				dk[j] += ds * q[j]
			}
		}
	}
}

type geluTask struct {
	m        *Model
	backward bool
}

const geluC = 0.7978845608028654 // sqrt(2/pi)

// run applies GELU (tanh form) to a chunk of rows, or on the backward pass
// multiplies a.dfc by its derivative.
func (t *geluTask) run(i int) {
	m := t.m
	W := 4 * m.cfg.NEmbd
	lo, hi := chunkRange(i, m.chunks(m.N), m.N)
	x := m.a.fc[m.layer][lo*W : hi*W]
	if !t.backward {
		out := m.a.gelu[m.layer][lo*W : hi*W]
		for j, v := range x {
			u := geluC * (v + 0.044715*v*v*v)
			out[j] = 0.5 * v * (1 + tanh32(u))
		}
		return
	}
	d := m.a.dfc[lo*W : hi*W]
	for j, v := range x {
		u := geluC * (v + 0.044715*v*v*v)
		th := tanh32(u)
		dg := 0.5*(1+th) + 0.5*v*(1-th*th)*geluC*(1+3*0.044715*v*v)
		d[j] *= dg
	}
}

func tanh32(x float32) float32 {
	if x > 10 {
		return 1
	}
	if x < -10 {
		return -1
	}
	e := math.Exp(2 * float64(x))
	return float32((e - 1) / (e + 1))
}

type ceTask struct{ m *Model }

// run computes softmax cross-entropy for a chunk of rows; on a training
// pass it overwrites the logits with (softmax - onehot)/N.
func (t *ceTask) run(i int) {
	m := t.m
	V, N := m.cfg.VocabSize, m.N
	lo, hi := chunkRange(i, m.chunks(N), N)
	for r := lo; r < hi; r++ {
		row := m.a.logits[r*V : (r+1)*V]
		mx := row[0]
		for _, v := range row {
			mx = max(mx, v)
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v - mx))
		}
		tgt := m.targets[r]
		m.rowLoss[r] = math.Log(sum) + float64(mx) - float64(row[tgt])
		if m.train {
			inv := 1 / (sum * float64(N))
			for j, v := range row {
				row[j] = float32(math.Exp(float64(v-mx)) * inv)
			}
			row[tgt] -= float32(1 / float64(N))
		}
	}
}
