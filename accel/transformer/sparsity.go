package transformer

import (
	"fmt"
	"math/bits"
)

// SparsityMask is a set of entries of a model's flat parameter vector (one
// bit each) that training keeps at zero: the pruned weights of a model
// being fine-tuned. See ZeroMask and AdamW.SetMask.
type SparsityMask struct {
	n     int
	count int
	bits  []uint64
}

// ZeroMask returns the mask of every entry of m's 2-D tensors (weight
// matrices and embeddings, never norms or biases) that is exactly zero.
func ZeroMask(m *Model) *SparsityMask {
	s := &SparsityMask{n: m.NumParams(), bits: make([]uint64, (m.NumParams()+63)/64)}
	for _, p := range m.Params() {
		if len(p.Shape) != 2 {
			continue
		}
		for i, v := range p.Data {
			if v == 0 {
				j := p.Offset + i
				s.bits[j>>6] |= 1 << (j & 63)
			}
		}
	}
	for _, w := range s.bits {
		s.count += bits.OnesCount64(w)
	}
	return s
}

// Size is the length of the parameter vector the mask covers.
func (s *SparsityMask) Size() int { return s.n }

// Count is the number of masked entries.
func (s *SparsityMask) Count() int { return s.count }

// Has reports whether entry i is masked.
func (s *SparsityMask) Has(i int) bool { return s.bits[i>>6]>>(i&63)&1 != 0 }

// Apply zeroes the masked entries of x (len(x) must be Size()).
func (s *SparsityMask) Apply(x []float32) {
	if len(x) != s.n {
		panic(fmt.Sprintf("sparsity mask of %d entries applied to %d", s.n, len(x)))
	}
	s.applyRange(x, 0, len(x))
}

// applyRange zeroes the masked entries of x[lo:hi] (x is the whole vector).
func (s *SparsityMask) applyRange(x []float32, lo, hi int) {
	for w := lo >> 6; w<<6 < hi; w++ {
		word := s.bits[w]
		for word != 0 {
			j := w<<6 + bits.TrailingZeros64(word)
			word &= word - 1
			if j >= lo && j < hi {
				x[j] = 0
			}
		}
	}
}
