package dedup

import (
	"cmp"
	"fmt"
	"slices"
)

// Index is an LSH index over MinHash signatures. It stores, per document,
// its id, its signature (4 bytes per permutation) and one uint64 bucket key
// per band; nothing else grows with the corpus. An Index is not safe for
// concurrent use.
type Index struct {
	cfg  Config
	ids  []int
	pos  map[int]int32 // id → position
	sigs []uint32      // position*Perms...
	keys []uint64      // position*Bands + band
}

// NewIndex validates cfg and returns an empty index.
func NewIndex(cfg Config) (*Index, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Index{cfg: cfg.withDefaults(), pos: map[int]int32{}}, nil
}

// Len is the number of documents added.
func (ix *Index) Len() int { return len(ix.ids) }

// Add indexes the signature of document id; the index copies sig. It fails
// when sig is not Perms long or id was added before.
func (ix *Index) Add(id int, sig []uint32) error {
	if len(sig) != ix.cfg.Perms {
		return fmt.Errorf("dedup: signature of document %d has %d slots, want %d", id, len(sig), ix.cfg.Perms)
	}
	if _, dup := ix.pos[id]; dup {
		return fmt.Errorf("dedup: document %d added twice", id)
	}
	ix.pos[id] = int32(len(ix.ids))
	ix.ids = append(ix.ids, id)
	ix.sigs = append(ix.sigs, sig...)
	r := ix.cfg.Rows
	for b := range ix.cfg.Bands {
		ix.keys = append(ix.keys, bandKey(b, sig[b*r:(b+1)*r]))
	}
	return nil
}

// bandKey hashes one band's rows, salted with the band number.
func bandKey(band int, rows []uint32) uint64 {
	h := uint64(band+1) * 0x9E3779B97F4A7C15
	for _, v := range rows {
		h = (h ^ uint64(v)) * 0x100000001b3
		h ^= h >> 29
	}
	return mix64(h)
}

// Signature returns the stored signature of id (shared with the index; do
// not modify) or nil when id was not added.
func (ix *Index) Signature(id int) []uint32 {
	p, ok := ix.pos[id]
	if !ok {
		return nil
	}
	n := ix.cfg.Perms
	return ix.sigs[int(p)*n : (int(p)+1)*n : (int(p)+1)*n]
}

// Estimate is the estimated Jaccard similarity of two added documents
// (0 when either is unknown).
func (ix *Index) Estimate(a, b int) float64 {
	return EstimateJaccard(ix.Signature(a), ix.Signature(b))
}

// ConfirmEstimated returns a confirmation for Clusters that accepts a pair
// whose estimated Jaccard is at least the configured Threshold, or nil
// (accept every candidate) when Threshold is 0.
func (ix *Index) ConfirmEstimated() func(a, b int) bool {
	t := ix.cfg.Threshold
	if t == 0 {
		return nil
	}
	return func(a, b int) bool { return ix.Estimate(a, b) >= t }
}

// Clusters groups the documents into near-duplicate clusters: candidate
// pairs (documents that share a bucket in some band), each accepted by
// confirm (every candidate when confirm is nil), joined transitively with
// union-find. It returns only clusters of two or more ids, each sorted
// ascending, ordered by their first id. confirm is never asked about a pair
// already in one cluster, nor twice about the same pair.
func (ix *Index) Clusters(confirm func(a, b int) bool) [][]int {
	n := len(ix.ids)
	uf := newUnionFind(n)
	rejected := map[[2]int32]struct{}{}
	type entry struct {
		key uint64
		pos int32
	}
	bucket := make([]entry, n)
	nb := ix.cfg.Bands
	for b := range nb {
		for p := range n {
			bucket[p] = entry{ix.keys[p*nb+b], int32(p)}
		}
		slices.SortFunc(bucket, func(x, y entry) int {
			if c := cmp.Compare(x.key, y.key); c != 0 {
				return c
			}
			return cmp.Compare(x.pos, y.pos)
		})
		for lo := 0; lo < n; {
			hi := lo + 1
			for hi < n && bucket[hi].key == bucket[lo].key {
				hi++
			}
			for i := lo; i < hi; i++ {
				for j := i + 1; j < hi; j++ {
					p, q := bucket[i].pos, bucket[j].pos
					if uf.find(p) == uf.find(q) {
						continue
					}
					if confirm != nil {
						pair := [2]int32{p, q}
						if _, no := rejected[pair]; no {
							continue
						}
						if !confirm(ix.ids[p], ix.ids[q]) {
							rejected[pair] = struct{}{}
							continue
						}
					}
					uf.union(p, q)
				}
			}
			lo = hi
		}
	}
	groups := map[int32][]int{}
	for p := range n {
		root := uf.find(int32(p))
		groups[root] = append(groups[root], ix.ids[p])
	}
	var out [][]int
	for _, g := range groups {
		if len(g) > 1 {
			slices.Sort(g)
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b []int) int { return cmp.Compare(a[0], b[0]) })
	return out
}

// unionFind is a disjoint-set forest with path halving and union by size.
type unionFind struct {
	parent []int32
	size   []int32
}

func newUnionFind(n int) *unionFind {
	u := &unionFind{parent: make([]int32, n), size: make([]int32, n)}
	for i := range u.parent {
		u.parent[i] = int32(i)
		u.size[i] = 1
	}
	return u
}

func (u *unionFind) find(x int32) int32 {
	for u.parent[x] != x {
		u.parent[x] = u.parent[u.parent[x]]
		x = u.parent[x]
	}
	return x
}

func (u *unionFind) union(a, b int32) {
	a, b = u.find(a), u.find(b)
	if a == b {
		return
	}
	if u.size[a] < u.size[b] {
		a, b = b, a
	}
	u.parent[b] = a
	u.size[a] += u.size[b]
}
