package transformer

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Pruning: functions that zero parts of a model's weights in place.
// Unstructured magnitude pruning (PruneMagnitude) zeroes the smallest
// weights; structured pruning zeroes whole attention heads (PruneHeads)
// or MLP hidden neurons (PruneNeurons), so that they contribute nothing.
// None of them changes shapes: the zeros are what a fine-tune keeps with
// AdamW.SetMask(ZeroMask(m)) and what a sparse format could later drop.
//
// Weight matrices here are in the model's [in, out] layout (out = in·W):
// a head's q, k and v are columns of c_attn.weight, its slice of the
// attention output is rows of attn.c_proj.weight; a hidden neuron is a
// column of mlp.c_fc.weight (and mlp.c_gate.weight) and a row of
// mlp.c_proj.weight.

// MatrixSparsity is one matrix's line of a PruneReport.
type MatrixSparsity struct {
	Name            string
	Params, Nonzero int64
	Sparsity        float64 // 1 - Nonzero/Params
}

// PruneReport describes a model's sparsity over the pruning scope: the
// linear weight matrices (c_attn, attn.c_proj, c_fc, c_gate, mlp.c_proj),
// plus the embeddings when they were pruned too. Heads and Neurons list,
// per layer, what a structured pruning zeroed (ascending).
type PruneReport struct {
	Params, Nonzero int64
	Sparsity        float64
	Matrices        []MatrixSparsity
	Heads           [][]int `json:",omitempty"`
	Neurons         [][]int `json:",omitempty"`
}

// PruneOption changes the scope or the ranking of PruneMagnitude and
// SparsityOf.
type PruneOption func(*pruneOptions)

type pruneOptions struct{ global, embeddings bool }

// PruneGlobal ranks all weights in scope together, so matrices end with
// different sparsities; the default ranks each matrix on its own and gives
// every matrix the target sparsity.
func PruneGlobal() PruneOption { return func(o *pruneOptions) { o.global = true } }

// PruneEmbeddings adds the token (and learned position) embeddings to the
// scope. The token embedding is also the output projection (tied).
func PruneEmbeddings() PruneOption { return func(o *pruneOptions) { o.embeddings = true } }

// isLinear reports whether p is a linear layer's weight matrix.
func isLinear(p Param) bool {
	return len(p.Shape) == 2 && (strings.HasSuffix(p.Name, ".c_attn.weight") ||
		strings.HasSuffix(p.Name, ".c_proj.weight") || strings.HasSuffix(p.Name, ".c_fc.weight") ||
		strings.HasSuffix(p.Name, ".c_gate.weight"))
}

func inScope(p Param, o pruneOptions) bool {
	return isLinear(p) || (o.embeddings && (p.Name == "wte" || p.Name == "wpe"))
}

// SparsityOf reports m's sparsity over the pruning scope (see
// PruneReport; PruneEmbeddings adds the embeddings).
func SparsityOf(m *Model, opts ...PruneOption) PruneReport {
	var o pruneOptions
	for _, f := range opts {
		f(&o)
	}
	var r PruneReport
	for _, p := range m.Params() {
		if !inScope(p, o) {
			continue
		}
		ms := MatrixSparsity{Name: p.Name, Params: int64(p.Size())}
		for _, v := range p.Data {
			if v != 0 {
				ms.Nonzero++
			}
		}
		ms.Sparsity = 1 - float64(ms.Nonzero)/float64(ms.Params)
		r.Matrices = append(r.Matrices, ms)
		r.Params += ms.Params
		r.Nonzero += ms.Nonzero
	}
	if r.Params > 0 {
		r.Sparsity = 1 - float64(r.Nonzero)/float64(r.Params)
	}
	return r
}

