package transformer

import (
	"fmt"
	"math"

	"github.com/llmesh/llmesh/accel/simd"
)

// MaxStepTokens bounds the new tokens of one decode step (all sequences
// together), so that a request cannot size the step buffers without bound.
// A longer prompt is prefilled over several steps.
const MaxStepTokens = 8192

// DecodeSeq is one sequence of a decode step: the tokens to append to the
// cached sequence ID (the whole prompt for an ID the decoder has not seen).
type DecodeSeq struct {
	ID     uint64
	Tokens []int32
}

// StepResult is what a decode step returns. Its slices belong to the
// Decoder and stay valid until its next call.
type StepResult struct {
	// Logits holds len(seqs) rows of vocab_size: each row is the logits of
	// the token that follows its sequence.
	Logits [][]float32
	// Cached is each sequence's length in the cache after the step.
	Cached []int
	// ExitLayers is how many layers ran for each sequence's last token
	// (n_layer unless it left at an early exit).
	ExitLayers []int
	// Reused is, per sequence, how many leading positions came from
	// another sequence's cached blocks instead of being computed (prefix
	// reuse on a prefill; 0 otherwise).
	Reused []int
}

// Decoder runs batched incremental decoding of one Model over a paged KV
// cache (see kvCache). One Step takes any mix of prefills (many tokens)
// and decodes (one token) for different sequences and runs every layer on
// all new tokens of the step at once — one GEMM per projection over the
// concatenated rows — with each token attending over its own sequence's
// cached keys and values under the config's attention pattern
// (Config.Visible: causal, sliding window, local+global). Positions are
// absolute: learned positions stop at n_ctx (an error), rotary positions
// with a sliding window go on without limit (blocks no later token can see
// are freed as the window passes them; blocks holding global positions
// stay).
//
// Early exit (Step's threshold > 0 on a model with exit heads): after each
// exit layer the last new token of every sequence still running goes
// through that exit's norm and the tied embedding; when its top softmax
// probability reaches the threshold, those logits are its result and it
// runs no further layers. Its keys and values in the skipped layers are
// computed from its hidden state at the exit (the state propagation of
// CALM, Schuster et al. 2022), so later tokens attend over a complete
// cache; such blocks are not shared through prefix reuse, since they
// differ from a full computation.
//
// A Decoder reads the Model's parameters on every step: after the weights
// change, call Reset. It is not safe for concurrent use, and allocates
// nothing per step once its buffers have grown to the largest step seen.
type Decoder struct {
	m     *Model
	cfg   Config
	k     Kernels
	pool  *simd.Pool
	cache *kvCache
	// exitAt[l] is the exit head index after layer l+1, or -1.
	exitAt []int

	ropeCos, ropeSin []float32 // table [n_ctx, head_dim/2]

	step   uint64
	plan   []seqPlan
	newIDs map[uint64]int

	// Rows of the step in flight.
	rows, active int
	maxKeys      int // most keys a row of the step attends to
	rowSeq       []int32
	rowPos       []int32
	rowTok       []int32
	lastRow      []int32 // per sequence
	exited       []bool  // per sequence
	rc, rs       []float32

	capRows                     int
	x, h, qkv, y, tmp, fc, gate []float32
	mean, rstd                  []float32
	capSeqs                     int
	last, out, logits           []float32
	res                         StepResult
	candSeq                     []int32
	tAttn                       decAttnTask
	tAct                        decActTask
	tNorm                       decNormTask
	tGemv                       gemvTask
	vk                          VectorKernels
	rk                          RowKernels
	rkOwn                       RowKernels // the kernels' RowKernels, or nil
	ck                          ColKernels
	gk                          GeluKernels // the kernels' own, or nil
	scores                      []float32   // attention: a chunk of scores per (row, head)
	// wT holds transposed copies of the layer weights (see transposed).
	wT map[*float32][]float32
	// wP holds the weights packed for the kernels' GEMM (see packed).
	wP map[packedKey]*simd.PackedB
}

type seqPlan struct {
	s      *kvSeq
	id     uint64
	isNew  bool
	from   int     // first position computed this step
	toks   []int32 // tokens computed this step
	reused []int32 // prefix blocks shared from the cache (new sequences)
	chain  uint64  // chain hash through the reused blocks
}

