package sampling

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Limits on Params.
const (
	MaxTemperature       = 10
	MaxRepetitionPenalty = 10
)

// ErrInvalidParams: a sampling parameter is out of its range.
var ErrInvalidParams = errors.New("invalid sampling parameters")

// Params configures a Sampler. The zero value is greedy decoding.
type Params struct {
	Temperature float32 // 0 means greedy (argmax); at most MaxTemperature
	TopK        int     // sample among the k largest logits; 0 means all
	// TopP in (0, 1] samples from the smallest set of tokens whose
	// probabilities (after temperature and top-k) sum to at least TopP
	// (nucleus sampling); 0 and 1 mean all.
	TopP float32
	// RepetitionPenalty > 1 makes tokens already seen (see Sampler.Seen)
	// less likely: a positive logit is divided by it, a negative one
	// multiplied (CTRL's rule). 0 and 1 mean none.
	RepetitionPenalty float32
	Seed              uint64
}

// Validate checks every parameter against its range.
func (p Params) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidParams, fmt.Sprintf(format, args...))
	}
	switch t := p.Temperature; {
	case isNaN(t) || t < 0 || t > MaxTemperature:
		return bad("temperature %g out of range [0, %d]", t, MaxTemperature)
	}
	if p.TopK < 0 {
		return bad("top_k %d must not be negative", p.TopK)
	}
	if t := p.TopP; isNaN(t) || t < 0 || t > 1 {
		return bad("top_p %g out of range [0, 1]", t)
	}
	if r := p.RepetitionPenalty; isNaN(r) || r < 0 || r > MaxRepetitionPenalty || (r > 0 && r < 0.01) {
		return bad("repetition_penalty %g out of range [0.01, %d] (0 means none)", r, MaxRepetitionPenalty)
	}
	return nil
}

// Sampler draws tokens from logits. It is not safe for concurrent use.
type Sampler struct {
	p       Params
	rng     *rand.Rand
	seen    map[int32]struct{}
	scratch []float32
	idx     []int32
	probs   []float64
}

// New returns a Sampler; equal Params (and equal Seen calls) give equal
// draws.
func New(p Params) *Sampler {
	s := &Sampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))}
	if p.RepetitionPenalty > 0 && p.RepetitionPenalty != 1 {
		s.seen = map[int32]struct{}{}
	}
	return s
}

// Seen records tokens for the repetition penalty (the prompt, typically);
// Next records the tokens it picks by itself.
func (s *Sampler) Seen(ids ...int32) {
	if s.seen == nil {
		return
	}
	for _, id := range ids {
		s.seen[id] = struct{}{}
	}
}

// Next picks a token id from logits (one per vocabulary entry); it does
// not modify logits. NaN logits are never picked unless every logit is
// NaN; it returns -1 for an empty row.
func (s *Sampler) Next(logits []float32) int32 {
	if len(logits) == 0 {
		return -1
	}
	if s.seen != nil && len(s.seen) > 0 {
		s.scratch = append(s.scratch[:0], logits...)
		pen := s.p.RepetitionPenalty
		for id := range s.seen {
			if id < 0 || int(id) >= len(s.scratch) {
				continue
			}
			if v := s.scratch[id]; v > 0 {
				s.scratch[id] = v / pen
			} else {
				s.scratch[id] = v * pen
			}
		}
		logits = s.scratch
	}
	next := s.pick(logits)
	s.Seen(next)
	return next
}

func (s *Sampler) pick(logits []float32) int32 {
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
	nucleus := s.p.TopP > 0 && s.p.TopP < 1
	if (k > 0 && k < len(s.idx)) || nucleus {
		sort.SliceStable(s.idx, func(a, b int) bool { return logits[s.idx[a]] > logits[s.idx[b]] })
		if k > 0 && k < len(s.idx) {
			s.idx = s.idx[:k]
		}
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
	if nucleus { // idx is sorted: keep the shortest prefix reaching TopP
		want, acc := float64(s.p.TopP)*sum, 0.0
		for j, p := range s.probs {
			acc += p
			if acc >= want {
				s.idx, s.probs, sum = s.idx[:j+1], s.probs[:j+1], acc
				break
			}
		}
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

// Greedy reports whether the sampler always picks the argmax of the raw
// logits (temperature 0, no repetition penalty): what a backend's
// multi-step decoding picks too (Argmax).
func (s *Sampler) Greedy() bool { return s.p.Temperature <= 0 && s.seen == nil }

// Argmax is greedy decoding's pick: the first largest logit, NaNs skipped
// (0 when every logit is NaN, -1 for an empty row).
func Argmax(logits []float32) int32 {
	if len(logits) == 0 {
		return -1
	}
	return argmax(logits)
}

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
