package bpe

import (
	"container/heap"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrTokenID is returned (wrapped) by Decode for an id that names no token.
var ErrTokenID = errors.New("bpe: unknown token id")

// ErrInvalid is returned (wrapped) by Load, Train and other calls given an
// input they cannot accept; the message names the thing and the limit.
var ErrInvalid = errors.New("bpe: invalid input")

// Tokenizer is a trained byte-level BPE codec. It is immutable and safe for
// concurrent use.
type Tokenizer struct {
	tokens []token            // by id; absent ids have kind tokAbsent
	vocab  map[string]uint32  // raw bytes of ordinary tokens → id
	byteID [256]uint32        // single-byte tokens
	ranks  map[uint64]mergeTo // (left,right) → rank and result
	merges [][2]uint32        // in rank order

	added       []addedToken // in id order
	addedByByte [256][]int   // indices into added, longest content first

	chunk        int  // Han chunk length; 0 = plain GPT-2 pre-tokenization
	ignoreMerges bool // HF ignore_merges: a whole pre-token in the vocab is one token
	preTokRaw    []byte

	cache mergeCache
}

type tokKind uint8

const (
	tokAbsent tokKind = iota
	tokNormal
	tokAdded
)

type token struct {
	b    string
	kind tokKind
}

type addedToken struct {
	content string
	id      uint32
	special bool
}

type mergeTo struct {
	rank int32
	id   uint32
}

func pairKey(a, b uint32) uint64 { return uint64(a)<<32 | uint64(b) }

// VocabSize is one more than the largest token id.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// TokenID returns the id of the token whose text is s: an added or special
// token's content, or an ordinary token's raw bytes (" the", not "Ġthe").
func (t *Tokenizer) TokenID(s string) (uint32, bool) {
	for _, a := range t.added {
		if a.content == s {
			return a.id, true
		}
	}
	id, ok := t.vocab[s]
	return id, ok
}

// SpecialTokens returns the special tokens' contents in id order.
func (t *Tokenizer) SpecialTokens() []string {
	var out []string
	for _, a := range t.added {
		if a.special {
			out = append(out, a.content)
		}
	}
	return out
}

// Decode returns the text of ids. An id that names no token is an error
// wrapping ErrTokenID.
func (t *Tokenizer) Decode(ids []uint32) (string, error) {
	n := 0
	for _, id := range ids {
		if int(id) >= len(t.tokens) || t.tokens[id].kind == tokAbsent {
			return "", fmt.Errorf("%w: id %d is not in the vocabulary (size %d)", ErrTokenID, id, len(t.tokens))
		}
		n += len(t.tokens[id].b)
	}
	buf := make([]byte, 0, n)
	for _, id := range ids {
		buf = append(buf, t.tokens[id].b...)
	}
	return string(buf), nil
}

// Encode returns the token ids of text. Added and special tokens that occur
// in text are emitted as their own ids; the rest is pre-tokenized and merged.
func (t *Tokenizer) Encode(text string) []uint32 {
	out := make([]uint32, 0, len(text)/3+1)
	return t.appendEncode(out, text)
}

func (t *Tokenizer) appendEncode(out []uint32, text string) []uint32 {
	if len(t.added) == 0 {
		return t.appendPlain(out, text)
	}
	seg := 0
	for i := 0; i < len(text); {
		if idx := t.addedByByte[text[i]]; idx != nil {
			if a, ok := t.matchAdded(text[i:], idx); ok {
				out = t.appendPlain(out, text[seg:i])
				out = append(out, a.id)
				i += len(a.content)
				seg = i
				continue
			}
		}
		i++
	}
	return t.appendPlain(out, text[seg:])
}

func (t *Tokenizer) matchAdded(s string, idx []int) (addedToken, bool) {
	for _, k := range idx {
		a := t.added[k]
		if len(s) >= len(a.content) && s[:len(a.content)] == a.content {
			return a, true
		}
	}
	return addedToken{}, false
}

func (t *Tokenizer) appendPlain(out []uint32, text string) []uint32 {
	preTokenize(text, t.chunk, func(w string) {
		out = t.appendWord(out, w)
	})
	return out
}

// maxCachedWord is the longest pre-token whose encoding is cached.
const maxCachedWord = 64

func (t *Tokenizer) appendWord(out []uint32, w string) []uint32 {
	if len(w) == 1 {
		return append(out, t.byteID[w[0]])
	}
	if t.ignoreMerges {
		if id, ok := t.vocab[w]; ok {
			return append(out, id)
		}
	}
	if len(w) <= maxCachedWord {
		if ids, ok := t.cache.get(w); ok {
			return append(out, ids...)
		}
	}
	var ids []uint32
	if len(w) <= 48 {
		ids = t.mergeSmall(w)
	} else {
		ids = t.mergeHeap(w)
	}
	if len(w) <= maxCachedWord {
		t.cache.put(w, ids)
	}
	return append(out, ids...)
}

// mergeSmall applies merges to one pre-token: repeatedly merge the adjacent
// pair with the lowest rank, leftmost first. Quadratic, for short words.
func (t *Tokenizer) mergeSmall(w string) []uint32 {
	syms := make([]uint32, len(w))
	for i := 0; i < len(w); i++ {
		syms[i] = t.byteID[w[i]]
	}
	for len(syms) > 1 {
		best, bestRank := -1, int32(0)
		var bestID uint32
		for i := 0; i+1 < len(syms); i++ {
			if m, ok := t.ranks[pairKey(syms[i], syms[i+1])]; ok && (best < 0 || m.rank < bestRank) {
				best, bestRank, bestID = i, m.rank, m.id
			}
		}
		if best < 0 {
			break
		}
		syms[best] = bestID
		syms = append(syms[:best+1], syms[best+2:]...)
	}
	return syms
}

// mergeHeap is mergeSmall in O(n log n): a linked list of symbols and a heap
// of candidate merges ordered by (rank, position), with stale entries
// skipped when popped.
func (t *Tokenizer) mergeHeap(w string) []uint32 {
	n := len(w)
	sym := make([]uint32, n)
	prev := make([]int32, n)
	next := make([]int32, n)
	for i := 0; i < n; i++ {
		sym[i] = t.byteID[w[i]]
		prev[i] = int32(i - 1)
		next[i] = int32(i + 1)
	}
	next[n-1] = -1
	h := &candHeap{}
	push := func(i int32) {
		if i < 0 || next[i] < 0 {
			return
		}
		if m, ok := t.ranks[pairKey(sym[i], sym[next[i]])]; ok {
			heap.Push(h, cand{rank: m.rank, pos: i})
		}
	}
	for i := 0; i+1 < n; i++ {
		push(int32(i))
	}
	for h.Len() > 0 {
		c := heap.Pop(h).(cand)
		i := c.pos
		if sym[i] == deadSym || next[i] < 0 {
			continue
		}
		m, ok := t.ranks[pairKey(sym[i], sym[next[i]])]
		if !ok || m.rank != c.rank {
			continue
		}
		j := next[i]
		sym[i] = m.id
		sym[j] = deadSym
		next[i] = next[j]
		if next[j] >= 0 {
			prev[next[j]] = i
		}
		push(prev[i])
		push(i)
	}
	out := make([]uint32, 0, n/2+1)
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, sym[i])
	}
	return out
}