// PruneMagnitude zeroes the weights of smallest magnitude until each
// matrix in scope (or, with PruneGlobal, the scope as a whole) has
// round(sparsity·size) zeros: weights already zero count, and equal
// magnitudes go in index order, so the result is exact and deterministic
// and pruning again to the same target changes nothing. sparsity must be
// in [0, 1]. It returns the report of the scope after pruning.
func PruneMagnitude(m *Model, sparsity float64, opts ...PruneOption) (PruneReport, error) {
	if err := checkPrunable(m); err != nil {
		return PruneReport{}, err
	}
	if !(sparsity >= 0 && sparsity <= 1) {
		return PruneReport{}, fmt.Errorf("%w: sparsity %v is outside [0, 1]", ErrInvalidInput, sparsity)
	}
	var o pruneOptions
	for _, f := range opts {
		f(&o)
	}
	var scope [][]float32
	total := 0
	for _, p := range m.Params() {
		if !inScope(p, o) {
			continue
		}
		if o.global {
			scope = append(scope, p.Data)
			total += p.Size()
			continue
		}
		zeroSmallest([][]float32{p.Data}, int(math.Round(sparsity*float64(p.Size()))))
	}
	if o.global {
		zeroSmallest(scope, int(math.Round(sparsity*float64(total))))
	}
	return SparsityOf(m, opts...), nil
}

// zeroSmallest zeroes the k entries of smallest magnitude of the
// concatenation of parts (ties in order). It selects by radix on the bits
// of |w| (whose order as unsigned integers is the order of the
// magnitudes): a histogram of the high 16 bits, then of the low 16 bits
// within the bucket that holds the k-th smallest, two passes and no copy.
func zeroSmallest(parts [][]float32, k int) {
	if k <= 0 {
		return
	}
	key := func(v float32) uint32 { return math.Float32bits(v) &^ (1 << 31) }
	hist := make([]int, 1<<16)
	for _, d := range parts {
		for _, v := range d {
			hist[key(v)>>16]++
		}
	}
	hi, below := pickBucket(hist, k)
	clear(hist)
	for _, d := range parts {
		for _, v := range d {
			if kv := key(v); kv>>16 == hi {
				hist[kv&0xffff]++
			}
		}
	}
	lo, below2 := pickBucket(hist, k-below)
	thr := hi<<16 | lo
	ties := k - below - below2 // entries equal to thr to zero, in order
	for _, d := range parts {
		for i, v := range d {
			switch kv := key(v); {
			case kv < thr:
				d[i] = 0
			case kv == thr && ties > 0:
				d[i] = 0
				ties--
			}
		}
	}
}

// pickBucket returns the bucket that holds the k-th smallest entry
// (1-based) of histogram h and how many entries lie in lower buckets.
func pickBucket(h []int, k int) (uint32, int) {
	below := 0
	for b, n := range h {
		if below+n >= k {
			return uint32(b), below
		}
		below += n
	}
	return uint32(len(h) - 1), below // k exceeds the count: everything goes
}

// PruneHeads zeroes, in every layer, the perLayer attention heads of
// smallest L2 norm (over their q, k and v columns and biases and their
// rows of attn.c_proj; equal norms by head index). Heads already zero
// have norm 0 and are chosen first, so pruning again with the same count
// changes nothing. perLayer must be in [0, n_head).
func PruneHeads(m *Model, perLayer int) (PruneReport, error) {
	if err := checkPrunable(m); err != nil {
		return PruneReport{}, err
	}
	c := m.cfg
	if perLayer < 0 || perLayer >= c.NHead {
		return PruneReport{}, fmt.Errorf("%w: %d heads per layer is outside [0, n_head %d)", ErrInvalidInput, perLayer, c.NHead)
	}
	D, hd := c.NEmbd, c.HeadDim()
	heads := make([][]int, c.NLayer)
	for l := range c.NLayer {
		lp := &m.p.layers[l]
		norms := make([]float64, c.NHead)
		for h := range c.NHead {
			var ss float64
			for _, col := range []int{h * hd, D + h*hd, 2*D + h*hd} {
				ss += sumSquaresCols(lp.attnW, 3*D, col, hd) + sumSquares(lp.attnB[col:col+hd])
			}
			norms[h] = ss + sumSquares(lp.projW[h*hd*D:(h+1)*hd*D])
		}
		heads[l] = smallest(norms, perLayer)
	}
	return PruneHeadSet(m, heads)
}

