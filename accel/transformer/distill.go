package transformer

import (
	"fmt"
	"math"
)

// Knowledge distillation: a teacher's top-K logits per position (TopK)
// and the student's objective against them (DistillForwardBackward).

// Temperature bounds of SoftTargets: outside them z/T leaves float32's
// comfortable range or the soft targets are a one-hot in all but name.
const (
	MinTemperature = 1e-2
	MaxTemperature = 1e2
)

// SoftTargets are a teacher's top-K logits for every position of a batch
// (B·T·K entries each, position-major: position r's are [r·K, (r+1)·K)).
// The teacher's distribution at temperature T is the softmax of its K
// logits / T; every other token has probability zero. The order of the K
// entries within a position does not matter, but the ids must differ.
type SoftTargets struct {
	K           int
	Indices     []int32
	Logits      []float32
	Temperature float32 // in [MinTemperature, MaxTemperature]
	Alpha       float32 // weight of the distillation term, in [0, 1]
}

// check validates st for n positions over a vocabulary of v tokens.
func (st *SoftTargets) check(n, v int) error {
	switch {
	case st == nil:
		return fmt.Errorf("%w: no soft targets", ErrInvalidInput)
	case st.K <= 0 || st.K > v:
		return fmt.Errorf("%w: teacher k %d is outside [1, vocab_size %d]", ErrInvalidInput, st.K, v)
	case len(st.Indices) != n*st.K || len(st.Logits) != n*st.K:
		return fmt.Errorf("%w: teacher has %d indices and %d logits, want %d positions x k %d = %d", ErrInvalidInput, len(st.Indices), len(st.Logits), n, st.K, n*st.K)
	case !(st.Temperature >= MinTemperature && st.Temperature <= MaxTemperature):
		return fmt.Errorf("%w: temperature %v is outside [%v, %v]", ErrInvalidInput, st.Temperature, MinTemperature, MaxTemperature)
	case !(st.Alpha >= 0 && st.Alpha <= 1):
		return fmt.Errorf("%w: alpha %v is outside [0, 1]", ErrInvalidInput, st.Alpha)
	}
	for i, x := range st.Logits {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%w: teacher logit %v at index %d is not finite", ErrInvalidInput, x, i)
		}
	}
	// Ids in range and distinct within each position: a stamp per token
	// remembers the last position that named it.
	seen := make([]int32, v)
	for i := range seen {
		seen[i] = -1
	}
	for i, id := range st.Indices {
		if id < 0 || int(id) >= v {
			return fmt.Errorf("%w: teacher index %d at %d is outside vocab_size %d", ErrInvalidInput, id, i, v)
		}
		pos := int32(i / st.K)
		if seen[id] == pos {
			return fmt.Errorf("%w: teacher index %d appears twice at position %d", ErrInvalidInput, id, pos)
		}
		seen[id] = pos
	}
	return nil
}

// distillState is the teacher of the distillation pass in flight; the
// Model's ceTask computes distillRow instead of crossEntropyRow while st
// is set. The scratch is per chunk of rows and is kept between calls.
type distillState struct {
	st   *SoftTargets
	zs   []float32 // chunks × V: exp(z/T - max/T) of the row in hand
	logP []float64 // chunks × K: the teacher's log-probabilities
	v, k int
}

// DistillForwardBackward is ForwardBackward with the distillation
// objective: every head's loss (the final head's, and the mean of the exit
// heads' as in Model) is, per position,
//
//	Alpha·T²·KL(p_T ‖ q_T) + (1−Alpha)·CE(targets)
//
// averaged over positions, where p_T is the teacher's softmax over its K
// logits / T (zero outside the K ids), q_T = softmax(z/T) over the whole
// vocabulary and CE is the model's (label-smoothed) cross-entropy. The
// gradient with respect to the logits z is
// Alpha·T·(q_T − p_T) + (1−Alpha)·(softmax(z) − target), over the
// number of positions.
func (m *Model) DistillForwardBackward(inputs, targets []int32, B, T int, st *SoftTargets) (float64, error) {
	if err := m.setTeacher(st, B*T); err != nil {
		return 0, err
	}
	defer m.clearTeacher()
	return m.ForwardBackward(inputs, targets, B, T)
}

// DistillObjective returns what DistillForwardBackward differentiates,
// without touching the gradients.
func (m *Model) DistillObjective(inputs, targets []int32, B, T int, st *SoftTargets) (float64, error) {
	if err := m.setTeacher(st, B*T); err != nil {
		return 0, err
	}
	defer m.clearTeacher()
	return m.Objective(inputs, targets, B, T)
}

