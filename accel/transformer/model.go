package transformer

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"

	"github.com/llmesh/llmesh/accel/simd"
)

// ErrInvalidInput is wrapped by errors about a batch handed to the model
// (token ids, lengths, shapes).
var ErrInvalidInput = errors.New("transformer: invalid input")

const normEps = 1e-5

// Model is a decoder-only GPT (Pre-LN, GELU or SwiGLU MLP, causal
// multi-head attention with an optional sliding window and global tokens,
// tied embeddings, optional early-exit heads) whose parameters live in one
// flat []float32.
//
// The training loss is the mean cross-entropy of the final head plus, when
// the config has exit layers, the average over exit heads of each head's
// mean cross-entropy: loss = CE_final + (1/E)·Σ CE_exit. With label
// smoothing (SetLabelSmoothing) every head's cross-entropy is against the
// smoothed targets. DistillForwardBackward replaces every head's
// cross-entropy with the distillation objective (distill.go).
//
// A Model is not safe for concurrent use: every method reuses the same
// activation buffers, which grow to the largest batch seen and are kept.
// Slices it returns from ParamData, Grads and Params alias its storage and
// stay valid for the Model's lifetime.
type Model struct {
	cfg     Config
	k       Kernels
	tk      Kernels // k's serial variant, for tile products inside parallel tasks
	pool    *simd.Pool
	params  []float32
	grads   []float32
	ps      []Param
	p, g    modelParams
	ropeCos []float32 // [n_ctx, head_dim/2]
	ropeSin []float32
	a       acts

	// Training options.
	labelSmoothing float32
	// gradReady, when set, hears each range of Grads the backward pass
	// has finished (SetGradientsReady).
	gradReady func(lo, hi int)

	// Quantization (quant_model.go): an INT8 model's matrices, QAT's
	// fake-quantized weights, activation statistics in progress.
	int8  *int8State
	qat   *qatState
	stats *actStats
	kd    distillState // the teacher of a distillation pass in flight (distill.go)

	// Shape of the batch in flight, read by the parallel tasks.
	B, T, N  int
	layer    int
	train    bool
	targets  []int32
	rowLoss  []float64
	ceScale  float32 // gradient scale of the head in flight: weight/N
	tAttnFwd attnFwdTask
	tAttnBwd attnBwdTask
	tGelu    geluTask
	tCE      ceTask
	tRows    rowsTask
}

// SetLabelSmoothing makes every later ForwardBackward and Loss use
// cross-entropy against (1-eps)·onehot + eps/vocab_size targets; 0 (the
// default) is plain cross-entropy. eps must be in [0, 1).
func (m *Model) SetLabelSmoothing(eps float32) error {
	if !(eps >= 0 && eps < 1) {
		return fmt.Errorf("%w: label smoothing %v is outside [0, 1)", ErrInvalidInput, eps)
	}
	m.labelSmoothing = eps
	return nil
}

// LabelSmoothing returns the label smoothing in use.
func (m *Model) LabelSmoothing() float32 { return m.labelSmoothing }

