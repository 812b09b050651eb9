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
	tokens []token           // by id; absent ids have kind tokAbsent
	vocab  map[string]uint32 // raw bytes of ordinary tokens → id
	byteID [256]uint32       // single-byte tokens
	merges [][2]uint32       // in rank order; nil in rank mode

	pairs    pairTable       // (left,right) → rank of their merge
	rankID   []uint32        // merges mode: rank → id of the merge's result
	bytePair *[1 << 16]int32 // bytes (b0<<8|b1) → pairs' rank for their tokens

	// rankMode is tiktoken's merge rule: any two adjacent parts whose
	// concatenation is a token may merge, the lowest-ranked concatenation
	// (token id) first; pairs then holds every split of every token.
	rankMode bool
	pre      preKind // which regular expression pre-tokenizes
	maxLen   int     // longest ordinary token, in bytes

	added       []addedToken // in id order
	addedByByte [256][]int   // indices into added, longest content first

	chunk        int  // Han chunk length with preGPT2; 0 = plain GPT-2
	ignoreMerges bool // HF ignore_merges: a whole pre-token in the vocab is one token
	preTokRaw    []byte

	cache mergeCache
}

// preKind names a pre-tokenizer.
type preKind uint8

const (
	preGPT2   preKind = iota // GPT2Pattern, with Han chunking if chunk > 0
	preCl100k                // Cl100kPattern
)

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

// mergeResult returns the id of the token that the merge of the given
// rank makes.
func (t *Tokenizer) mergeResult(rank int32) uint32 {
	if t.rankMode {
		return uint32(rank)
	}
	return t.rankID[rank]
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
	if t.pre == preCl100k {
		for i := 0; i < len(text); {
			j := nextCl100k(text, i)
			out = t.appendWord(out, text[i:j])
			i = j
		}
		return out
	}
	preTokenize(text, t.chunk, func(w string) {
		out = t.appendWord(out, w)
	})
	return out
}

// maxCachedWord is the longest pre-token whose encoding is cached.
const maxCachedWord = 64

// maxLinearWord is the longest pre-token merged by the linear-scan merge;
// longer ones use the heap.
const maxLinearWord = 256

func (t *Tokenizer) appendWord(out []uint32, w string) []uint32 {
	if len(w) == 1 {
		return append(out, t.byteID[w[0]])
	}
	if t.ignoreMerges && len(w) <= t.maxLen {
		if id, ok := t.vocab[w]; ok {
			return append(out, id)
		}
	}
	if len(w) > maxCachedWord {
		if len(w) <= maxLinearWord {
			return t.mergeTree(out, w)
		}
		return append(out, t.mergeHeap(w)...)
	}
	if ids, ok := t.cache.get(w); ok {
		return append(out, ids...)
	}
	n := len(out)
	if len(w) <= maxScanWord {
		out = t.mergeLinear(out, w)
	} else {
		out = t.mergeTree(out, w)
	}
	t.cache.put(w, append([]uint32(nil), out[n:]...))
	return out
}

// maxScanWord is the longest pre-token merged by scanning for the best
// pair; longer ones keep the best pair in a tournament tree.
const maxScanWord = 24

// mergeTree is mergeLinear with the parts in a linked list and the best
// pair found by a tournament tree over pair positions (each node the
// better of its children, lower rank then leftmost), so a merge costs
// O(log n) instead of a scan and a shift.
func (t *Tokenizer) mergeTree(out []uint32, w string) []uint32 {
	n := len(w)
	m := 1
	for m < n {
		m *= 2
	}
	var idBuf, nextBuf, prevBuf [maxLinearWord]int32
	var rkBuf, treeBuf [maxLinearWord]int32
	if m > maxLinearWord {
		return append(out, t.mergeHeap(w)...)
	}
	ids, next, prev, rk, tree := idBuf[:n], nextBuf[:n], prevBuf[:n], rkBuf[:m], treeBuf[:m]
	for i := 0; i < n; i++ {
		ids[i] = int32(t.byteID[w[i]])
		next[i] = int32(i + 1)
		prev[i] = int32(i - 1)
	}
	bp := t.bytePair
	for i := 0; i+1 < n; i++ {
		rk[i] = bp[uint16(w[i])<<8|uint16(w[i+1])]
	}
	for i := n - 1; i < m; i++ {
		rk[i] = noRank
	}
	better := func(a, b int32) int32 {
		if rk[b] < rk[a] {
			return b
		}
		return a
	}
	// tree[k] for k in [1, m): the best position under node k, whose
	// children are 2k and 2k+1; nodes at or past m are positions k-m.
	child := func(k int) int32 {
		if k >= m {
			return int32(k - m)
		}
		return tree[k]
	}
	for k := m - 1; k >= 1; k-- {
		tree[k] = better(child(2*k), child(2*k+1))
	}
	update := func(pos int32) {
		for k := (int(pos) + m) / 2; k >= 1; k /= 2 {
			tree[k] = better(child(2*k), child(2*k+1))
		}
	}
	for {
		i := tree[1]
		r := rk[i]
		if r == noRank {
			break
		}
		j := next[i]
		ids[i] = int32(t.mergeResult(r))
		rk[j] = noRank
		update(j)
		next[i] = next[j]
		if next[i] < int32(n) {
			prev[next[i]] = i
			rk[i] = t.pairs.lookup(uint32(ids[i]), uint32(ids[next[i]]))
		} else {
			rk[i] = noRank
		}
		update(i)
		if p := prev[i]; p >= 0 {
			rk[p] = t.pairs.lookup(uint32(ids[p]), uint32(ids[i]))
			update(p)
		}
	}
	for i := int32(0); i < int32(n); i = next[i] {
		out = append(out, uint32(ids[i]))
	}
	return out
}

