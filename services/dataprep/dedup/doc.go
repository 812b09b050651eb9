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
// Signatures: each shingle is hashed once (a rolling polynomial hash over
// its code points, finished with a 64-bit mixer); permutation i is the
// multiply-shift hash (a_i*x + b_i) >> 32 with random odd a_i drawn from
// Config.Seed, and slot i keeps the minimum. Signatures from Hashers with
// different Seed, Shingle or Perms are not comparable.
//
// The Index keeps each signature (4 bytes per permutation) and one uint64
// bucket key per band; candidate pairs are documents that share a bucket in
// at least one band. With b bands of r rows a pair of Jaccard similarity s
// becomes a candidate with probability 1-(1-s^r)^b: for 16×8 that is 0.948
// at s = 0.8, 0.994 at 0.85 and 0.06 at 0.5. Candidates are confirmed by the
// caller's function (estimated Jaccard from the signatures, or exact
// Jaccard when the texts are at hand) before they are joined.
package dedup
