package dedup

import (
	"crypto/sha256"
	"math"
	"math/rand/v2"
	"slices"
	"unicode/utf8"
)

// ContentHash is the exact-duplicate key: the SHA-256 of the matching key.
func ContentHash(key string) [32]byte { return sha256.Sum256([]byte(key)) }

// rollBase is the odd multiplier of the rolling shingle hash (mod 2^64).
const rollBase uint64 = 0x9E3779B97F4A7C15

// mix64 is the MurmurHash3 finaliser: a bijection that spreads every input
// bit over the output.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// densifyTries is how many random candidate bins an empty bin tries (from
// a per-Hasher table) before it scans rightwards, cyclically, from the last
// one. Documents with a few dozen shingles or more fill almost every bin and
// almost never reach the scan; it only bounds the work for tiny keys.
const densifyTries = 16

// Hasher computes MinHash signatures by one-permutation hashing with
// optimal densification (see the package documentation). It is immutable
// after NewHasher and safe for concurrent use.
type Hasher struct {
	shingle int
	bins    int
	a, b    uint64   // seeded multiply-add applied to every shingle hash
	try     []uint16 // bin j's candidate donors: try[j*densifyTries : (j+1)*densifyTries]
	powOut  uint64   // rollBase^shingle, to remove the outgoing rune
}

// NewHasher validates cfg and draws its hash and densification candidates
// from cfg.Seed.
func NewHasher(cfg Config) (*Hasher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r := rand.New(rand.NewPCG(cfg.Seed, 0x6d696e68617368)) // "minhash"
	h := &Hasher{
		shingle: cfg.Shingle,
		bins:    cfg.Perms,
		a:       r.Uint64() | 1,
		b:       r.Uint64(),
		try:     make([]uint16, cfg.Perms*densifyTries),
		powOut:  1,
	}
	for i := range h.try {
		h.try[i] = uint16(r.IntN(cfg.Perms))
	}
	for range cfg.Shingle {
		h.powOut *= rollBase
	}
	return h, nil
}

// Perms is the signature length (the number of bins).
func (h *Hasher) Perms() int { return h.bins }

// empty marks a bin that no shingle fell into. Bin values are 31 bits
// (see fold), so no shingle produces it.
const empty = math.MaxUint32

// Signature overwrites dst[:Perms] with the densified one-permutation
// MinHash signature of key's rune shingles and returns it, allocating only
// when cap(dst) < Perms. A key shorter than one shingle is one shingle of
// the whole key (the empty key included). Invalid UTF-8 bytes count as
// U+FFFD.
func (h *Hasher) Signature(key string, dst []uint32) []uint32 {
	n := h.bins
	if cap(dst) < n {
		dst = make([]uint32, n)
	}
	sig := dst[:n]
	for i := range sig {
		sig[i] = empty
	}
	k := h.shingle
	a, b, powOut := h.a, h.b, h.powOut
	nb := uint64(n)
	var ring [MaxShingle]uint64 // code point + 1 of the last k runes; 0 = empty
	var roll uint64
	pos, count := 0, 0
	for i := 0; i < len(key); {
		c := rune(key[i])
		if c < utf8.RuneSelf {
			i++
		} else {
			var size int
			c, size = utf8.DecodeRuneInString(key[i:])
			i += size
		}
		// Window hash H = sum v_j*B^(k-1-j) over the last k runes, oldest
		// first: H' = H*B + v_new - B^k*v_old.
		v := uint64(c) + 1
		roll = roll*rollBase + v - powOut*ring[pos]
		ring[pos] = v
		if pos++; pos == k {
			pos = 0
		}
		if count++; count >= k {
			// fold, inlined: this is the per-shingle hot path.
			y := a*mix64(roll) + b
			bin := (y >> 32) * nb >> 32
			if val := uint32(y) >> 1; val < sig[bin] {
				sig[bin] = val
			}
		}
	}
	if count < k {
		h.fold(sig, mix64(roll^uint64(count)<<56))
	}
	h.densify(sig)
	return sig
}