// PruneHeadSet zeroes the listed heads: heads[l] are layer l's (len(heads)
// at most n_layer). A zeroed head's queries, keys and values are zero, so
// its attention output is zero whatever it attends to, and its rows of
// attn.c_proj are zero too.
func PruneHeadSet(m *Model, heads [][]int) (PruneReport, error) {
	c := m.cfg
	if err := checkSet(m, "head", heads, c.NLayer, c.NHead); err != nil {
		return PruneReport{}, err
	}
	D, hd := c.NEmbd, c.HeadDim()
	for l, hs := range heads {
		lp := &m.p.layers[l]
		for _, h := range hs {
			for _, col := range []int{h * hd, D + h*hd, 2*D + h*hd} {
				zeroCols(lp.attnW, 3*D, col, hd)
				clear(lp.attnB[col : col+hd])
			}
			clear(lp.projW[h*hd*D : (h+1)*hd*D])
		}
	}
	r := SparsityOf(m)
	r.Heads = sortedSets(heads, c.NLayer)
	return r, nil
}

// PruneNeurons zeroes, in every layer, round(fraction·4·n_embd) MLP hidden
// neurons of smallest L2 norm (over their c_fc column and bias, c_gate
// column and bias for SwiGLU, and mlp.c_proj row; equal norms by index).
// fraction must be in [0, 1) and leave at least one neuron per layer.
// Pruning again with the same fraction changes nothing.
func PruneNeurons(m *Model, fraction float64) (PruneReport, error) {
	if err := checkPrunable(m); err != nil {
		return PruneReport{}, err
	}
	c := m.cfg
	H := 4 * c.NEmbd
	n := int(math.Round(fraction * float64(H)))
	if !(fraction >= 0 && fraction < 1) || n >= H {
		return PruneReport{}, fmt.Errorf("%w: neuron fraction %v is outside [0, 1) or leaves no neuron of %d", ErrInvalidInput, fraction, H)
	}
	D := c.NEmbd
	neurons := make([][]int, c.NLayer)
	for l := range c.NLayer {
		lp := &m.p.layers[l]
		norms := make([]float64, H)
		for j := range H {
			ss := sumSquaresCols(lp.fcW, H, j, 1) + float64(lp.fcB[j])*float64(lp.fcB[j]) + sumSquares(lp.mprojW[j*D:(j+1)*D])
			if c.SwiGLU() {
				ss += sumSquaresCols(lp.gateW, H, j, 1) + float64(lp.gateB[j])*float64(lp.gateB[j])
			}
			norms[j] = ss
		}
		neurons[l] = smallest(norms, n)
	}
	return PruneNeuronSet(m, neurons)
}

// PruneNeuronSet zeroes the listed MLP hidden neurons: neurons[l] are
// layer l's, each in [0, 4·n_embd). A zeroed neuron's pre-activations are
// zero (GELU(0) = 0, silu(0)·0 = 0) and so is its row of mlp.c_proj.
func PruneNeuronSet(m *Model, neurons [][]int) (PruneReport, error) {
	c := m.cfg
	H, D := 4*c.NEmbd, c.NEmbd
	if err := checkSet(m, "neuron", neurons, c.NLayer, H); err != nil {
		return PruneReport{}, err
	}
	for l, js := range neurons {
		lp := &m.p.layers[l]
		for _, j := range js {
			zeroCols(lp.fcW, H, j, 1)
			lp.fcB[j] = 0
			if c.SwiGLU() {
				zeroCols(lp.gateW, H, j, 1)
				lp.gateB[j] = 0
			}
			clear(lp.mprojW[j*D : (j+1)*D])
		}
	}
	r := SparsityOf(m)
	r.Neurons = sortedSets(neurons, c.NLayer)
	return r, nil
}