// NewDecoder returns a decoder for m with a KV cache of at most
// budgetBlocks blocks (see KVBlockTokens and KVStats.BlockBytes); the
// memory is allocated as blocks are first needed. The Decoder keeps using
// m's parameters and kernels.
func NewDecoder(m *Model, budgetBlocks int) *Decoder {
	c := m.cfg
	d := &Decoder{
		m: m, cfg: c, k: m.k, pool: defaultPool(),
		cache:  newKVCache(c.NLayer, c.NHead, c.HeadDim(), max(budgetBlocks, 0)),
		exitAt: make([]int, c.NLayer),
		newIDs: map[uint64]int{},
	}
	for l := range d.exitAt {
		d.exitAt[l] = -1
	}
	for i, l := range c.ExitLayers {
		d.exitAt[l-1] = i
	}
	if c.RoPE() {
		half := c.HeadDim() / 2
		d.ropeCos = make([]float32, c.NCtx*half)
		d.ropeSin = make([]float32, c.NCtx*half)
		for t := range c.NCtx {
			d.ropeAngles(t, d.ropeCos[t*half:(t+1)*half], d.ropeSin[t*half:(t+1)*half])
		}
	}
	d.tAttn.d, d.tAct.d = d, d
	d.vk = portableVec{}
	if vk, ok := m.k.(VectorKernels); ok {
		d.vk = vk
	}
	d.ck = portableCols{}
	if ck, ok := m.k.(ColKernels); ok {
		d.ck = ck
	}
	if gk, ok := m.k.(GeluKernels); ok {
		d.gk = gk
	}
	d.rk = vecRows{d.vk}
	if rk, ok := m.k.(RowKernels); ok {
		d.rk, d.rkOwn = rk, rk
	}
	return d
}

// KVBlockBytes is the size of one KV-cache block for cfg, in bytes.
func KVBlockBytes(cfg Config) int {
	return 4 * cfg.NLayer * 2 * cfg.NEmbd * KVBlockTokens
}

func (d *Decoder) ropeAngles(t int, cos, sin []float32) {
	hd := d.cfg.HeadDim()
	for i := range cos {
		theta := float64(t) * math.Pow(10000, -2*float64(i)/float64(hd))
		cos[i] = float32(math.Cos(theta))
		sin[i] = float32(math.Sin(theta))
	}
}

// Stats describes the KV cache.
func (d *Decoder) Stats() KVStats { return d.cache.stats() }

// Len is how many positions sequence id holds (0 when unknown).
func (d *Decoder) Len(id uint64) int {
	if s, ok := d.cache.seqs[id]; ok {
		return s.n
	}
	return 0
}

// Release frees the cached sequences; unknown ids are ignored.
func (d *Decoder) Release(ids ...uint64) {
	for _, id := range ids {
		d.cache.release(id)
	}
}

// Reset drops every cached sequence and every block kept for prefix reuse
// (the weights changed).
func (d *Decoder) Reset() {
	d.cache.reset()
	d.wT = nil
	d.wP = nil
}

// maxPos is the first position a sequence may not reach (0: no limit).
func (d *Decoder) maxPos() int {
	if d.cfg.RoPE() && d.cfg.AttnWindow > 0 {
		return 0
	}
	return d.cfg.NCtx
}

// Step releases the ids in release, then appends each sequence's tokens to
// its cache and returns the logits that follow each sequence. On an error
// no sequence has changed (released ones stay released).
func (d *Decoder) Step(seqs []DecodeSeq, release []uint64, exitThreshold float32) (StepResult, error) {
	d.Release(release...)
	d.step++
	if len(seqs) == 0 {
		return StepResult{}, fmt.Errorf("%w: no sequences", ErrInvalidInput)
	}
	if math.IsNaN(float64(exitThreshold)) || exitThreshold < 0 {
		return StepResult{}, fmt.Errorf("%w: exit threshold %v must be non-negative", ErrInvalidInput, exitThreshold)
	}
	if err := d.planStep(seqs); err != nil {
		return StepResult{}, err
	}
	d.run(exitThreshold)
	return d.res, nil
}