func (m *Model) setTeacher(st *SoftTargets, n int) error {
	if n <= 0 {
		return fmt.Errorf("%w: batch of %d positions", ErrInvalidInput, n)
	}
	V := m.cfg.VocabSize
	if err := st.check(n, V); err != nil {
		return err
	}
	kd := &m.kd
	c := m.chunks(n)
	kd.zs = grow(kd.zs, c*V)
	if cap(kd.logP) < c*st.K {
		kd.logP = make([]float64, c*st.K)
	}
	kd.logP = kd.logP[:c*st.K]
	kd.st, kd.v, kd.k = st, V, st.K
	return nil
}

func (m *Model) clearTeacher() { m.kd.st = nil }

// rows is ceTask's work for chunk i (rows [lo, hi)) on a distillation pass.
func (kd *distillState) rows(m *Model, i, lo, hi int) {
	V, K := kd.v, kd.k
	st := kd.st
	zs := kd.zs[i*V : (i+1)*V]
	lp := kd.logP[i*K : (i+1)*K]
	for r := lo; r < hi; r++ {
		m.rowLoss[r] = distillRow(m.a.logits[r*V:(r+1)*V], int(m.targets[r]), m.labelSmoothing, m.ceScale, m.train,
			st.Indices[r*K:(r+1)*K], st.Logits[r*K:(r+1)*K], st.Temperature, st.Alpha, zs, lp)
	}
}

// distillRow returns one position's distillation loss (see
// DistillForwardBackward) for student logits row, target tgt with label
// smoothing eps, and the teacher's ids idx and logits tl at temperature
// temp; when grad it overwrites row with scale × the loss's gradient.
// zs (len(row)) and lp (len(idx)) are scratch.
func distillRow(row []float32, tgt int, eps, scale float32, grad bool, idx []int32, tl []float32, temp, alpha float32, zs []float32, lp []float64) float64 {
	V := len(row)
	T := float64(temp)
	// The teacher's log-probabilities, in float64.
	tmx := tl[0]
	for _, v := range tl {
		tmx = max(tmx, v)
	}
	var ts float64
	for k, v := range tl {
		lp[k] = (float64(v) - float64(tmx)) / T // float32 could overflow
		ts += math.Exp(lp[k])
	}
	logZ := math.Log(ts)
	var negEnt, cross float64 // Σ p·log p and Σ p·z[id]
	for k := range lp {
		lp[k] -= logZ
		p := math.Exp(lp[k])
		negEnt += p * lp[k]
		cross += p * float64(row[idx[k]])
	}
	// The student: softmax(z) and softmax(z/T) share the row's maximum.
	xt := row[tgt]
	invT := 1 / temp
	one := temp == 1
	mx := row[0]
	var sumX float64
	if one {
		for _, v := range row {
			mx = max(mx, v)
			sumX += float64(v)
		}
	} else {
		zs = zs[:V]
		for j, v := range row {
			mx = max(mx, v)
			sumX += float64(v)
			zs[j] = v * invT
		}
		expShift(zs, zs, mx*invT)
	}
	var sum1, sumT float64
	switch {
	case !grad:
		for _, v := range row {
			sum1 += float64(expf(v - mx))
		}
		if !one {
			for _, e := range zs {
				sumT += float64(e)
			}
		}
	case one:
		expShift(row, row, mx)
		for _, e := range row {
			sum1 += float64(e)
		}
	default:
		expShift(row, row, mx)
		for j, e := range row {
			sum1 += float64(e)
			sumT += float64(zs[j])
		}
	}
	if one {
		sumT = sum1
	}
	lse := math.Log(sum1) + float64(mx)
	lseT := math.Log(sumT) + float64(mx*invT)
	ce := lse - (1-float64(eps))*float64(xt) - float64(eps)*sumX/float64(V)
	kl := negEnt - cross/T + lseT
	a := float64(alpha)
	loss := a*T*T*kl + (1-a)*ce
	if !grad {
		return loss
	}
	ka := scale * alpha * temp // scale·Alpha·T
	kc := scale * (1 - alpha)  // scale·(1−Alpha)
	inv1 := kc * float32(1/sum1)
	invT2 := ka * float32(1/sumT)
	off := kc * eps / float32(V)
	if one {
		c := inv1 + invT2
		for j, e := range row {
			row[j] = e*c - off
		}
	} else {
		for j, e := range row {
			row[j] = e*inv1 + zs[j]*invT2 - off
		}
	}
	row[tgt] -= kc * (1 - eps)
	for k, id := range idx {
		row[id] -= ka * float32(math.Exp(lp[k]))
	}
	return loss
}