// checkPrunable refuses INT8 models: their matrices are the quantized
// ones, so pruning comes before quantization.
func checkPrunable(m *Model) error {
	if m.Quantized() {
		return fmt.Errorf("%w: the model is INT8-quantized; prune the fp32 model, then quantize it", ErrInvalidInput)
	}
	return nil
}

func checkSet(m *Model, what string, sets [][]int, layers, n int) error {
	if err := checkPrunable(m); err != nil {
		return err
	}
	if len(sets) > layers {
		return fmt.Errorf("%w: %s lists for %d layers, the model has %d", ErrInvalidInput, what, len(sets), layers)
	}
	for l, s := range sets {
		for _, i := range s {
			if i < 0 || i >= n {
				return fmt.Errorf("%w: layer %d: %s %d is outside [0, %d)", ErrInvalidInput, l, what, i, n)
			}
		}
	}
	return nil
}

// sortedSets returns a copy of sets with layers lengths, each ascending
// without repeats.
func sortedSets(sets [][]int, layers int) [][]int {
	out := make([][]int, layers)
	for l, s := range sets {
		out[l] = slices.Compact(slices.Sorted(slices.Values(s)))
	}
	return out
}

// smallest returns the indices of the n smallest values (ties by index),
// ascending.
func smallest(v []float64, n int) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case v[a] < v[b]:
			return -1
		case v[a] > v[b]:
			return 1
		}
		return 0
	})
	idx = idx[:n]
	slices.Sort(idx)
	return idx
}

func sumSquares(x []float32) float64 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	return ss
}

// sumSquaresCols sums the squares of columns [col, col+n) of the row-major
// matrix w with ld columns.
func sumSquaresCols(w []float32, ld, col, n int) float64 {
	var ss float64
	for r := 0; r+ld <= len(w); r += ld {
		ss += sumSquares(w[r+col : r+col+n])
	}
	return ss
}

func zeroCols(w []float32, ld, col, n int) {
	for r := 0; r+ld <= len(w); r += ld {
		clear(w[r+col : r+col+n])
	}
}

// Pruning methods a PruneSpec may name.
const (
	PruneMethodMagnitude = "magnitude"
	PruneMethodHeads     = "heads"
	PruneMethodNeurons   = "neurons"
)

// PruneSpec names one pruning and its target, for callers that take it
// from a job description.
type PruneSpec struct {
	Method string `json:"method"` // PruneMethodMagnitude, PruneMethodHeads or PruneMethodNeurons
	// Magnitude: the target sparsity, per matrix or (Global) over the
	// scope, the embeddings included when Embeddings is set.
	Sparsity   float64 `json:"sparsity,omitempty"`
	Global     bool    `json:"global,omitempty"`
	Embeddings bool    `json:"embeddings,omitempty"`
	// Heads: how many heads to zero in every layer.
	HeadsPerLayer int `json:"heads_per_layer,omitempty"`
	// Neurons: the fraction of each layer's MLP hidden neurons to zero.
	NeuronFraction float64 `json:"neuron_fraction,omitempty"`
}

// Apply prunes m as s says and returns the report.
func (s PruneSpec) Apply(m *Model) (PruneReport, error) {
	switch s.Method {
	case PruneMethodMagnitude:
		var opts []PruneOption
		if s.Global {
			opts = append(opts, PruneGlobal())
		}
		if s.Embeddings {
			opts = append(opts, PruneEmbeddings())
		}
		return PruneMagnitude(m, s.Sparsity, opts...)
	case PruneMethodHeads:
		return PruneHeads(m, s.HeadsPerLayer)
	case PruneMethodNeurons:
		return PruneNeurons(m, s.NeuronFraction)
	}
	return PruneReport{}, fmt.Errorf("%w: pruning method %q is not %q, %q or %q", ErrInvalidInput, s.Method, PruneMethodMagnitude, PruneMethodHeads, PruneMethodNeurons)
}