// planStep validates the step, finds reusable prefixes and reserves
// blocks. On an error it leaves the cache as it was.
func (d *Decoder) planStep(seqs []DecodeSeq) error {
	c, cache := d.cfg, d.cache
	clear(d.newIDs)
	d.plan = d.plan[:0]
	rows, need := 0, 0
	undo := func() {
		for _, p := range d.plan {
			for _, b := range p.reused {
				cache.drop(b)
			}
		}
		d.plan = d.plan[:0]
	}
	fail := func(err error) error { undo(); return err }
	limit := d.maxPos()
	for i, sq := range seqs {
		if len(sq.Tokens) == 0 {
			return fail(fmt.Errorf("%w: sequence %d (id %d) appends no tokens", ErrInvalidInput, i, sq.ID))
		}
		for j, t := range sq.Tokens {
			if t < 0 || int(t) >= c.VocabSize {
				return fail(fmt.Errorf("%w: sequence %d (id %d): token %d at index %d is outside vocab_size %d", ErrInvalidInput, i, sq.ID, t, j, c.VocabSize))
			}
		}
		p := seqPlan{id: sq.ID, toks: sq.Tokens}
		if s, ok := cache.seqs[sq.ID]; ok {
			if s.step == d.step {
				return fail(fmt.Errorf("%w: sequence id %d appears twice in one step", ErrInvalidInput, sq.ID))
			}
			s.step = d.step
			p.s, p.from = s, s.n
		} else {
			if j, dup := d.newIDs[sq.ID]; dup {
				return fail(fmt.Errorf("%w: sequence id %d appears twice in one step (sequences %d and %d)", ErrInvalidInput, sq.ID, j, i))
			}
			d.newIDs[sq.ID] = i
			p.isNew = true
			if limit == 0 || len(sq.Tokens) <= limit {
				d.reusePrefix(&p)
			}
		}
		// In the plan from here on, so that a failure returns its reused
		// blocks.
		d.plan = append(d.plan, p)
		end := p.from + len(p.toks)
		if limit > 0 && end > limit {
			return fail(fmt.Errorf("%w: sequence %d (id %d) would reach %d positions, beyond n_ctx %d", ErrInvalidInput, i, sq.ID, end, limit))
		}
		rows += len(p.toks)
		if rows > MaxStepTokens {
			return fail(fmt.Errorf("%w: the step appends more than %d tokens; split the prefill", ErrInvalidInput, MaxStepTokens))
		}
		have := len(p.reused)
		if !p.isNew {
			have = len(p.s.table)
		}
		need += max(0, (end+KVBlockTokens-1)/KVBlockTokens-have)
	}
	if need > cache.available() {
		undo()
		return cache.fullError(need)
	}
	// Commit: create new sequences and give every sequence its blocks.
	for i := range d.plan {
		p := &d.plan[i]
		if p.isNew {
			s := cache.newSeq()
			s.table = append(s.table, p.reused...)
			s.n, s.chain, s.step = p.from, p.chain, d.step
			cache.seqs[p.id] = s
			p.s = s
		}
		cache.grow(p.s, p.from+len(p.toks))
	}
	d.rows = rows
	return nil
}

// reusePrefix shares the registered blocks that match the leading full
// blocks of a new sequence's prompt, keeping at least its last token to
// compute (its logits are the result).
func (d *Decoder) reusePrefix(p *seqPlan) {
	toks := p.toks
	var parent uint64
	for b := 0; (b+1)*KVBlockTokens < len(toks); b++ {
		blk, h, ok := d.cache.lookup(parent, toks[b*KVBlockTokens:(b+1)*KVBlockTokens])
		if !ok {
			break
		}
		d.cache.retain(blk)
		p.reused = append(p.reused, blk)
		parent = h
	}
	n := len(p.reused) * KVBlockTokens
	p.from, p.toks, p.chain = n, toks[n:], parent
}

// ensure sizes the per-row and per-sequence buffers.
func (d *Decoder) ensure(rows, seqs int) {
	D, half := d.cfg.NEmbd, d.cfg.HeadDim()/2
	if rows > d.capRows {
		n := max(rows, 2*d.capRows)
		d.rowSeq = make([]int32, n)
		d.rowPos = make([]int32, n)
		d.rowTok = make([]int32, n)
		d.x = make([]float32, n*D)
		d.h = make([]float32, n*D)
		d.qkv = make([]float32, n*3*D)
		d.y = make([]float32, n*D)
		d.tmp = make([]float32, n*D)
		d.fc = make([]float32, n*4*D)
		if d.cfg.SwiGLU() {
			d.gate = make([]float32, n*4*D)
		}
		d.mean = make([]float32, n)
		d.rstd = make([]float32, n)
		d.scores = make([]float32, n*d.cfg.NHead*attnChunk)
		if d.cfg.RoPE() {
			d.rc = make([]float32, n*half)
			d.rs = make([]float32, n*half)
		}
		d.capRows = n
	}
	if seqs > d.capSeqs {
		n := max(seqs, 2*d.capSeqs)
		V := d.cfg.VocabSize
		d.lastRow = make([]int32, n)
		d.exited = make([]bool, n)
		d.candSeq = make([]int32, n)
		d.last = make([]float32, n*D)
		d.out = make([]float32, n*V)
		d.logits = make([]float32, n*V)
		d.res = StepResult{
			Logits: make([][]float32, n), Cached: make([]int, n),
			ExitLayers: make([]int, n), Reused: make([]int, n),
		}
		for i := range n {
			d.res.Logits[i] = d.logits[i*V : (i+1)*V : (i+1)*V]
		}
		d.capSeqs = n
	}
}