// acts holds the activations of the last forward pass and the scratch of
// the backward pass. Capacity is in rows (B·T); attention keeps only one
// log-sum-exp per (row, head), never the T×T probabilities.
type acts struct {
	rows int

	resid                [][]float32 // L+1 × [N,D]; resid[0] is the embedding
	ln1, ln2             [][]float32 // [N,D]
	ln1Mean, ln1Rstd     [][]float32 // [N]
	ln2Mean, ln2Rstd     [][]float32
	qkv                  [][]float32 // [N,3D], after rope
	lse                  [][]float32 // [B,H,T] attention log-sum-exp per query row
	y                    [][]float32 // [N,D] attention output before c_proj
	x1                   [][]float32 // [N,D] residual after attention
	fc, gelu             [][]float32 // [N,4D]; fc is c_fc's output (SwiGLU's "up"), gelu the hidden activation
	gate                 [][]float32 // [N,4D] c_gate's output (SwiGLU); GELU's sigmoid(2u), kept for the backward pass
	lnx, lnxMean, lnxRst []float32   // exit-head norm output (recomputed per head)
	lnf, lnfMean, lnfRst []float32
	logits               []float32 // [N,V]; probabilities or dlogits after a training pass

	dres, dtmp, dy []float32 // [N,D]
	dqkv           []float32 // [N,3D]
	dfc, dgate     []float32 // [N,4D]
	normPart       []float32 // per-chunk partial norm weight/bias gradients
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
	m := &Model{cfg: cfg, k: k, tk: tileKernels(k), pool: defaultPool()}
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
// are the next tokens) forward and backward, ADDS the gradient of the
// training loss (see Model) into Grads, and returns that loss.
func (m *Model) ForwardBackward(inputs, targets []int32, B, T int) (float64, error) {
	if err := m.checkBatch(inputs, targets, B, T); err != nil {
		return 0, err
	}
	if err := m.checkTrainable(); err != nil {
		return 0, err
	}
	m.ensureGrads()
	m.train = true
	m.forward(inputs, B, T)
	loss := m.headLoss(m.a.lnf, targets, 1)
	loss += m.backward(inputs, targets)
	return loss, nil
}

// Objective returns the training objective of the batch — the final
// head's cross-entropy with the model's label smoothing, plus the mean of
// the exit heads' — without touching the gradients: what ForwardBackward
// differentiates (the gradient checks compare against it).
func (m *Model) Objective(inputs, targets []int32, B, T int) (float64, error) {
	if err := m.checkBatch(inputs, targets, B, T); err != nil {
		return 0, err
	}
	m.train = false
	m.forward(inputs, B, T)
	loss := m.headLoss(m.a.lnf, targets, 1)
	for e, l := range m.cfg.ExitLayers {
		loss += m.exitHead(e, l, targets)
	}
	return loss, nil
}

// Loss returns the mean cross-entropy of the final head on the batch — the
// validation loss, whose exponential is the perplexity: no label smoothing
// and no exit heads, whatever training uses. Gradients are not touched.
func (m *Model) Loss(inputs, targets []int32, B, T int) (float64, error) {
	if err := m.checkBatch(inputs, targets, B, T); err != nil {
		return 0, err
	}
	m.train = false
	m.forward(inputs, B, T)
	eps := m.labelSmoothing
	m.labelSmoothing = 0
	loss := m.headLoss(m.a.lnf, targets, 1)
	m.labelSmoothing = eps
	return loss, nil
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
	m.product(true, out, last, m.p.wte, B, D, V, 0)
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
	m.B, m.T, m.N = B, T, N
	a := &m.a
	if N <= a.rows {
		return
	}
	rows := N
	D, L, V := m.cfg.NEmbd, m.cfg.NLayer, m.cfg.VocabSize
	a.resid = growEach(a.resid, L+1, rows*D)
	a.ln1 = growEach(a.ln1, L, rows*D)
	a.ln2 = growEach(a.ln2, L, rows*D)
	a.ln1Mean = growEach(a.ln1Mean, L, rows)
	a.ln1Rstd = growEach(a.ln1Rstd, L, rows)
	a.ln2Mean = growEach(a.ln2Mean, L, rows)
	a.ln2Rstd = growEach(a.ln2Rstd, L, rows)
	a.qkv = growEach(a.qkv, L, rows*3*D)
	a.lse = growEach(a.lse, L, rows*m.cfg.NHead)
	a.y = growEach(a.y, L, rows*D)
	a.x1 = growEach(a.x1, L, rows*D)
	a.fc = growEach(a.fc, L, rows*4*D)
	a.gelu = growEach(a.gelu, L, rows*4*D)
	a.gate = growEach(a.gate, L, rows*4*D)
	if m.cfg.SwiGLU() {
		a.dgate = grow(a.dgate, rows*4*D)
	}
	if len(m.cfg.ExitLayers) > 0 {
		a.lnx = grow(a.lnx, rows*D)
		a.lnxMean = grow(a.lnxMean, rows)
		a.lnxRst = grow(a.lnxRst, rows)
	}
	a.lnf = grow(a.lnf, rows*D)
	a.lnfMean = grow(a.lnfMean, rows)
	a.lnfRst = grow(a.lnfRst, rows)
	a.logits = grow(a.logits, rows*V)
	a.dres = grow(a.dres, rows*D)
	a.dtmp = grow(a.dtmp, rows*D)
	a.dy = grow(a.dy, rows*D)
	a.dqkv = grow(a.dqkv, rows*3*D)
	a.dfc = grow(a.dfc, rows*4*D)
	if cap(m.rowLoss) < rows {
		m.rowLoss = make([]float64, rows)
	}
	a.rows = rows
}

// forward runs the network up to the final norm (a.lnf). Each residual add
// is fused with the norm that reads its result.
func (m *Model) forward(inputs []int32, B, T int) {
	m.ensureActs(B, T)
	c := m.cfg
	D, N, L := c.NEmbd, B*T, c.NLayer
	a := &m.a
	if m.qat != nil {
		m.refreshQAT()
	}
	wte := m.fwdW(m.p.wte)
	x := a.resid[0][:N*D]
	for i, tok := range inputs {
		row := x[i*D : (i+1)*D]
		copy(row, wte[int(tok)*D:])
		if !c.RoPE() {
			pos := m.p.wpe[(i%T)*D : (i%T+1)*D]
			for j := range row {
				row[j] += pos[j]
			}
		}
	}
	m.addNorm(a.ln1[0], a.ln1Mean[0], a.ln1Rstd[0], x, nil, nil, m.p.layers[0].ln1W, m.p.layers[0].ln1B)
	for l := range L {
		lp := &m.p.layers[l]
		in := a.resid[l][:N*D]
		m.linear(a.qkv[l], a.ln1[l], lp.attnW, lp.attnB, N, D, 3*D)
		if c.RoPE() {
			m.rope(a.qkv[l], false)
		}
		m.layer = l
		m.pool.Run(&m.tAttnFwd, B*c.NHead)
		x1 := a.x1[l][:N*D]
		// Biases of c_proj, c_fc and c_gate are added by the fused
		// kernel that reads each product next.
		m.product(false, x1, a.y[l], lp.projW, N, D, D, 0)
		m.addNorm(a.ln2[l], a.ln2Mean[l], a.ln2Rstd[l], x1, in, lp.projB, lp.ln2W, lp.ln2B)
		m.product(false, a.fc[l], a.ln2[l], lp.fcW, N, D, 4*D, 0)
		if c.SwiGLU() {
			m.product(false, a.gate[l], a.ln2[l], lp.gateW, N, D, 4*D, 0)
		}
		m.tGelu.backward = false
		m.pool.Run(&m.tGelu, m.chunks(N))
		out := a.resid[l+1][:N*D]
		m.product(false, out, a.gelu[l], lp.mprojW, N, 4*D, D, 0)
		if l+1 < L {
			np := &m.p.layers[l+1]
			m.addNorm(a.ln1[l+1], a.ln1Mean[l+1], a.ln1Rstd[l+1], out, x1, lp.mprojB, np.ln1W, np.ln1B)
		} else {
			m.addNorm(a.lnf, a.lnfMean, a.lnfRst, out, x1, lp.mprojB, m.p.lnfW, m.p.lnfB)
		}
	}
}

// headLoss projects normed rows x onto the tied embedding, and returns
// weight × the mean (label-smoothed) cross-entropy; on a training pass it
// leaves weight × dloss/dlogits in a.logits.
func (m *Model) headLoss(x []float32, targets []int32, weight float32) float64 {
	N, D, V := m.N, m.cfg.NEmbd, m.cfg.VocabSize
	m.product(true, m.a.logits, x, m.p.wte, N, D, V, 0)
	m.targets = targets
	m.ceScale = weight / float32(N)
	m.pool.Run(&m.tCE, m.chunks(N))
	var loss float64
	for _, l := range m.rowLoss[:N] {
		loss += l
	}
	m.targets = nil
	return float64(weight) * loss / float64(N)
}

// exitHead runs exit head e (after layer l, reading resid[l]) forward and,
// on a training pass, backward: its gradient goes to the exit norm, wte
// and a.dres (which must hold d/d resid[l] so far). It returns the head's
// share of the loss, its mean cross-entropy / number of exit heads.
func (m *Model) exitHead(e, l int, targets []int32) float64 {
	N, D, V := m.N, m.cfg.NEmbd, m.cfg.VocabSize
	a := &m.a
	x := a.resid[l][:N*D]
	ex := m.p.exits[e]
	m.addNorm(a.lnx, a.lnxMean, a.lnxRst, x, nil, nil, ex.w, ex.b)
	loss := m.headLoss(a.lnx[:N*D], targets, 1/float32(len(m.cfg.ExitLayers)))
	if !m.train {
		return loss
	}
	dl := a.logits[:N*V]
	dx := a.dtmp[:N*D]
	m.k.Sgemm(false, false, N, D, V, 1, dl, V, m.fwdW(m.p.wte), D, 0, dx, D)
	m.k.Sgemm(true, false, V, D, N, 1, dl, V, a.lnx, D, 1, m.g.wte, D)
	g := m.g.exits[e]
	m.normBack(a.dres[:N*D], g.w, g.b, dx, x, a.lnxMean, a.lnxRst, ex.w)
	return loss
}

// SetGradientsReady makes every later training pass (ForwardBackward,
// DistillForwardBackward) call f with each range [lo, hi) of Grads that it
// has finished, as soon as it is finished: the final norm (and early-exit
// norms as their heads run), then layer by layer from the last to the
// first, then the embeddings. Each entry is in exactly one range per pass;
// no worker writes a range once f has it, so f may read it (Grads()[lo:hi]:
// what this pass added to what was there). f runs on the goroutine of the
// pass, which waits for it. nil stops the calls.
func (m *Model) SetGradientsReady(f func(lo, hi int)) { m.gradReady = f }

// paramSpan is the range of the flat vector that the tensors named with
// prefix cover: [offset of the first, end of the last]. Layout keeps each
// layer's, each norm's and the embeddings' tensors together.
func (m *Model) paramSpan(prefix string) (lo, hi int) {
	lo = -1
	for _, p := range m.ps {
		if !strings.HasPrefix(p.Name, prefix) {
			continue
		}
		if lo < 0 {
			lo = p.Offset
		}
		hi = p.Offset + numel(p.Shape)
	}
	return max(lo, 0), hi
}

// ready reports the span of prefix to gradReady, if set.
func (m *Model) ready(prefix string) {
	if m.gradReady == nil {
		return
	}
	if lo, hi := m.paramSpan(prefix); lo < hi {
		m.gradReady(lo, hi)
	}
}

// backward propagates from dlogits (left by headLoss) to Grads, running
// the exit heads on the way; it returns their share of the loss.
func (m *Model) backward(inputs, targets []int32) float64 {
	c := m.cfg
	N, D, V, T := m.N, c.NEmbd, c.VocabSize, m.T
	a := &m.a
	dl := a.logits[:N*V]
	dx := a.dtmp[:N*D]
	m.k.Sgemm(false, false, N, D, V, 1, dl, V, m.fwdW(m.p.wte), D, 0, dx, D)
	m.k.Sgemm(true, false, V, D, N, 1, dl, V, a.lnf, D, 1, m.g.wte, D)
	dres := a.dres[:N*D]
	clear(dres)
	m.normBack(dres, m.g.lnfW, m.g.lnfB, dx, a.resid[c.NLayer], a.lnfMean, a.lnfRst, m.p.lnfW)
	m.ready("ln_f.")
	var exitLoss float64
	e := len(c.ExitLayers) - 1
	for l := c.NLayer - 1; l >= 0; l-- {
		// dres is d/d resid[l+1]: add the exit head reading it, if any.
		if e >= 0 && c.ExitLayers[e] == l+1 {
			exitLoss += m.exitHead(e, l+1, targets)
			m.ready(fmt.Sprintf("exit.%d.", l+1))
			e--
		}
		lp, lg := &m.p.layers[l], &m.g.layers[l]
		// MLP: out = x1 + act(ln2(x1))·Wproj + bproj.
		dfc := a.dfc[:N*4*D]
		m.linearBackward(dfc, 0, lg.mprojW, lg.mprojB, dres, a.gelu[l], lp.mprojW, N, 4*D, D)
		m.layer = l
		m.tGelu.backward = true
		m.pool.Run(&m.tGelu, m.chunks(N))
		m.linearBackward(dx, 0, lg.fcW, lg.fcB, dfc, a.ln2[l], lp.fcW, N, D, 4*D)
		if c.SwiGLU() {
			m.linearBackward(dx, 1, lg.gateW, lg.gateB, a.dgate[:N*4*D], a.ln2[l], lp.gateW, N, D, 4*D)
		}
		m.normBack(dres, lg.ln2W, lg.ln2B, dx, a.x1[l], a.ln2Mean[l], a.ln2Rstd[l], lp.ln2W)
		// Attention: x1 = in + attn(ln1(in))·Wproj + bproj.
		dy := a.dy[:N*D]
		m.linearBackward(dy, 0, lg.projW, lg.projB, dres, a.y[l], lp.projW, N, D, D)
		m.pool.Run(&m.tAttnBwd, m.B*c.NHead)
		if c.RoPE() {
			m.rope(a.dqkv, true)
		}
		m.linearBackward(dx, 0, lg.attnW, lg.attnB, a.dqkv[:N*3*D], a.ln1[l], lp.attnW, N, D, 3*D)
		m.normBack(dres, lg.ln1W, lg.ln1B, dx, a.resid[l], a.ln1Mean[l], a.ln1Rstd[l], lp.ln1W)
		if m.gradReady != nil {
			m.ready(fmt.Sprintf("h.%d.", l))
		}
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
	if m.gradReady != nil {
		m.gradReady(0, len(m.g.wte)+len(m.g.wpe)) // wte, then wpe unless RoPE
	}
	return exitLoss
}

// chunks is how many row chunks elementwise work over n rows is split in.
func (m *Model) chunks(n int) int {
	return max(1, min(n, 4*runtime.GOMAXPROCS(0)))
}

func chunkRange(i, chunks, n int) (lo, hi int) {
	return i * n / chunks, (i + 1) * n / chunks
}

// Row operations the model splits across the pool. One rowsTask lives in
// the Model and is refilled per call, so a training step does not allocate.
const (
	opAddNorm = iota
	opNormBack
	opColSum
	opRope
	opBias
)

type rowsTask struct {
	op                            int
	n, chunks, D                  int
	out, mean, rstd, x, add, w, b []float32
	bias                          []float32
	dx, dout, part                []float32
	inverse                       bool
	m                             *Model
}

func (t *rowsTask) Run(i int) {
	lo, hi := chunkRange(i, t.chunks, t.n)
	D := t.D
	switch t.op {
	case opAddNorm:
		addNormForward(t.out, t.mean, t.rstd, t.x, t.add, t.bias, t.w, t.b, lo, hi, D)
	case opNormBack:
		pw := t.part[i*2*D : i*2*D+D]
		var pb []float32
		if t.b != nil {
			pb = t.part[i*2*D+D : (i+1)*2*D]
		}
		normBackwardRows(t.dx, pw, pb, t.dout, t.x, t.mean, t.rstd, t.w, lo, hi, D)
	case opColSum: // t.n columns of D-wide rows of dout, summed into t.b
		d := t.b[lo:hi]
		for r := 0; r+D <= len(t.dout); r += D {
			axpy(1, t.dout[r+lo:r+hi], d)
		}
	case opBias: // rows of D copies of t.b
		for r := lo; r < hi; r++ {
			copy(t.out[r*D:(r+1)*D], t.b)
		}
	case opRope:
		m := t.m
		hd, T := m.cfg.HeadDim(), m.T
		for r := lo; r < hi; r++ {
			p := r % T
			ropeRow(t.x[r*3*D:r*3*D+2*D], m.ropeCos[p*hd/2:(p+1)*hd/2], m.ropeSin[p*hd/2:(p+1)*hd/2], hd, t.inverse)
		}
	}
}

// runRows splits n rows into m.chunks(n) chunks and runs t on them in
// parallel, then clears t's references.
func (m *Model) runRows(t *rowsTask, n int) {
	t.n, t.chunks, t.m = n, m.chunks(n), m
	m.pool.Run(t, t.chunks)
	*t = rowsTask{}
}

// addNorm is addNormForward over the batch's rows in parallel.
func (m *Model) addNorm(out, mean, rstd, x, add, bias, w, b []float32) {
	m.tRows = rowsTask{op: opAddNorm, D: m.cfg.NEmbd, out: out, mean: mean, rstd: rstd, x: x, add: add, bias: bias, w: w, b: b}
	m.runRows(&m.tRows, m.N)
}

// normBack is normBackwardRows over the batch's rows in parallel: each
// chunk sums its parameter gradients apart, and the sums are added after.
func (m *Model) normBack(dx, dw, db, dout, x, mean, rstd, w []float32) {
	N, D := m.N, m.cfg.NEmbd
	c := m.chunks(N)
	part := grow(m.a.normPart, c*2*D)
	m.a.normPart = part
	clear(part)
	m.tRows = rowsTask{op: opNormBack, D: D, dx: dx, b: db, dout: dout, x: x, mean: mean, rstd: rstd, w: w, part: part}
	m.runRows(&m.tRows, N)
	for i := range c {
		axpy(1, part[i*2*D:i*2*D+D], dw)
		if db != nil {
			axpy(1, part[i*2*D+D:(i+1)*2*D], db)
		}
	}
}

// linear computes out[N,O] = in[N,I]·W[I,O] + b.
func (m *Model) linear(out, in, w, b []float32, N, I, O int) {
	out = out[:N*O]
	m.tRows = rowsTask{op: opBias, D: O, out: out, b: b}
	m.runRows(&m.tRows, N)
	m.product(false, out, in, w, N, I, O, 1)
}

// linearBackward adds in^T·dout to dW and colsum(dout) to db, and sets
// din = dout·W^T (scaled by nothing; beta says whether din accumulates).
func (m *Model) linearBackward(din []float32, beta float32, dw, db, dout, in, w []float32, N, I, O int) {
	m.k.Sgemm(true, false, I, O, N, 1, in, I, dout, O, 1, dw, O)
	// Column sums, split by columns so that chunks never share an output.
	m.tRows = rowsTask{op: opColSum, D: O, b: db, dout: dout[:N*O]}
	m.runRows(&m.tRows, O)
	m.k.Sgemm(false, true, N, I, O, 1, dout, O, m.fwdW(w), O, beta, din, I)
}

// rope rotates the q and k parts of qkv rows (inverse=true applies the
// transpose rotation, which is the backward pass).
func (m *Model) rope(qkv []float32, inverse bool) {
	m.tRows = rowsTask{op: opRope, D: m.cfg.NEmbd, x: qkv, inverse: inverse}
	m.runRows(&m.tRows, m.N)
}

// ropeRow rotates each head_dim-wide vector of row by the angles whose
// cosines and sines are given (one per pair of elements); inverse rotates
// by the negative angles.
func ropeRow(row, cos, sin []float32, hd int, inverse bool) {
	half := hd / 2
	for h := 0; h+hd <= len(row); h += hd {
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

// normForward normalises each row of x (LayerNorm, or RMSNorm when b is
// nil) and records mean and 1/std (serially; the model uses addNorm).
func normForward(out, mean, rstd, x, w, b []float32, N, D int) {
	addNormForward(out, mean, rstd, x, nil, nil, w, b, 0, N, D)
}

// normBackward adds to dx the gradient through the norm of dout, and to
// dw and db (nil for RMSNorm) the parameter gradients (serially).
func normBackward(dx, dw, db, dout, x, mean, rstd, w []float32, N, D int) {
	normBackwardRows(dx, dw, db, dout, x, mean, rstd, w, 0, N, D)
}

type attnFwdTask struct{ m *Model }

// head describes attention head h of sequence rows in packed qkv.
func (m *Model) head(h int) attnHead {
	D, hd := m.cfg.NEmbd, m.cfg.HeadDim()
	return attnHead{T: m.T, hd: hd, qkvStride: 3 * D, outStride: D,
		qOff: h * hd, kOff: D + h*hd, vOff: 2*D + h*hd, oOff: h * hd,
		scale: float32(1 / math.Sqrt(float64(hd))),
		pat:   attnPattern{window: m.cfg.AttnWindow, global: m.cfg.AttnGlobal}}
}

// run computes tiled attention for one (batch row, head).
func (t *attnFwdTask) Run(i int) {
	m := t.m
	H, T, D := m.cfg.NHead, m.T, m.cfg.NEmbd
	b, h := i/H, i%H
	l := m.layer
	attnForward(m.tk, m.head(h), m.a.qkv[l][b*T*3*D:(b+1)*T*3*D], m.a.y[l][b*T*D:(b+1)*T*D], m.a.lse[l][i*T:(i+1)*T])
}

type attnBwdTask struct{ m *Model }

// run back-propagates a.dy through attention for one (batch row, head)
// into that head's q, k and v columns of a.dqkv.
func (t *attnBwdTask) Run(i int) {
	m := t.m
	H, T, D, hd := m.cfg.NHead, m.T, m.cfg.NEmbd, m.cfg.HeadDim()
	b, h := i/H, i%H
	l := m.layer
	dqkv := m.a.dqkv[b*T*3*D : (b+1)*T*3*D]
	for tq := range T {
		base := tq * 3 * D
		clear(dqkv[base+h*hd : base+h*hd+hd])
		clear(dqkv[base+D+h*hd : base+D+h*hd+hd])
		clear(dqkv[base+2*D+h*hd : base+2*D+h*hd+hd])
	}
	attnBackward(m.tk, m.head(h), m.a.qkv[l][b*T*3*D:(b+1)*T*3*D], m.a.y[l][b*T*D:(b+1)*T*D],
		m.a.lse[l][i*T:(i+1)*T], m.a.dy[b*T*D:(b+1)*T*D], dqkv)
}

type geluTask struct {
	m        *Model
	backward bool
}

// run applies the MLP activation (GELU, or SwiGLU's silu(gate)·up) to a
// chunk of rows, or on the backward pass turns a.dfc into its gradient
// (and fills a.dgate for SwiGLU).
func (t *geluTask) Run(i int) {
	m := t.m
	W := 4 * m.cfg.NEmbd
	lo, hi := chunkRange(i, m.chunks(m.N), m.N)
	a, l := &m.a, m.layer
	lp := &m.p.layers[l]
	x := a.fc[l][lo*W : hi*W]
	if !t.backward {
		// The products left out c_fc's and c_gate's biases: add them here,
		// where the rows are read anyway (kept for the backward pass).
		// Row by row, so that each row is still in L1 for the activation.
		for r := 0; r < len(x); r += W {
			axpy(1, lp.fcB, x[r:r+W])
			if m.cfg.SwiGLU() {
				g := a.gate[l][lo*W+r : lo*W+r+W]
				axpy(1, lp.gateB, g)
				swigluForward(a.gelu[l][lo*W+r:lo*W+r+W], g, x[r:r+W])
			} else {
				geluForward(a.gelu[l][lo*W+r:lo*W+r+W], a.gate[l][lo*W+r:lo*W+r+W], x[r:r+W])
			}
		}
		return
	}
	switch {
	case m.cfg.SwiGLU():
		swigluBackward(a.dfc[lo*W:hi*W], a.dgate[lo*W:hi*W], a.gate[l][lo*W:hi*W], x)
	default:
		geluBackward(a.dfc[lo*W:hi*W], a.gate[l][lo*W:hi*W], x)
	}
}

// tanh32 is tanhf (kept for the decoding path).
func tanh32(x float32) float32 { return tanhf(x) }

type ceTask struct{ m *Model }

// run computes label-smoothed softmax cross-entropy for a chunk of rows;
// on a training pass it overwrites the logits with
// ceScale·(softmax - target).
func (t *ceTask) Run(i int) {
	m := t.m
	V, N := m.cfg.VocabSize, m.N
	lo, hi := chunkRange(i, m.chunks(N), N)
	if m.kd.st != nil {
		m.kd.rows(m, i, lo, hi)
		return
	}
	for r := lo; r < hi; r++ {
		m.rowLoss[r] = crossEntropyRow(m.a.logits[r*V:(r+1)*V], int(m.targets[r]), m.labelSmoothing, m.ceScale, m.train)
	}
}