const deadSym = ^uint32(0)

type cand struct {
	rank int32
	pos  int32
}

type candHeap []cand

func (h candHeap) Len() int { return len(h) }
func (h candHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].pos < h[j].pos
}
func (h candHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *candHeap) Push(x any)   { *h = append(*h, x.(cand)) }
func (h *candHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// EncodeBatch encodes texts in parallel across GOMAXPROCS goroutines; the
// result is in the order of texts.
func (t *Tokenizer) EncodeBatch(texts []string) [][]uint32 {
	out := make([][]uint32, len(texts))
	workers := min(runtime.GOMAXPROCS(0), len(texts))
	if workers <= 1 {
		for i, s := range texts {
			out[i] = t.Encode(s)
		}
		return out
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(texts) {
					return
				}
				out[i] = t.Encode(texts[i])
			}
		})
	}
	wg.Wait()
	return out
}

// mergeCache maps pre-tokens to their ids. It is sharded, each shard
// guarded by a read-write mutex and emptied when it reaches its capacity,
// so memory stays bounded however much distinct text is encoded.
type mergeCache struct {
	seed   maphash.Seed
	once   sync.Once
	shards [cacheShards]cacheShard
}

const (
	cacheShards   = 64
	cacheShardCap = 4096
)

type cacheShard struct {
	mu sync.RWMutex
	m  map[string][]uint32
	_  [32]byte // keep shards' mutexes on separate cache lines
}

func (c *mergeCache) shard(w string) *cacheShard {
	c.once.Do(func() { c.seed = maphash.MakeSeed() })
	return &c.shards[maphash.String(c.seed, w)%cacheShards]
}

func (c *mergeCache) get(w string) ([]uint32, bool) {
	s := c.shard(w)
	s.mu.RLock()
	ids, ok := s.m[w]
	s.mu.RUnlock()
	return ids, ok
}

func (c *mergeCache) put(w string, ids []uint32) {
	s := c.shard(w)
	w = strings.Clone(w) // do not pin the caller's text
	s.mu.Lock()
	if s.m == nil || len(s.m) >= cacheShardCap {
		s.m = make(map[string][]uint32, 256)
	}
	s.m[w] = ids
	s.mu.Unlock()
}

// index fills the derived lookup tables from tokens, merges and added.
func (t *Tokenizer) index() {
	t.vocab = make(map[string]uint32, len(t.tokens))
	for id, tk := range t.tokens {
		if tk.kind == tokNormal {
			if _, dup := t.vocab[tk.b]; !dup {
				t.vocab[tk.b] = uint32(id)
			}
			if len(tk.b) == 1 {
				t.byteID[tk.b[0]] = uint32(id)
			}
		}
	}
	t.ranks = make(map[uint64]mergeTo, len(t.merges))
	for r, m := range t.merges {
		k := pairKey(m[0], m[1])
		if _, dup := t.ranks[k]; dup {
			continue
		}
		t.ranks[k] = mergeTo{rank: int32(r), id: t.vocab[t.tokens[m[0]].b+t.tokens[m[1]].b]}
	}
	t.addedByByte = [256][]int{}
	order := make([]int, len(t.added))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return len(t.added[order[a]].content) > len(t.added[order[b]].content)
	})
	for _, k := range order {
		c := t.added[k].content
		t.addedByByte[c[0]] = append(t.addedByByte[c[0]], k)
	}
}