// run computes the planned step and fills d.res.
func (d *Decoder) run(threshold float32) {
	c := d.cfg
	D, V, H, hd := c.NEmbd, c.VocabSize, c.NHead, c.HeadDim()
	half := hd / 2
	nSeq := len(d.plan)
	d.ensure(d.rows, nSeq)
	d.res.Logits = d.res.Logits[:nSeq]
	d.res.Cached = d.res.Cached[:nSeq]
	d.res.ExitLayers = d.res.ExitLayers[:nSeq]
	d.res.Reused = d.res.Reused[:nSeq]
	// Rows and embeddings.
	r := 0
	for i, p := range d.plan {
		for j, t := range p.toks {
			pos := p.from + j
			d.rowSeq[r], d.rowPos[r], d.rowTok[r] = int32(i), int32(pos), t
			row := d.x[r*D : (r+1)*D]
			copy(row, d.m.p.wte[int(t)*D:int(t+1)*D])
			if c.RoPE() {
				cs, sn := d.rc[r*half:(r+1)*half], d.rs[r*half:(r+1)*half]
				if pos < c.NCtx {
					copy(cs, d.ropeCos[pos*half:])
					copy(sn, d.ropeSin[pos*half:])
				} else {
					d.ropeAngles(pos, cs, sn)
				}
			} else {
				pe := d.m.p.wpe[pos*D : (pos+1)*D]
				for k, v := range pe {
					row[k] += v
				}
			}
			r++
		}
		d.lastRow[i] = int32(r - 1)
		d.exited[i] = false
		d.res.ExitLayers[i] = c.NLayer
		d.res.Reused[i] = len(p.reused) * KVBlockTokens
	}
	N := d.rows
	d.active = N
	d.maxKeys = 0
	for r := range N {
		d.maxKeys = max(d.maxKeys, int(d.rowPos[r])+1)
	}
	if w := c.AttnWindow; w > 0 {
		d.maxKeys = min(d.maxKeys, w+c.AttnGlobal)
	}
	exits := threshold > 0 && len(c.ExitLayers) > 0
	pending := 0 // rows of x still to add d.tmp (the last MLP's output) to
	for l := range c.NLayer {
		lp := &d.m.p.layers[l]
		// Every row, exited ones included, gets this layer's K and V.
		d.norm(lp.ln1W, lp.ln1B, N, pending)
		pending = 0
		d.linear(d.qkv, d.h, lp.attnW, lp.attnB, N, D, 3*D)
		if c.RoPE() {
			d.rope(N)
		}
		A := d.active
		// With one row per sequence, no row reads another row's keys of
		// this step: each attention piece stores its own (row, head) first
		// and finds the lines it wrote still in its cache.
		fuse := N == nSeq
		from := 0
		if fuse {
			from = A // rows below A are stored by their attention pieces
		}
		d.storeKV(l, from, N)
		if A == 0 {
			continue
		}
		work := A * d.maxKeys * D
		stream := 8*work >= attnStreamBytes
		d.tAttn.layer, d.tAttn.store, d.tAttn.n, d.tAttn.stream = l, fuse, A*H, stream
		if stream {
			// Bound by memory, not multiply-adds: worth a wake-up.
			d.pool.Run(&d.tAttn, A*H)
		} else {
			d.par(&d.tAttn, A*H, work)
		}
		d.linear(d.tmp, d.y, lp.projW, lp.projB, A, D, D)
		d.norm(lp.ln2W, lp.ln2B, A, A)
		d.linear(d.fc, d.h, lp.fcW, lp.fcB, A, D, 4*D)
		if c.SwiGLU() {
			d.linear(d.gate, d.h, lp.gateW, lp.gateB, A, D, 4*D)
		}
		d.activate(A)
		d.linear(d.tmp, d.fc, lp.mprojW, lp.mprojB, A, 4*D, D)
		if exit := exits && d.exitAt[l] >= 0; exit || l == c.NLayer-1 {
			addTo(d.x[:A*D], d.tmp[:A*D])
			if exit {
				d.tryExit(l, threshold)
			}
		} else {
			pending = A // added by the next layer's first norm
		}
	}
	// Final norm and logits of the sequences that did not exit.
	n := 0
	for i := range nSeq {
		if !d.exited[i] {
			d.candSeq[n] = int32(i)
			copy(d.last[n*D:(n+1)*D], d.x[int(d.lastRow[i])*D:])
			n++
		}
	}
	if n > 0 {
		normForward(d.last, d.mean, d.rstd, d.last[:n*D], d.m.p.lnfW, d.m.p.lnfB, n, D)
		if n == nSeq {
			clear(d.logits[:n*V])
			d.matmul(true, d.logits, d.last, d.m.p.wte, n, D, V)
		} else {
			clear(d.out[:n*V])
			d.matmul(true, d.out, d.last, d.m.p.wte, n, D, V)
			for j := range n {
				i := int(d.candSeq[j])
				copy(d.logits[i*V:(i+1)*V], d.out[j*V:(j+1)*V])
			}
		}
	}
	// Record the tokens, register full blocks, drop what the window passed.
	for i, p := range d.plan {
		if d.exited[i] {
			p.s.exact = false
		}
		d.cache.commit(p.s, p.from, p.toks)
		d.cache.dropInvisible(p.s, c.AttnWindow, c.AttnGlobal)
		d.res.Cached[i] = p.s.n
	}
}

