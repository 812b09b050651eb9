package dedup

import (
	"crypto/sha256"
	"math"
	"math/rand/v2"
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

// perm is one MinHash permutation: (a*x + b) >> 32.
type perm struct{ a, b uint64 }

// Hasher computes MinHash signatures. It is immutable after NewHasher and
// safe for concurrent use.
type Hasher struct {
	shingle int
	perms   []perm
	powOut  uint64 // rollBase^shingle, to remove the outgoing rune
}

// NewHasher validates cfg and draws its permutations from cfg.Seed.
func NewHasher(cfg Config) (*Hasher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r := rand.New(rand.NewPCG(cfg.Seed, 0x6d696e68617368)) // "minhash"
	h := &Hasher{shingle: cfg.Shingle, perms: make([]perm, cfg.Perms), powOut: 1}
	for i := range h.perms {
		h.perms[i] = perm{a: r.Uint64() | 1, b: r.Uint64()}
	}
	for range cfg.Shingle {
		h.powOut *= rollBase
	}
	return h, nil
}

// Perms is the signature length.
func (h *Hasher) Perms() int { return len(h.perms) }

// Signature overwrites dst[:Perms] with the MinHash
// signature of key's rune shingles and returns it, allocating only when
// cap(dst) < Perms. A key shorter than one shingle is one shingle of the
// whole key (the empty key included). Invalid UTF-8 bytes count as U+FFFD.
func (h *Hasher) Signature(key string, dst []uint32) []uint32 {
	n := len(h.perms)
	if cap(dst) < n {
		dst = make([]uint32, n)
	}
	sig := dst[:n]
	for i := range sig {
		sig[i] = math.MaxUint32
	}
	k := h.shingle
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
		roll = roll*rollBase + v - h.powOut*ring[pos]
		ring[pos] = v
		if pos++; pos == k {
			pos = 0
		}
		if count++; count >= k {
			h.update(sig, mix64(roll))
		}
	}
	if count < k {
		h.update(sig, mix64(roll^uint64(count)<<56))
	}
	return sig
}

// update folds one shingle hash into sig.
func (h *Hasher) update(sig []uint32, x uint64) {
	ps := h.perms[:len(sig)]
	for i := range ps {
		v := uint32((ps[i].a*x + ps[i].b) >> 32)
		if v < sig[i] {
			sig[i] = v
		}
	}
}

// EstimateJaccard is the fraction of equal slots in two signatures from the
// same Hasher: an unbiased estimate of the Jaccard similarity of their
// shingle sets, with standard deviation sqrt(s(1-s)/Perms). Signatures of
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
