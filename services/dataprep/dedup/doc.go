// Package dedup finds exact and near-duplicate documents: content hashes for
// exact duplicates, and MinHash signatures with locality-sensitive hashing
// (LSH) for near duplicates, clustered with union-find, plus the policy that
// picks which member of a cluster survives.
//
// The pipeline for near duplicates is:
//
//	h, _ := dedup.NewHasher(cfg)          // immutable; safe for concurrent use
//	ix, _ := dedup.NewIndex(cfg)          // grows with the corpus; one goroutine
//	for id, key := range keys {
//		sig = h.Signature(key, sig[:0]) // no allocation once sig has capacity
//		ix.Add(id, sig)                 // the index copies sig
//	}
//	clusters := ix.Clusters(ix.ConfirmEstimated())
//	keep := dedup.Keep(clusters, dedup.KeepNewest, info)
//
// Keys are the caller's matching keys (already normalised, width- and
// case-folded); shingles are runs of Config.Shingle runes (characters, not
// bytes, so Chinese and English text are treated alike). A key shorter than
// one shingle is a single shingle of the whole key.
//
// Signatures are one-permutation MinHash with optimal densification
// (Li, Owen & Zhang 2012, "One Permutation Hashing"; Shrivastava 2017,
// "Optimal Densification for Fast and Accurate Minwise Hashing"). Each
// shingle is hashed once (a rolling polynomial hash over its code points,
// finished with a 64-bit mixer, then y = a*x + b with a, b drawn from
// Config.Seed); the high 32 bits of y pick one of Perms bins and each bin
// keeps the minimum of the low 31 bits of y over its shingles: O(1) work
// per shingle instead of O(Perms). Bins that no shingle fell into (with 128
// bins a key of 500 shingles leaves about 3 empty, one of 1000 rarely any)
// are then densified: empty bin j copies the value of the first bin, in a
// fixed Seed-drawn sequence of candidates (16 random bins, then a cyclic
// scan rightwards, which bounds the work for tiny keys), that a shingle
// fell into. The sequence is the same for every document, so an empty bin
// of two documents copies the same source bin exactly when the first
// candidate non-empty in their union is non-empty in both.
//
// EstimateJaccard, the fraction of equal slots, is an unbiased estimate of
// the Jaccard similarity, as with classic k-permutation MinHash. Without
// empty bins the bins sample the union without replacement, so the
// variance is at most classic MinHash's J(1-J)/k (smaller by about the
// factor (D-k)/(D-1) for a union of D shingles); densification adds a
// little for very short keys. The package used to compute classic MinHash
// (128 multiply-shift permutations per shingle, about 20 times slower);
// signatures from the two methods are not comparable, nor are signatures
// from Hashers with different Seed, Shingle or Perms.
//
// The Index keeps each signature (4 bytes per permutation) and one uint64
// bucket key per band; candidate pairs are documents that share a bucket in
// at least one band. With b bands of r rows a pair of Jaccard similarity s
// becomes a candidate with probability 1-(1-s^r)^b: for 16×8 that is 0.948
// at s = 0.8, 0.994 at 0.85 and 0.06 at 0.5. Candidates are confirmed by the
// caller's function (estimated Jaccard from the signatures, or exact
// Jaccard when the texts are at hand) before they are joined.
package dedup