// linear computes out[N,O] = in[N,I]·W[I,O] + b with the model's kernels.
func (d *Decoder) linear(out, in, w, b []float32, N, I, O int) {
	out = out[:N*O]
	for r := range N {
		copy(out[r*O:(r+1)*O], b)
	}
	if N >= 2 && N <= gemvMaxRows {
		if wt := d.transposed(w, I, O); wt != nil {
			d.matmul(true, out, in, wt, N, I, O)
			return
		}
	}
	d.matmul(false, out, in, w, N, I, O)
}

func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}

// rope rotates the q and k parts of the first n rows of qkv by each row's
// position (pairs 2i, 2i+1, as Model does).
func (d *Decoder) rope(n int) {
	D, hd := d.cfg.NEmbd, d.cfg.HeadDim()
	half := hd / 2
	for r := range n {
		cos, sin := d.rc[r*half:(r+1)*half], d.rs[r*half:(r+1)*half]
		row := d.qkv[r*3*D : r*3*D+2*D]
		for h := 0; h < 2*D; h += hd {
			v := row[h : h+hd]
			for i := range half {
				x0, x1 := v[2*i], v[2*i+1]
				c, s := cos[i], sin[i]
				v[2*i] = x0*c - x1*s
				v[2*i+1] = x0*s + x1*c
			}
		}
	}
}

// storeKV writes the K and V of rows [from, to) of qkv into the cache.
func (d *Decoder) storeKV(layer, from, to int) {
	for r := from; r < to; r++ {
		for h := range d.cfg.NHead {
			d.storeHead(layer, r, h)
		}
	}
}

// storeHead writes head h's K and V of row r of qkv into the cache: the
// value as a row, the key down its block's dimension-major columns.
func (d *Decoder) storeHead(layer, r, h int) {
	D, hd := d.cfg.NEmbd, d.cfg.HeadDim()
	cache := d.cache
	pos := int(d.rowPos[r])
	blk := cache.block(d.plan[d.rowSeq[r]].s, pos)
	slot := pos % KVBlockTokens
	q := d.qkv[r*3*D : (r+1)*3*D]
	k := blk[cache.kOffset(layer, h)+slot:][:(hd-1)*KVBlockTokens+1]
	for i, v := range q[D+h*hd : D+(h+1)*hd] {
		k[i*KVBlockTokens] = v
	}
	copy(blk[cache.vOffset(layer, h)+slot*hd:][:hd], q[2*D+h*hd:2*D+(h+1)*hd])
}

