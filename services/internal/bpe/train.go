package bpe

import (
	"container/heap"
	"context"
	"fmt"
	"runtime"
	"sync"
)

// TrainOptions configures Train.
type TrainOptions struct {
	// VocabSize is the number of tokens to reach: special tokens, the 256
	// bytes, then merges. Training stops earlier if no pair is frequent
	// enough. At most MaxVocabSize.
	VocabSize int
	// MinFrequency is the fewest occurrences a pair needs to be merged;
	// 0 means 2.
	MinFrequency int
	// SpecialTokens take ids 0..len-1 in this order. Nil means
	// []string{"<|endoftext|>"}; an empty non-nil slice means none.
	SpecialTokens []string
	// Progress, if set, is called with the merges done and the merges
	// wanted, periodically and once at the end with done == total.
	Progress func(done, total int)
}

// DefaultSpecialToken is the special token Train adds when none are given.
const DefaultSpecialToken = "<|endoftext|>"

// Limits on what Train and Load accept.
const (
	MaxVocabSize  = 1 << 21
	MaxTokenBytes = 1024
)

// parallelCountBytes is the input size above which word counting is
// spread across goroutines.
const parallelCountBytes = 1 << 20

// Train learns a byte-level BPE tokenizer from texts. It is deterministic:
// the same texts and options give the same vocabulary and merges, whatever
// the order of texts or the number of cores. It returns ctx.Err() if ctx is
// done first.
func Train(ctx context.Context, texts []string, opts TrainOptions) (*Tokenizer, error) {
	specials := opts.SpecialTokens
	if specials == nil {
		specials = []string{DefaultSpecialToken}
	}
	seen := map[string]bool{}
	for _, s := range specials {
		switch {
		case s == "":
			return nil, fmt.Errorf("%w: special token is empty", ErrInvalid)
		case len(s) > MaxTokenBytes:
			return nil, fmt.Errorf("%w: special token %.20q… is %d bytes, over the limit of %d", ErrInvalid, s, len(s), MaxTokenBytes)
		case seen[s]:
			return nil, fmt.Errorf("%w: special token %q given twice", ErrInvalid, s)
		}
		seen[s] = true
	}
	base := len(specials) + 256
	if opts.VocabSize < base {
		return nil, fmt.Errorf("%w: vocab size %d is below the %d special and byte tokens", ErrInvalid, opts.VocabSize, base)
	}
	if opts.VocabSize > MaxVocabSize {
		return nil, fmt.Errorf("%w: vocab size %d is over the limit of %d", ErrInvalid, opts.VocabSize, MaxVocabSize)
	}
	minFreq := int64(opts.MinFrequency)
	if minFreq <= 0 {
		minFreq = 2
	}

	t := &Tokenizer{chunk: ChunkRunes}
	for i, s := range specials {
		t.tokens = append(t.tokens, token{b: s, kind: tokAdded})
		t.added = append(t.added, addedToken{content: s, id: uint32(i), special: true})
	}
	for b := 0; b < 256; b++ {
		t.tokens = append(t.tokens, token{b: string([]byte{byte(b)}), kind: tokNormal})
	}
	t.index()

	counts, err := t.countWords(ctx, texts)
	if err != nil {
		return nil, err
	}
	tr := newTrainer(t, counts)
	counts = nil
	if err := tr.run(ctx, opts.VocabSize, minFreq, opts.Progress); err != nil {
		return nil, err
	}
	t.index()
	return t, nil
}