// fold puts one shingle hash x into its bin: y = a*x + b (a bijection of
// x, drawn from the Seed); the high 32 bits of y pick the bin (by
// multiply-shift range reduction, so any Perms works) and the low 31 bits
// are the value the bin keeps the minimum of.
func (h *Hasher) fold(sig []uint32, x uint64) {
	y := h.a*x + h.b
	bin := (y >> 32) * uint64(len(sig)) >> 32
	if val := uint32(y) >> 1; val < sig[bin] {
		sig[bin] = val
	}
}

// densify fills every empty bin j from a donor: the first of j's
// candidate bins (fixed per Hasher, so the same for every document) that
// holds a shingle, and if none of its densifyTries candidates does, the
// first non-empty bin scanning rightwards (cyclically) from the last
// candidate. Donors are looked up among the bins filled by shingles, never
// among bins filled by densification. At least one bin is always filled
// (every key has at least one shingle).
func (h *Hasher) densify(sig []uint32) {
	if !slices.Contains(sig, empty) {
		return // the common case for documents: every bin got a shingle
	}
	n := len(sig)
	var filled [MaxPerms]bool
	for j, v := range sig {
		filled[j] = v != empty
	}
	for j := range sig {
		if filled[j] {
			continue
		}
		cand := h.try[j*densifyTries : (j+1)*densifyTries]
		d := int(cand[len(cand)-1])
		found := false
		for _, c := range cand {
			if filled[c] {
				d, found = int(c), true
				break
			}
		}
		for !found {
			if d++; d == n {
				d = 0
			}
			found = filled[d]
		}
		sig[j] = sig[d]
	}
}

// EstimateJaccard is the fraction of equal slots in two signatures from the
// same Hasher: an unbiased estimate of the Jaccard similarity of their
// shingle sets, with standard deviation at most about sqrt(s(1-s)/Perms)
// (see the package documentation). Signatures of
// different lengths give 0.
func EstimateJaccard(a, b []uint32) float64 {
	if len(a) != len(b) || len(a) == 0 {
		return 0
	}
	eq := 0
	b = b[:len(a)]
	for i := range a {
		if a[i] == b[i] {
			eq++
		}
	}
	return float64(eq) / float64(len(a))
}

// Jaccard is the exact Jaccard similarity of the sets of shingle-rune
// shingles of a and b (a string shorter than one shingle is one shingle of
// itself). It is for evaluation and for confirming candidates; it allocates
// a set per call.
func Jaccard(a, b string, shingle int) float64 {
	if shingle < 1 {
		shingle = 1
	}
	sa := Shingles(a, shingle)
	inter := 0
	seen := make(map[string]struct{}, len(sa))
	forEachShingle(b, shingle, func(s string) {
		if _, dup := seen[s]; dup {
			return
		}
		seen[s] = struct{}{}
		if _, ok := sa[s]; ok {
			inter++
		}
	})
	union := len(sa) + len(seen) - inter
	if union == 0 {
		return 1
	}
	return float64(inter) / float64(union)
}

// Shingles returns the set of shingle-rune substrings of s (one shingle of
// the whole string when s is shorter). The keys share s's memory.
func Shingles(s string, shingle int) map[string]struct{} {
	set := make(map[string]struct{}, len(s)/2)
	forEachShingle(s, max(shingle, 1), func(x string) { set[x] = struct{}{} })
	return set
}

func forEachShingle(s string, k int, fn func(string)) {
	var starts [MaxShingle + 1]int
	if k > MaxShingle {
		k = MaxShingle
	}
	// starts is a ring of the byte offsets of the last k+1 rune starts.
	count := 0
	for i := range s {
		starts[count%(k+1)] = i
		count++
		if count > k {
			fn(s[starts[(count-k-1)%(k+1)]:i])
		}
	}
	if count >= k {
		fn(s[starts[(count-k)%(k+1)]:])
	} else {
		fn(s)
	}
}