// swapRows exchanges rows a and b of the step (hidden state, position,
// rope angles) and keeps lastRow pointing at the right rows.
func (d *Decoder) swapRows(a, b int) {
	if a == b {
		return
	}
	D, half := d.cfg.NEmbd, d.cfg.HeadDim()/2
	xa, xb := d.x[a*D:(a+1)*D], d.x[b*D:(b+1)*D]
	for i := range xa {
		xa[i], xb[i] = xb[i], xa[i]
	}
	if d.cfg.RoPE() {
		for i := range half {
			d.rc[a*half+i], d.rc[b*half+i] = d.rc[b*half+i], d.rc[a*half+i]
			d.rs[a*half+i], d.rs[b*half+i] = d.rs[b*half+i], d.rs[a*half+i]
		}
	}
	sa, sb := d.rowSeq[a], d.rowSeq[b]
	d.rowSeq[a], d.rowSeq[b] = sb, sa
	d.rowPos[a], d.rowPos[b] = d.rowPos[b], d.rowPos[a]
	d.rowTok[a], d.rowTok[b] = d.rowTok[b], d.rowTok[a]
	if d.lastRow[sa] == int32(a) {
		d.lastRow[sa] = int32(b)
	}
	if d.lastRow[sb] == int32(b) {
		d.lastRow[sb] = int32(a)
	}
}

// decAttnTask is attention for one (row, head) of the step: the row's
// query over the visible cached keys of its sequence, with an online
// softmax one chunk of positions at a time (see attnState.keys).
type decAttnTask struct {
	d     *Decoder
	layer int
	store bool // store the row's K and V of the head first (see run)
	// stream says that the step's KV cache does not stay in the core's
	// cache (see attnStreamBytes): then each piece prefetches what it and
	// the next piece read; below that the prefetches cost more than the
	// misses they save.
	stream bool
	n      int // pieces
}

func (t *decAttnTask) Run(i int) {
	d := t.d
	c := d.cfg
	D, H, hd := c.NEmbd, c.NHead, c.HeadDim()
	r, h := i/H, i%H
	if t.stream && i+1 < t.n {
		t.prefetch(i + 1)
	}
	if t.store {
		d.storeHead(t.layer, r, h)
	}
	s := d.plan[d.rowSeq[r]].s
	q := int(d.rowPos[r])
	qv := d.qkv[r*3*D+h*hd : r*3*D+h*hd+hd]
	out := d.y[r*D+h*hd : r*D+h*hd+hd]
	clear(out)
	st := attnState{m: float32(math.Inf(-1)), scale: float32(1 / math.Sqrt(float64(hd)))}
	sc := d.scores[i*attnChunk : (i+1)*attnChunk : (i+1)*attnChunk]
	kOff := d.cache.kOffset(t.layer, h)
	vOff := d.cache.vOffset(t.layer, h)
	if w := c.AttnWindow; w > 0 && q-w+1 > 0 {
		lo := q - w + 1
		if g := min(c.AttnGlobal, lo); g > 0 {
			st.keys(d, s, qv, out, sc, 0, g-1, kOff, vOff)
		}
		st.keys(d, s, qv, out, sc, lo, q, kOff, vOff)
	} else {
		st.keys(d, s, qv, out, sc, 0, q, kOff, vOff)
	}
	inv := 1 / st.l
	for j := range out {
		out[j] *= inv
	}
}

// prefetch hints the memory piece i starts with (most often the next piece
// the same goroutine takes): the keys of its first block and, when it
// stores, the lines its key and value go to, so that they are on their way
// while this piece runs.
func (t *decAttnTask) prefetch(i int) {
	d := t.d
	H := d.cfg.NHead
	r, h := i/H, i%H
	s := d.plan[d.rowSeq[r]].s
	q := int(d.rowPos[r])
	lo := 0
	if w := d.cfg.AttnWindow; w > 0 && q-w+1 > 0 && d.cfg.AttnGlobal == 0 {
		lo = q - w + 1
	}
	n := d.cache.kvHeadFloats()
	kOff := d.cache.kOffset(t.layer, h)
	d.ck.Prefetch(d.cache.data[s.table[lo/KVBlockTokens]][kOff : kOff+n])
	if t.store && q/KVBlockTokens != lo/KVBlockTokens {
		hd := d.cfg.HeadDim()
		blk := d.cache.block(s, q)
		d.ck.Prefetch(blk[kOff : kOff+n])
		v := d.cache.vOffset(t.layer, h) + q%KVBlockTokens*hd
		d.ck.Prefetch(blk[v : v+hd])
	}
}

// attnStreamBytes is the most KV-cache bytes (8 per key and model
// dimension: a float of K and one of V) a step's attention reads before
// it counts as streaming from memory rather than from the core's cache:
// then it runs at memory speed, hundreds of microseconds at batch 32, and
// is split across the pool even if that wakes a parked helper.
const attnStreamBytes = 1 << 20