// noRank marks a pair that does not merge.
const noRank = int32(1<<31 - 1)

// mergeLinear appends the merge of one pre-token to out: repeatedly merge
// the adjacent pair with the lowest rank, leftmost first. Each part keeps
// the rank of the pair it starts, so a merge costs two lookups and a scan;
// this is tiktoken's byte_pair_merge, on token ids instead of byte strings.
func (t *Tokenizer) mergeLinear(out []uint32, w string) []uint32 {
	var idBuf [maxCachedWord]uint32
	var rkBuf [maxCachedWord]int32
	ids, rk := idBuf[:0], rkBuf[:0]
	if len(w) > maxCachedWord {
		ids, rk = make([]uint32, 0, len(w)), make([]int32, 0, len(w))
	}
	for i := 0; i < len(w); i++ {
		ids = append(ids, t.byteID[w[i]])
	}
	bp := t.bytePair
	for i := 0; i+1 < len(w); i++ {
		rk = append(rk, bp[uint16(w[i])<<8|uint16(w[i+1])])
	}
	for len(rk) > 0 {
		best, br := -1, noRank
		for i, r := range rk {
			if r < br {
				best, br = i, r
			}
		}
		if best < 0 {
			break
		}
		ids[best] = t.mergeResult(br)
		ids = append(ids[:best+1], ids[best+2:]...)
		rk = append(rk[:best], rk[best+1:]...)
		if best < len(rk) {
			rk[best] = t.pairs.lookup(ids[best], ids[best+1])
		}
		if best > 0 {
			rk[best-1] = t.pairs.lookup(ids[best-1], ids[best])
		}
	}
	return append(out, ids...)
}

// mergeSmall is mergeLinear into a new slice.
func (t *Tokenizer) mergeSmall(w string) []uint32 { return t.mergeLinear(nil, w) }

// mergeHeap is mergeLinear in O(n log n): a linked list of symbols and a
// heap of candidate merges ordered by (rank, position), with stale entries
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
		if r := t.pairs.lookup(sym[i], sym[next[i]]); r != noRank {
			heap.Push(h, cand{rank: r, pos: i})
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
		if t.pairs.lookup(sym[i], sym[next[i]]) != c.rank {
			continue
		}
		j := next[i]
		sym[i] = t.mergeResult(c.rank)
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
// result is in the order of texts. Texts over batchPartBytes are encoded in
// parts, cut where no pre-token or added token can span the cut, so one
// large text also spreads across cores.
func (t *Tokenizer) EncodeBatch(texts []string) [][]uint32 {
	out := make([][]uint32, len(texts))
	workers := runtime.GOMAXPROCS(0)
	type part struct {
		text int
		s    string
	}
	var parts []part
	for i, s := range texts {
		for workers > 1 && len(s) > batchPartBytes && t.cuttable() {
			cut := batchCut(s, batchPartBytes)
			if cut < 0 {
				break
			}
			parts = append(parts, part{i, s[:cut]})
			s = s[cut:]
		}
		parts = append(parts, part{i, s})
	}
	workers = min(workers, len(parts))
	ids := make([][]uint32, len(parts))
	if workers <= 1 {
		for i, p := range parts {
			ids[i] = t.Encode(p.s)
		}
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= len(parts) {
						return
					}
					ids[i] = t.Encode(parts[i].s)
				}
			})
		}
		wg.Wait()
	}
	if len(parts) == len(texts) {
		return ids
	}
	for i, p := range parts {
		out[p.text] = append(out[p.text], ids[i]...)
	}
	for i := range out {
		if out[i] == nil {
			out[i] = []uint32{}
		}
	}
	return out
}

// batchPartBytes is the size above which EncodeBatch cuts a text into
// parts.
const batchPartBytes = 64 << 10

// cuttable reports whether texts may be cut after a newline that precedes
// an ASCII letter or digit: no added token holds a newline. Every
// pre-tokenizer ends a pre-token there (a newline joins only whitespace
// and, in cl100k, punctuation before it).
func (t *Tokenizer) cuttable() bool {
	for _, a := range t.added {
		if strings.IndexByte(a.content, '\n') >= 0 {
			return false
		}
	}
	return true
}

