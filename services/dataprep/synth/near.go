package synth

import (
	"math"
	"math/rand/v2"
	"slices"

	"github.com/llmesh/llmesh/services/dataprep/dedup"
)

// nearCopy edits src until its exact shingle Jaccard with src is within
// Tolerance of target, and returns the copy and its measured Jaccard. It
// searches the number of edits of a random plan (Jaccard falls roughly
// monotonically with it), trying a few plans before settling for the
// closest copy found.
func nearCopy(r *rand.Rand, src string, target float64, shingle int) (string, float64) {
	set := dedup.Shingles(src, shingle)
	rs := []rune(src)
	bestText, bestJ := src, 1.0
	consider := func(t string) float64 {
		j := jaccardWith(set, t, shingle)
		if math.Abs(j-target) < math.Abs(bestJ-target) {
			bestText, bestJ = t, j
		}
		return j
	}
	for range 6 {
		plan := r.Uint64()
		at := func(m int) float64 { return consider(applyEdits(rs, plan, m)) }
		// Exponential search for an edit count below target, then bisect.
		lo, hi := 0, 1
		for at(hi) > target {
			lo = hi
			if hi *= 2; hi > 4*len(rs)+8 {
				break
			}
		}
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			if at(mid) > target {
				lo = mid
			} else {
				hi = mid
			}
		}
		if math.Abs(bestJ-target) <= Tolerance {
			break
		}
	}
	return bestText, bestJ
}

// jaccardWith is the exact Jaccard of set and the shingles of t.
func jaccardWith(set map[string]struct{}, t string, shingle int) float64 {
	other := dedup.Shingles(t, shingle)
	inter := 0
	for s := range other {
		if _, ok := set[s]; ok {
			inter++
		}
	}
	union := len(set) + len(other) - inter
	if union == 0 {
		return 1
	}
	return float64(inter) / float64(union)
}

// applyEdits applies the first m edits of plan to a copy of src: runs of
// 1..4 characters substituted (by characters drawn from src itself),
// deleted or inserted, and now and then two sentences swapped.
func applyEdits(src []rune, plan uint64, m int) string {
	r := rand.New(rand.NewPCG(plan, 0x65646974)) // "edit"
	rs := slices.Clone(src)
	for range m {
		if len(rs) < 2 {
			if len(src) > 0 {
				rs = append(rs, src[r.IntN(len(src))])
			}
			continue
		}
		n := 1 + r.IntN(4)
		pos := r.IntN(len(rs))
		end := min(pos+n, len(rs))
		switch op := r.IntN(20); {
		case op < 9: // substitute
			for i := pos; i < end; i++ {
				rs[i] = src[r.IntN(len(src))]
			}
		case op < 14: // delete
			rs = slices.Delete(rs, pos, end)
		case op < 19: // insert
			ins := make([]rune, n)
			for i := range ins {
				ins[i] = src[r.IntN(len(src))]
			}
			rs = slices.Insert(rs, pos, ins...)
		default:
			rs = swapSentences(r, rs)
		}
	}
	return string(rs)
}

// swapSentences exchanges two random sentences (runs ending in 。 . ; ；
// or a newline).
func swapSentences(r *rand.Rand, rs []rune) []rune {
	var ends []int
	for i, c := range rs {
		switch c {
		case '。', '.', '；', ';', '\n':
			ends = append(ends, i+1)
		}
	}
	if len(ends) < 3 {
		return rs
	}
	i := r.IntN(len(ends) - 2)
	j := i + 1 + r.IntN(len(ends)-i-2)
	// Sentences (ends[i], ends[i+1]] and (ends[j], ends[j+1]].
	a0, a1, b0, b1 := ends[i], ends[i+1], ends[j], ends[j+1]
	out := make([]rune, 0, len(rs))
	out = append(out, rs[:a0]...)
	out = append(out, rs[b0:b1]...)
	out = append(out, rs[a1:b0]...)
	out = append(out, rs[a0:a1]...)
	out = append(out, rs[b1:]...)
	return out
}