// attnChunk is how many positions a piece of attention scores at a time
// (a multiple of KVBlockTokens): every block's keys of a chunk first, then
// one softmax pass over the chunk's scores, then the values. Chunks fold
// into a running (online) softmax.
const attnChunk = 8 * KVBlockTokens

// attnState is a running (online) softmax: max m, normaliser l.
type attnState struct {
	m, l, scale float32
}

// keys folds positions lo..hi (inclusive) of s into out, attnChunk
// positions at a time: the query against each block's dimension-major keys
// in one DotCols (all KVBlockTokens slots into sc, block-aligned; those
// outside lo..hi are ignored), the chunk's softmax weights in one vector
// exp, then each block's values they weigh in one AxpyRows. Each block's
// values and the next block's keys are prefetched as its keys are scored
// when the step streams its cache from memory: each is a page the hardware
// prefetcher has not seen.
func (st *attnState) keys(d *Decoder, s *kvSeq, qv, out, sc []float32, lo, hi, kOff, vOff int) {
	hd := len(qv)
	n := d.cache.kvHeadFloats()
	ck, pf := d.ck, d.tAttn.stream
	for c0 := lo; c0 <= hi; {
		b0 := c0 / KVBlockTokens
		base := b0 * KVBlockTokens
		c1 := min(hi, base+attnChunk-1)
		b1 := c1 / KVBlockTokens
		for b := b0; b <= b1; b++ {
			blk := d.cache.data[s.table[b]]
			if pf {
				ck.Prefetch(blk[vOff : vOff+n])
				if b < hi/KVBlockTokens {
					nb := d.cache.data[s.table[b+1]]
					ck.Prefetch(nb[kOff : kOff+n])
				}
			}
			j := (b - b0) * KVBlockTokens
			ck.DotCols(qv, blk[kOff:kOff+n], KVBlockTokens, sc[j:j+KVBlockTokens], false)
		}
		p := sc[c0-base : c1-base+1]
		mx, scale := st.m, st.scale
		for j, v := range p {
			v *= scale
			p[j] = v
			if v > mx { // a NaN score makes its weight NaN in expShift
				mx = v
			}
		}
		if mx > st.m {
			f := expf(st.m - mx)
			st.l *= f
			for k := range out {
				out[k] *= f
			}
			st.m = mx
		}
		expShift(p, p, st.m)
		l := st.l
		for _, v := range p {
			l += v
		}
		st.l = l
		for b := b0; b <= b1; b++ {
			blk := d.cache.data[s.table[b]]
			s0 := max(c0-b*KVBlockTokens, 0)
			s1 := min(c1-b*KVBlockTokens, KVBlockTokens-1)
			j := b*KVBlockTokens - base
			d.rk.AxpyRows(sc[j+s0:j+s1+1], blk[vOff+s0*hd:vOff+(s1+1)*hd], hd, out)
		}
		c0 = c1 + 1
	}
}

// RowKernels is an optional extension of Kernels (found by type
// assertion; *simd.Kernels has it) with products over rows of a matrix lda
// apart, one call each: the attention's softmax weights over a block of
// the paged cache's values, and the single-row products of a decode step.
// Without it the decoder makes them of VectorKernels' Dot and Axpy.
type RowKernels interface {
	// DotRows sets out[j] = x · a[j·lda : j·lda+len(x)], or adds it to
	// out[j] when add is set.
	DotRows(x, a []float32, lda int, out []float32, add bool)
	// AxpyRows adds Σ_j alpha[j]·a[j·lda : j·lda+len(y)] to y.
	AxpyRows(alpha, a []float32, lda int, y []float32)
}

// ColKernels is an optional extension of Kernels (found by type
// assertion; *simd.Kernels has it) for the attention over the paged
// cache's dimension-major keys. Without it the decoder uses portable
// loops.
type ColKernels interface {
	// DotCols sets out[j] = Σ_c x[c]·a[c·lda + j] for j < len(out), or
	// adds it to out[j] when add is set.
	DotCols(x, a []float32, lda int, out []float32, add bool)
	// Prefetch hints that x will be read soon; it changes nothing.
	Prefetch(x []float32)
}

// portableCols is ColKernels in Go.
type portableCols struct{}

func (portableCols) DotCols(x, a []float32, lda int, out []float32, add bool) {
	n := len(out)
	if !add {
		clear(out)
	}
	for c, v := range x {
		row := a[c*lda : c*lda+n]
		for j, av := range row {
			out[j] += v * av
		}
	}
}

func (portableCols) Prefetch([]float32) {}

