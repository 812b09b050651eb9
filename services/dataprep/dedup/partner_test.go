package dedup_test

import (
	"math"
	"math/bits"
	"math/rand/v2"
)

// modPrime is the textbook MinHash the benchmark compares against: each
// shingle's bytes hashed with FNV-1a, then 128 permutations
// (a*x + b) mod 2^61-1.
type modPrime struct{ a, b []uint64 }

const mersenne61 = 1<<61 - 1

func newModPrime(n int) *modPrime {
	r := rand.New(rand.NewPCG(1, 1))
	m := &modPrime{a: make([]uint64, n), b: make([]uint64, n)}
	for i := range n {
		m.a[i], m.b[i] = 1+r.Uint64N(mersenne61-1), r.Uint64N(mersenne61)
	}
	return m
}

func mulMod61(a, x uint64) uint64 {
	hi, lo := bits.Mul64(a, x)
	r := (hi<<3 | lo>>61) + lo&mersenne61
	if r >= mersenne61 {
		r -= mersenne61
	}
	return r
}

func (m *modPrime) signature(s string, k int, sig []uint64) {
	for i := range sig {
		sig[i] = math.MaxUint64
	}
	var starts []int
	for i := range s {
		starts = append(starts, i)
	}
	starts = append(starts, len(s))
	for i := 0; i+k < len(starts); i++ {
		x := uint64(14695981039346656037)
		for _, c := range []byte(s[starts[i]:starts[i+k]]) {
			x = (x ^ uint64(c)) * 1099511628211
		}
		x &= mersenne61
		for j := range sig {
			v := mulMod61(m.a[j], x) + m.b[j]
			if v >= mersenne61 {
				v -= mersenne61
			}
			if v < sig[j] {
				sig[j] = v
			}
		}
	}
}
