package transformer

import (
	"errors"
	"fmt"
)

// KVBlockTokens is how many token positions one KV-cache block holds.
const KVBlockTokens = 16

// ErrKVCacheFull is wrapped by the error of a decode step that needs more
// KV-cache blocks than the budget has free. Nothing changed: the caller may
// release sequences and retry.
var ErrKVCacheFull = errors.New("transformer: kv cache full")

// KVStats describes a KV cache's memory.
type KVStats struct {
	BlockTokens int // positions per block (KVBlockTokens)
	BlockBytes  int // bytes of K and V per block, all layers
	Budget      int // the most blocks the cache may hold
	Allocated   int // blocks whose memory exists (grows to Budget, never shrinks)
	Used        int // blocks referenced by at least one sequence
	Cached      int // unreferenced blocks kept for prefix reuse (evicted first-in first-out when memory is needed)
	Sequences   int
}

// kvCache is a paged KV cache: fixed-size blocks of KVBlockTokens
// positions × n_layer × (K, V) × n_embd, a free list, a block table per
// sequence and a memory budget in blocks. Full blocks are registered under
// a hash of their token prefix (the chain of the block's tokens and its
// parent's hash) so that a new sequence with the same prompt prefix shares
// them, reference-counted. Shared blocks are full and never written again,
// so no copy-on-write is needed. A block whose last reference goes away
// stays registered (and readable) in a first-in first-out queue until its
// memory is needed.
//
// Block data is laid out [layer][K|V][head][...]: one head's keys or values
// in a block are contiguous. Values are [slot][head_dim] (the softmax
// weights sum rows of them); keys are dimension-major, [head_dim][slot], so
// that a query's scores against a block are head_dim broadcast
// multiply-adds into a vector of KVBlockTokens lanes, with no horizontal
// sums (DotCols).
type kvCache struct {
	layers, heads, hd int
	blockFloats       int
	budget            int

	data   [][]float32 // per block
	ref    []int32
	hashed []bool    // registered in prefix
	hash   []uint64  // chain hash of the block (valid when hashed)
	parent []uint64  // chain hash of the block before it
	toks   [][]int32 // the block's tokens (valid when hashed)
	// Unreferenced registered blocks form a doubly linked FIFO.
	prev, next []int32
	head, tail int32
	nCached    int

	free   []int32
	prefix map[uint64]int32
	seqs   map[uint64]*kvSeq
	spare  []*kvSeq // recycled sequence records
}

// kvSeq is one cached sequence.
type kvSeq struct {
	n     int     // positions cached
	table []int32 // block per KVBlockTokens positions; -1 once dropped
	// chain is the hash of the full blocks so far; tail holds the tokens
	// of the partial last block.
	chain uint64
	tail  [KVBlockTokens]int32
	// exact is false once a token's K/V came from an early exit: its
	// blocks are then not registered for reuse.
	exact bool
	// dropped counts leading blocks examined for sliding-window dropping.
	dropped int
	step    uint64 // last step that touched it (duplicate detection)
}

const noBlock = -1

func newKVCache(layers, heads, hd, budget int) *kvCache {
	return &kvCache{
		layers: layers, heads: heads, hd: hd,
		blockFloats: layers * 2 * heads * KVBlockTokens * hd,
		budget:      budget,
		head:        noBlock, tail: noBlock,
		prefix: map[uint64]int32{},
		seqs:   map[uint64]*kvSeq{},
	}
}

func (c *kvCache) stats() KVStats {
	used := 0
	for _, r := range c.ref {
		if r > 0 {
			used++
		}
	}
	return KVStats{
		BlockTokens: KVBlockTokens, BlockBytes: 4 * c.blockFloats, Budget: c.budget,
		Allocated: len(c.data), Used: used, Cached: c.nCached, Sequences: len(c.seqs),
	}
}

// available is how many blocks an allocation can still obtain.
func (c *kvCache) available() int {
	return len(c.free) + c.nCached + (c.budget - len(c.data))
}

// alloc returns a block for exclusive writing: from the free list, fresh
// memory under the budget, or the oldest cached block (unregistering it).
// The caller has checked available.
func (c *kvCache) alloc() int32 {
	var b int32
	switch {
	case len(c.free) > 0:
		b = c.free[len(c.free)-1]
		c.free = c.free[:len(c.free)-1]
	case len(c.data) < c.budget:
		b = int32(len(c.data))
		c.data = append(c.data, make([]float32, c.blockFloats))
		c.ref = append(c.ref, 0)
		c.hashed = append(c.hashed, false)
		c.hash = append(c.hash, 0)
		c.parent = append(c.parent, 0)
		c.toks = append(c.toks, nil)
		c.prev = append(c.prev, noBlock)
		c.next = append(c.next, noBlock)
	case c.head != noBlock:
		b = c.head
		c.unlink(b)
		c.unregister(b)
	default:
		panic("transformer: kv cache alloc without an available block")
	}
	c.ref[b] = 1
	return b
}

// retain takes one more reference to b (a registered block found by prefix).
func (c *kvCache) retain(b int32) {
	if c.ref[b] == 0 {
		c.unlink(b)
	}
	c.ref[b]++
}

// drop gives up one reference to b.
func (c *kvCache) drop(b int32) {
	c.ref[b]--
	if c.ref[b] > 0 {
		return
	}
	if c.hashed[b] {
		// Keep it for reuse, newest at the tail.
		c.prev[b], c.next[b] = c.tail, noBlock
		if c.tail != noBlock {
			c.next[c.tail] = b
		} else {
			c.head = b
		}
		c.tail = b
		c.nCached++
		return
	}
	c.free = append(c.free, b)
}