// vecRows makes RowKernels of VectorKernels.
type vecRows struct{ vk VectorKernels }

func (r vecRows) DotRows(x, a []float32, lda int, out []float32, add bool) {
	n := len(x)
	for j := range out {
		v := r.vk.Dot(x, a[j*lda:j*lda+n])
		if add {
			v += out[j]
		}
		out[j] = v
	}
}

func (r vecRows) AxpyRows(alpha, a []float32, lda int, y []float32) {
	n := len(y)
	for j, v := range alpha {
		r.vk.Axpy(v, a[j*lda:j*lda+n], y)
	}
}

// decNormTask is the residual add fused with the norm that follows it,
// over chunks of rows: rows below add get x += d.tmp first, then every row
// d.h = norm(x) (see addNormForward).
type decNormTask struct {
	d      *Decoder
	w, b   []float32
	add    int
	n, per int
}

// norm sets d.h to the norm (weights w, b) of the first n rows of d.x,
// after adding d.tmp to its first add rows, in parallel when it pays.
func (d *Decoder) norm(w, b []float32, n, add int) {
	D := d.cfg.NEmbd
	work := 4 * n * D
	chunks := 1
	if work >= shortWork {
		chunks = min(n, 4*d.pool.Helpers()+4)
	}
	t := &d.tNorm
	*t = decNormTask{d: d, w: w, b: b, add: add, n: n, per: (n + chunks - 1) / chunks}
	d.par(t, chunks, work)
	t.w, t.b = nil, nil
}

func (t *decNormTask) Run(i int) {
	d := t.d
	D := d.cfg.NEmbd
	lo, hi := i*t.per, min((i+1)*t.per, t.n)
	if a := min(hi, t.add); lo < a {
		addNormForward(d.h, d.mean, d.rstd, d.x, d.tmp, nil, t.w, t.b, lo, a, D)
		lo = a
	}
	if lo < hi {
		addNormForward(d.h, d.mean, d.rstd, d.x, nil, nil, t.w, t.b, lo, hi, D)
	}
}

// GeluKernels is an optional extension of Kernels (found by type
// assertion; *simd.Kernels has it): the MLP's GELU in one vector pass.
// Without it the decoder computes it as geluForward does.
type GeluKernels interface {
	// GeluTanh sets x[i] = x[i]·sigmoid(2u), u = sqrt(2/π)·(x[i] +
	// 0.044715·x[i]³) (GELU, tanh form), in place.
	GeluTanh(x []float32)
}

// decActTask applies the MLP activation to chunks of rows of d.fc: GELU
// (tanh form, as Model), or SwiGLU's silu(gate)·up.
type decActTask struct {
	d      *Decoder
	n, per int
}

func (d *Decoder) activate(n int) {
	W := 4 * d.cfg.NEmbd
	work := 16 * n * W // an exp costs about as much as 16 multiply-adds
	chunks := 1
	if work >= shortWork {
		chunks = min(n, 4*d.pool.Helpers()+4)
	}
	d.tAct.n, d.tAct.per = n, (n+chunks-1)/chunks
	d.par(&d.tAct, chunks, work)
}

func (t *decActTask) Run(i int) {
	d := t.d
	W := 4 * d.cfg.NEmbd
	lo, hi := i*t.per, min((i+1)*t.per, t.n)
	if lo >= hi {
		return
	}
	x := d.fc[lo*W : hi*W]
	var e [256]float32 // exps in a vector pass, a block at a time
	if d.cfg.SwiGLU() {
		g := d.gate[lo*W : hi*W]
		for b0 := 0; b0 < len(x); b0 += len(e) {
			xs, gs := x[b0:min(b0+len(e), len(x))], g[b0:]
			es := e[:len(xs)]
			for j := range es {
				es[j] = -gs[j]
			}
			expShift(es, es, 0)
			for j, v := range es {
				xs[j] *= gs[j] / (1 + v)
			}
		}
		return
	}
	// GELU (tanh form) as x·sigmoid(2u), as geluForward.
	if d.gk != nil {
		d.gk.GeluTanh(x)
		return
	}
	for b0 := 0; b0 < len(x); b0 += len(e) {
		xs := x[b0:min(b0+len(e), len(x))]
		es := e[:len(xs)]
		for j, v := range xs {
			es[j] = -2 * geluC * (v + 0.044715*v*v*v)
		}
		expShift(es, es, 0)
		for j, v := range xs {
			xs[j] = v * (1 / (1 + es[j]))
		}
	}
}