// countWords pre-tokenizes texts (added tokens cut out) and counts each
// distinct pre-token, in parallel for large inputs.
func (t *Tokenizer) countWords(ctx context.Context, texts []string) (map[string]int64, error) {
	total := 0
	for _, s := range texts {
		total += len(s)
	}
	workers := 1
	if total >= parallelCountBytes {
		workers = min(runtime.GOMAXPROCS(0), len(texts))
	}
	maps := make([]map[string]int64, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			m := map[string]int64{}
			for i := w; i < len(texts); i += workers {
				if i%64 == w%64 {
					if err := ctx.Err(); err != nil {
						errs[w] = err
						return
					}
				}
				t.eachPlainSegment(texts[i], func(seg string) {
					preTokenize(seg, t.chunk, func(p string) { m[p]++ })
				})
			}
			maps[w] = m
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	out := maps[0]
	for _, m := range maps[1:] {
		if len(m) > len(out) {
			out, m = m, out
		}
		for k, v := range m {
			out[k] += v
		}
	}
	return out, nil
}

// eachPlainSegment calls fn with the pieces of text between added tokens.
func (t *Tokenizer) eachPlainSegment(text string, fn func(string)) {
	seg := 0
	for i := 0; i < len(text); {
		if idx := t.addedByByte[text[i]]; idx != nil {
			if a, ok := t.matchAdded(text[i:], idx); ok {
				if i > seg {
					fn(text[seg:i])
				}
				i += len(a.content)
				seg = i
				continue
			}
		}
		i++
	}
	if seg < len(text) {
		fn(text[seg:])
	}
}

// trainer holds the incremental state of BPE training: every distinct word
// as a symbol sequence with its frequency, the count of every adjacent pair,
// an index from pair to the words that contain it (possibly stale: a word
// listed may no longer hold the pair) and a max-heap of pairs by count
// whose entries are checked against the live count when popped.
type trainer struct {
	t      *Tokenizer
	words  [][]uint32
	freq   []int64
	stamp  []int32 // last merge step that touched each word
	counts map[uint64]int64
	where  map[uint64][]int32
	heap   pairHeap
}

func newTrainer(t *Tokenizer, counts map[string]int64) *trainer {
	tr := &trainer{
		t:      t,
		counts: map[uint64]int64{},
		where:  map[uint64][]int32{},
	}
	tr.heap.t = t
	for w, f := range counts {
		if len(w) < 2 {
			continue
		}
		syms := make([]uint32, len(w))
		for i := 0; i < len(w); i++ {
			syms[i] = t.byteID[w[i]]
		}
		idx := int32(len(tr.words))
		tr.words = append(tr.words, syms)
		tr.freq = append(tr.freq, f)
		for i := 0; i+1 < len(syms); i++ {
			k := pairKey(syms[i], syms[i+1])
			tr.counts[k] += f
			if l := tr.where[k]; len(l) == 0 || l[len(l)-1] != idx {
				tr.where[k] = append(l, idx)
			}
		}
	}
	tr.stamp = make([]int32, len(tr.words))
	for i := range tr.stamp {
		tr.stamp[i] = -1
	}
	tr.heap.items = make([]pairCount, 0, len(tr.counts))
	for k, c := range tr.counts {
		tr.heap.items = append(tr.heap.items, pairCount{pair: k, count: c})
	}
	heap.Init(&tr.heap)
	return tr
}

func (tr *trainer) run(ctx context.Context, vocabSize int, minFreq int64, progress func(int, int)) error {
	t := tr.t
	want := vocabSize - len(t.tokens)
	report := func(done int) {
		if progress != nil {
			progress(done, want)
		}
	}
	report(0)
	every := max(want/100, 1)
	done := 0
	changed := map[uint64]struct{}{}
	for step := int32(0); len(t.tokens) < vocabSize; step++ {
		if step%64 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		best, ok := tr.popBest(minFreq)
		if !ok {
			break
		}
		a, b := uint32(best>>32), uint32(best)
		content := t.tokens[a].b + t.tokens[b].b
		z, exists := t.vocab[content]
		if !exists {
			z = uint32(len(t.tokens))
			t.tokens = append(t.tokens, token{b: content, kind: tokNormal})
			t.vocab[content] = z
			done++
			if done%every == 0 {
				report(done)
			}
		}
		t.merges = append(t.merges, [2]uint32{a, b})
		clear(changed)
		for _, w := range tr.where[best] {
			if tr.stamp[w] == step {
				continue
			}
			tr.stamp[w] = step
			tr.apply(w, a, b, z, changed)
		}
		delete(tr.where, best)
		delete(tr.counts, best)
		for k := range changed {
			if c := tr.counts[k]; c >= minFreq {
				heap.Push(&tr.heap, pairCount{pair: k, count: c})
			}
		}
	}
	report(want)
	return nil
}

// popBest returns the most frequent pair with at least minFreq occurrences,
// re-queueing entries whose count has dropped since they were pushed.
func (tr *trainer) popBest(minFreq int64) (uint64, bool) {
	for tr.heap.Len() > 0 {
		top := heap.Pop(&tr.heap).(pairCount)
		c := tr.counts[top.pair]
		if c == top.count {
			if c < minFreq {
				return 0, false
			}
			return top.pair, true
		}
		if c >= minFreq {
			heap.Push(&tr.heap, pairCount{pair: top.pair, count: c})
		}
	}
	return 0, false
}

// apply merges every occurrence of (a,b) in word w into z, updating pair
// counts only where the word changed, and records the new pairs (all of
// which contain z) in changed and in the pair→words index.
func (tr *trainer) apply(w int32, a, b, z uint32, changed map[uint64]struct{}) {
	syms := tr.words[w]
	f := tr.freq[w]
	// Pass 1: drop the counts of old pairs that overlap an occurrence.
	lastDec := -1
	dec := func(p int) {
		if p < 0 || p+1 >= len(syms) || p <= lastDec {
			return
		}
		lastDec = p
		tr.counts[pairKey(syms[p], syms[p+1])] -= f
	}
	found := false
	for i := 0; i+1 < len(syms); i++ {
		if syms[i] == a && syms[i+1] == b {
			found = true
			dec(i - 1)
			dec(i)
			dec(i + 1)
			i++
		}
	}
	if !found {
		return
	}
	// Pass 2: rewrite in place, noting where z landed.
	out := syms[:0]
	var zpos []int
	for i := 0; i < len(syms); i++ {
		if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
			zpos = append(zpos, len(out))
			out = append(out, z)
			i++
			continue
		}
		out = append(out, syms[i])
	}
	tr.words[w] = out
	// Pass 3: count the new pairs around each z.
	lastInc := -1
	inc := func(p int) {
		if p < 0 || p+1 >= len(out) || p <= lastInc {
			return
		}
		lastInc = p
		k := pairKey(out[p], out[p+1])
		tr.counts[k] += f
		changed[k] = struct{}{}
		if l := tr.where[k]; len(l) == 0 || l[len(l)-1] != w {
			tr.where[k] = append(l, w)
		}
	}
	for _, p := range zpos {
		inc(p - 1)
		inc(p)
	}
}

type pairCount struct {
	pair  uint64
	count int64
}

// pairHeap is a max-heap by count; ties go to the pair whose left token's
// bytes, then right token's bytes, sort first, so training never depends on
// id assignment or map order.
type pairHeap struct {
	t     *Tokenizer
	items []pairCount
}

func (h *pairHeap) Len() int { return len(h.items) }
func (h *pairHeap) Less(i, j int) bool {
	x, y := h.items[i], h.items[j]
	if x.count != y.count {
		return x.count > y.count
	}
	xa, ya := h.t.tokens[uint32(x.pair>>32)].b, h.t.tokens[uint32(y.pair>>32)].b
	if xa != ya {
		return xa < ya
	}
	return h.t.tokens[uint32(x.pair)].b < h.t.tokens[uint32(y.pair)].b
}
func (h *pairHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *pairHeap) Push(x any)    { h.items = append(h.items, x.(pairCount)) }
func (h *pairHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