// batchCut returns a cut at or after from in s, just after a '\n' followed
// by an ASCII letter or digit, or -1 if there is none.
func batchCut(s string, from int) int {
	for i := from; i+1 < len(s); {
		j := strings.IndexByte(s[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(s) {
			if c := s[i]; c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'z' {
				return i
			}
		}
	}
	return -1
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

// index fills the derived lookup tables from tokens, merges (or, in rank
// mode, the tokens themselves) and added.
func (t *Tokenizer) index() {
	t.vocab = make(map[string]uint32, len(t.tokens))
	t.maxLen = 0
	for id, tk := range t.tokens {
		if tk.kind == tokNormal {
			if _, dup := t.vocab[tk.b]; !dup {
				t.vocab[tk.b] = uint32(id)
			}
			if len(tk.b) == 1 {
				t.byteID[tk.b[0]] = uint32(id)
			}
			t.maxLen = max(t.maxLen, len(tk.b))
		}
	}
	if t.rankMode {
		t.indexRanks()
	} else {
		t.pairs = newPairTable(len(t.merges))
		t.rankID = make([]uint32, len(t.merges))
		for r, m := range t.merges {
			t.pairs.add(m[0], m[1], int32(r))
			t.rankID[r] = t.vocab[t.tokens[m[0]].b+t.tokens[m[1]].b]
		}
	}
	t.bytePair = new([1 << 16]int32)
	for b := range t.bytePair {
		t.bytePair[b] = t.pairs.lookup(t.byteID[b>>8], t.byteID[b&0xff])
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

// eachSplit calls fn with every split of ordinary token id into two
// ordinary tokens, left piece shortest first.
func (t *Tokenizer) eachSplit(id uint32, fn func(a, b uint32)) {
	s := t.tokens[id].b
	for k := 1; k < len(s); k++ {
		a, okA := t.vocab[s[:k]]
		if !okA {
			continue
		}
		if b, okB := t.vocab[s[k:]]; okB {
			fn(a, b)
		}
	}
}

// indexRanks fills pairs for rank mode: every split of every ordinary token
// merges into it, ranked by its id.
func (t *Tokenizer) indexRanks() {
	n := 0
	for _, tk := range t.tokens {
		if tk.kind == tokNormal && len(tk.b) > 1 {
			n += 2
		}
	}
	t.pairs = newPairTable(n)
	for id, tk := range t.tokens {
		if tk.kind != tokNormal || len(tk.b) < 2 || t.vocab[tk.b] != uint32(id) {
			continue
		}
		t.eachSplit(uint32(id), func(a, b uint32) { t.pairs.add(a, b, int32(id)) })
	}
}

// pairTable maps a pair of token ids to the rank of its merge: open
// addressing with linear probing on a multiplicative hash, a quarter to a
// half full. A slot is one word, the pair in the high 42 bits (ids are
// below MaxVocabSize = 1<<21) and rank+1 in the low 22, zero when empty,
// so that four slots share a cache line. Merge results are not stored:
// in rank mode a merge's result is its rank, in merges mode
// Tokenizer.rankID[rank].
type pairTable struct {
	slots []uint64
	shift uint8
	n     int
}

const rankBits = 22

func newPairTable(n int) pairTable {
	size, shift := 16, uint8(60)
	for size < 2*n {
		size, shift = size*2, shift-1
	}
	return pairTable{slots: make([]uint64, size), shift: shift}
}

func packPair(a, b uint32) uint64 { return uint64(a)<<21 | uint64(b) }

func (p *pairTable) slot(k uint64) uint64 { return (k * 0x9E3779B97F4A7C15) >> p.shift }

// add stores rank under (a, b) unless the pair is present already (the
// first merge of a pair wins, as in a merges list), growing the table as
// needed.
func (p *pairTable) add(a, b uint32, rank int32) {
	if 2*(p.n+1) > len(p.slots) {
		old := p.slots
		*p = newPairTable(2 * (p.n + 1))
		for _, s := range old {
			if s != 0 {
				p.add(uint32(s>>(rankBits+21)), uint32(s>>rankBits)&(1<<21-1), int32(s&(1<<rankBits-1))-1)
			}
		}
	}
	k := packPair(a, b)
	mask := uint64(len(p.slots) - 1)
	for i := p.slot(k); ; i = (i + 1) & mask {
		s := p.slots[i]
		if s == 0 {
			p.slots[i] = k<<rankBits | uint64(rank+1)
			p.n++
			return
		}
		if s>>rankBits == k {
			return
		}
	}
}

// lookup returns the rank of the merge of (a, b), or noRank.
func (p *pairTable) lookup(a, b uint32) int32 {
	k := packPair(a, b)
	mask := uint64(len(p.slots) - 1)
	for i := p.slot(k); ; i = (i + 1) & mask {
		s := p.slots[i]
		if s>>rankBits == k {
			return int32(s&(1<<rankBits-1)) - 1
		}
		if s == 0 {
			return noRank
		}
	}
}
