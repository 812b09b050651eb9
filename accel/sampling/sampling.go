package sampling

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Params configures a Sampler.
type Params struct {
	Temperature float32 // 0 means greedy (argmax)
	TopK        int     // sample among the k largest logits; k <= 0 means all
	Seed        uint64
}

// Sampler draws tokens from logits.
type Sampler struct {
	p     Params
	rng   *rand.Rand
	idx   []int32
	probs []float64
}

// New returns a Sampler; equal Params give equal draws.
func New(p Params) *Sampler {
	return &Sampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))}
}

// Next picks a token id from logits (one per vocabulary entry). NaN logits
// are never picked unless every logit is NaN; it returns -1 for an empty
// row.
func (s *Sampler) Next(logits []float32) int32 {
	if len(logits) == 0 {
		return -1
	}
	if s.p.Temperature <= 0 {
		return argmax(logits)
	}
	s.idx = s.idx[:0]
	for i, v := range logits {
		if !isNaN(v) {
			s.idx = append(s.idx, int32(i))
		}
	}
	if len(s.idx) == 0 {
		return 0
	}
	k := s.p.TopK
	if k > 0 && k < len(s.idx) {
		sort.SliceStable(s.idx, func(a, b int) bool { return logits[s.idx[a]] > logits[s.idx[b]] })
		s.idx = s.idx[:k]
	}
	mx := float32(math.Inf(-1))
	for _, i := range s.idx {
		mx = max(mx, logits[i])
	}
	if math.IsInf(float64(mx), -1) {
		return s.idx[0]
	}
	s.probs = s.probs[:0]
	var sum float64
	t := float64(s.p.Temperature)
	for _, i := range s.idx {
		e := math.Exp((float64(logits[i]) - float64(mx)) / t)
		s.probs = append(s.probs, e)
		sum += e
	}
	u := s.rng.Float64() * sum
	for j, p := range s.probs {
		u -= p
		if u < 0 {
			return s.idx[j]
		}
	}
	return s.idx[len(s.idx)-1]
}

func isNaN(v float32) bool { return v != v }

func argmax(logits []float32) int32 {
	best := -1
	for i, v := range logits {
		if isNaN(v) {
			continue
		}
		if best < 0 || v > logits[best] {
			best = i
		}
	}
	if best < 0 {
		return 0
	}
	return int32(best)
}