// TopKResult is a teacher's output for a batch: for each of its B·T
// positions, the K largest logits of the final head and their token ids
// (K entries per position, position-major, largest first; equal logits in
// ascending id order; NaN ranks below every number), and the batch's
// validation loss as Loss returns it.
type TopKResult struct {
	K       int
	Indices []int32
	Logits  []float32
	Loss    float64
}

// TopK runs the batch forward and returns each position's K largest
// logits with the validation loss (no label smoothing, no exit heads).
// K must be in [1, vocab_size]. Only the B·T·K results are allocated; the
// logits live in the model's own buffer, and each row is scanned once with
// a K-entry heap.
func (m *Model) TopK(inputs, targets []int32, B, T, K int) (TopKResult, error) {
	if err := m.checkBatch(inputs, targets, B, T); err != nil {
		return TopKResult{}, err
	}
	V, D := m.cfg.VocabSize, m.cfg.NEmbd
	if K <= 0 || K > V {
		return TopKResult{}, fmt.Errorf("%w: top-k %d is outside [1, vocab_size %d]", ErrInvalidInput, K, V)
	}
	m.train = false
	m.forward(inputs, B, T)
	N := m.N
	m.product(true, m.a.logits, m.a.lnf, m.p.wte, N, D, V, 0) // as headLoss: INT8 and QAT heads too
	res := TopKResult{K: K, Indices: make([]int32, N*K), Logits: make([]float32, N*K)}
	task := topKTask{m: m, k: K, targets: targets, idx: res.Indices, val: res.Logits, chunks: m.chunks(N)}
	m.pool.Run(&task, task.chunks)
	for _, l := range m.rowLoss[:N] {
		res.Loss += l
	}
	res.Loss /= float64(N)
	return res, nil
}

type topKTask struct {
	m       *Model
	k       int
	chunks  int
	targets []int32
	idx     []int32
	val     []float32
}

func (t *topKTask) Run(i int) {
	m := t.m
	V, N, K := m.cfg.VocabSize, m.N, t.k
	lo, hi := chunkRange(i, t.chunks, N)
	for r := lo; r < hi; r++ {
		row := m.a.logits[r*V : (r+1)*V]
		topKRow(row, t.idx[r*K:(r+1)*K], t.val[r*K:(r+1)*K])
		m.rowLoss[r] = crossEntropyRow(row, int(t.targets[r]), 0, 0, false)
	}
}

// worse reports whether logit a of token ia ranks below logit b of token
// ib: smaller, or equal with a larger id; NaN is below every number.
func worse(a float32, ia int32, b float32, ib int32) bool {
	an, bn := a != a, b != b
	switch {
	case an || bn:
		if an && bn {
			return ia > ib
		}
		return an
	case a != b:
		return a < b
	}
	return ia > ib
}

// topKRow writes row's len(idx) best entries (see worse) into idx and val,
// best first. idx and val serve as a min-heap (worst at the root) during
// the scan.
func topKRow(row []float32, idx []int32, val []float32) {
	K := len(idx)
	for j := range K {
		idx[j], val[j] = int32(j), row[j]
		siftUp(idx, val, j)
	}
	for j := K; j < len(row); j++ {
		v, rv := row[j], val[0]
		// Tokens come in ascending id order, so an equal logit never
		// displaces the root; a number displaces a NaN root.
		if v > rv || (rv != rv && v == v) {
			idx[0], val[0] = int32(j), v
			siftDown(idx, val, 0, K)
		}
	}
	// Heap sort: moving the worst to the end leaves best first.
	for n := K - 1; n > 0; n-- {
		idx[0], idx[n] = idx[n], idx[0]
		val[0], val[n] = val[n], val[0]
		siftDown(idx, val, 0, n)
	}
}

func siftUp(idx []int32, val []float32, j int) {
	for j > 0 {
		p := (j - 1) / 2
		if !worse(val[j], idx[j], val[p], idx[p]) {
			return
		}
		idx[j], idx[p] = idx[p], idx[j]
		val[j], val[p] = val[p], val[j]
		j = p
	}
}

func siftDown(idx []int32, val []float32, j, n int) {
	for {
		c := 2*j + 1
		if c >= n {
			return
		}
		if c+1 < n && worse(val[c+1], idx[c+1], val[c], idx[c]) {
			c++
		}
		if !worse(val[c], idx[c], val[j], idx[j]) {
			return
		}
		idx[j], idx[c] = idx[c], idx[j]
		val[j], val[c] = val[c], val[j]
		j = c
	}
}