func (c *kvCache) unlink(b int32) {
	p, n := c.prev[b], c.next[b]
	if p != noBlock {
		c.next[p] = n
	} else {
		c.head = n
	}
	if n != noBlock {
		c.prev[n] = p
	} else {
		c.tail = p
	}
	c.prev[b], c.next[b] = noBlock, noBlock
	c.nCached--
}

func (c *kvCache) unregister(b int32) {
	if c.hashed[b] {
		if c.prefix[c.hash[b]] == b {
			delete(c.prefix, c.hash[b])
		}
		c.hashed[b] = false
	}
}

// register records full block b, holding toks after the prefix with hash
// parent, for reuse. An equal block already registered wins.
func (c *kvCache) register(b int32, parent, h uint64, toks []int32) {
	if _, ok := c.prefix[h]; ok || c.hashed[b] {
		return
	}
	c.prefix[h] = b
	c.hashed[b] = true
	c.hash[b], c.parent[b] = h, parent
	if c.toks[b] == nil {
		c.toks[b] = make([]int32, KVBlockTokens)
	}
	copy(c.toks[b], toks)
}

// lookup finds the registered block holding toks after the prefix with
// hash parent; it returns the block and the chain hash through it.
func (c *kvCache) lookup(parent uint64, toks []int32) (int32, uint64, bool) {
	h := chainHash(parent, toks)
	b, ok := c.prefix[h]
	if !ok || c.parent[b] != parent {
		return 0, h, false
	}
	for i, t := range c.toks[b] {
		if toks[i] != t {
			return 0, h, false
		}
	}
	return b, h, true
}

// chainHash mixes a block's tokens into its parent's hash (FNV-1a over the
// token bytes, then a final avalanche).
func chainHash(parent uint64, toks []int32) uint64 {
	h := parent ^ 0xcbf29ce484222325
	for _, t := range toks {
		u := uint32(t)
		for range 4 {
			h ^= uint64(u & 0xff)
			h *= 0x100000001b3
			u >>= 8
		}
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}

// release frees the sequence id; an unknown id is ignored.
func (c *kvCache) release(id uint64) {
	s, ok := c.seqs[id]
	if !ok {
		return
	}
	for _, b := range s.table {
		if b != noBlock {
			c.drop(b)
		}
	}
	delete(c.seqs, id)
	s.table = s.table[:0]
	c.spare = append(c.spare, s)
}

// reset releases every sequence and forgets every registered block.
func (c *kvCache) reset() {
	for id := range c.seqs {
		c.release(id)
	}
	for c.head != noBlock {
		b := c.head
		c.unlink(b)
		c.unregister(b)
		c.free = append(c.free, b)
	}
}

func (c *kvCache) newSeq() *kvSeq {
	var s *kvSeq
	if n := len(c.spare); n > 0 {
		s = c.spare[n-1]
		c.spare = c.spare[:n-1]
		t := s.table[:0]
		*s = kvSeq{table: t}
	} else {
		s = &kvSeq{}
	}
	s.exact = true
	return s
}

// block returns the storage of the block holding position pos of s.
func (c *kvCache) block(s *kvSeq, pos int) []float32 {
	return c.data[s.table[pos/KVBlockTokens]]
}

// kOffset is where head h's keys of a layer start within a block: the
// key of slot s has its element i at kOffset + i·KVBlockTokens + s.
func (c *kvCache) kOffset(layer, h int) int {
	return ((layer*2)*c.heads + h) * KVBlockTokens * c.hd
}

// vOffset is where head h's values of a layer start within a block: the
// value of slot s is the head_dim elements from vOffset + s·head_dim.
func (c *kvCache) vOffset(layer, h int) int {
	return ((layer*2+1)*c.heads + h) * KVBlockTokens * c.hd
}

// kvHeadFloats is the size of one head's keys (or values) in a block.
func (c *kvCache) kvHeadFloats() int { return KVBlockTokens * c.hd }

// grow appends blocks to s so that it can hold n positions. The caller
// has checked available.
func (c *kvCache) grow(s *kvSeq, n int) {
	for len(s.table)*KVBlockTokens < n {
		s.table = append(s.table, c.alloc())
	}
}

// commit records that s now holds positions up to n, with toks the tokens
// at positions [from, n); full blocks are registered for reuse.
func (c *kvCache) commit(s *kvSeq, from int, toks []int32) {
	for i, t := range toks {
		p := from + i
		s.tail[p%KVBlockTokens] = t
		if p%KVBlockTokens == KVBlockTokens-1 {
			parent := s.chain
			s.chain = chainHash(parent, s.tail[:])
			if s.exact {
				if b := s.table[p/KVBlockTokens]; b != noBlock {
					c.register(b, parent, s.chain, s.tail[:])
				}
			}
		}
	}
	s.n = from + len(toks)
}

// dropInvisible frees the blocks of s that no later query can see under a
// sliding window of w positions with the first g positions global.
func (c *kvCache) dropInvisible(s *kvSeq, w, g int) {
	if w <= 0 {
		return
	}
	for ; s.dropped < len(s.table); s.dropped++ {
		b := s.dropped
		// The next query is at position s.n and sees keys > s.n-w.
		if (b+1)*KVBlockTokens > s.n-w+1 {
			return
		}
		if b*KVBlockTokens < g {
			continue // holds a global position
		}
		if s.table[b] != noBlock {
			c.drop(s.table[b])
			s.table[b] = noBlock
		}
	}
}

func (c *kvCache) fullError(need int) error {
	return fmt.Errorf("%w: the step needs %d more blocks of %d positions, %d of the budget of %d blocks (%d bytes each) are available; release sequences or raise the budget",
		ErrKVCacheFull, need, KVBlockTokens, c.available(), c.budget, 4*c.blockFloats)
}
