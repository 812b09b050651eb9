package bpe

import (
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

// trainer holds the incremental state of BPE training.
//
// Every distinct word is a run of symbols in one arena (word i is
// syms[start[i]:start[i]+size[i]]; merging shrinks a word in place) with its
// frequency. Every adjacent pair ever seen has a slot in pages, found
// through index by its uint64 key; the slot holds the pair's live count and
// the words that contain it (possibly stale: a word listed may no longer
// hold the pair). heap is a max-heap of (count, pair) entries, checked
// against the live count when popped. Nothing is allocated per merge beyond
// the growth of these.
type trainer struct {
	t     *Tokenizer
	syms  []uint32
	start []int
	size  []int32
	freq  []int64
	stamp []int32 // last merge step that touched each word

	index  map[uint64]int32
	npairs int32
	pages  [][]pairState // pair i is pages[i>>pageBits][i&pageMask]
	heap   []heapItem

	step    int32
	changed []int32 // pairs whose count rose in this step
	zpos    []int   // scratch for apply
}

// Pair slots live in fixed-size pages so that growing never copies them
// (a doubling slice would briefly hold two copies at the peak).
const (
	pageBits = 15
	pageMask = 1<<pageBits - 1
)

func (tr *trainer) pair(i int32) *pairState { return &tr.pages[i>>pageBits][i&pageMask] }

type pairState struct {
	key    uint64
	count  int64
	where  []int32
	queued int32 // last step that put the pair in changed
}

type heapItem struct {
	count int64
	pair  int32
}

func newTrainer(t *Tokenizer, counts map[string]int64) *trainer {
	n, total := 0, 0
	for w := range counts {
		if len(w) >= 2 {
			n++
			total += len(w)
		}
	}
	tr := &trainer{
		t:     t,
		syms:  make([]uint32, 0, total),
		start: make([]int, 0, n),
		size:  make([]int32, 0, n),
		freq:  make([]int64, 0, n),
		stamp: make([]int32, n),
		index: make(map[uint64]int32, 1<<16),
	}
	for w, f := range counts {
		if len(w) < 2 {
			continue
		}
		idx := int32(len(tr.start))
		s := len(tr.syms)
		for i := 0; i < len(w); i++ {
			tr.syms = append(tr.syms, t.byteID[w[i]])
		}
		tr.start = append(tr.start, s)
		tr.size = append(tr.size, int32(len(w)))
		tr.freq = append(tr.freq, f)
		syms := tr.syms[s:]
		for i := 0; i+1 < len(syms); i++ {
			p := tr.pair(tr.pairOf(pairKey(syms[i], syms[i+1])))
			p.count += f
			if l := p.where; len(l) == 0 || l[len(l)-1] != idx {
				p.where = append(l, idx)
			}
		}
	}
	for i := range tr.stamp {
		tr.stamp[i] = -1
	}
	tr.heap = make([]heapItem, 0, tr.npairs)
	for i := range tr.npairs {
		tr.heap = append(tr.heap, heapItem{count: tr.pair(i).count, pair: i})
	}
	for i := len(tr.heap)/2 - 1; i >= 0; i-- {
		tr.down(i)
	}
	return tr
}

// pairOf returns the slot of pair k, making an empty one if it has none.
func (tr *trainer) pairOf(k uint64) int32 {
	if i, ok := tr.index[k]; ok {
		return i
	}
	i := tr.npairs
	if i&pageMask == 0 {
		tr.pages = append(tr.pages, make([]pairState, 1<<pageBits))
	}
	*tr.pair(i) = pairState{key: k, queued: -1}
	tr.npairs++
	tr.index[k] = i
	return i
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
	for step := int32(0); len(t.tokens) < vocabSize; step++ {
		if step%64 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		bi, ok := tr.popBest(minFreq)
		if !ok {
			break
		}
		best := tr.pair(bi)
		a, b := uint32(best.key>>32), uint32(best.key)
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
		tr.step = step
		tr.changed = tr.changed[:0]
		where := best.where
		for _, w := range where {
			if tr.stamp[w] == step {
				continue
			}
			tr.stamp[w] = step
			tr.apply(w, a, b, z)
		}
		best.where = nil
		best.count = 0
		for _, i := range tr.changed {
			if c := tr.pair(i).count; c >= minFreq {
				tr.push(heapItem{count: c, pair: i})
			}
		}
	}
	report(want)
	return nil
}

// popBest returns the slot of the most frequent pair with at least minFreq
// occurrences, re-queueing entries whose count has dropped since they were
// pushed.
func (tr *trainer) popBest(minFreq int64) (int32, bool) {
	for len(tr.heap) > 0 {
		top := tr.pop()
		c := tr.pair(top.pair).count
		if c == top.count {
			if c < minFreq {
				return 0, false
			}
			return top.pair, true
		}
		if c >= minFreq {
			tr.push(heapItem{count: c, pair: top.pair})
		}
	}
	return 0, false
}

// apply merges every occurrence of (a,b) in word w into z, updating pair
// counts only where the word changed, and records the new pairs (all of
// which contain z) in tr.changed and in their lists of words.
func (tr *trainer) apply(w int32, a, b, z uint32) {
	s := tr.start[w]
	syms := tr.syms[s : s+int(tr.size[w])]
	f := tr.freq[w]
	// Pass 1: drop the counts of old pairs that overlap an occurrence.
	lastDec := -1
	dec := func(p int) {
		if p < 0 || p+1 >= len(syms) || p <= lastDec {
			return
		}
		lastDec = p
		tr.pair(tr.index[pairKey(syms[p], syms[p+1])]).count -= f
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
	zpos := tr.zpos[:0]
	for i := 0; i < len(syms); i++ {
		if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
			zpos = append(zpos, len(out))
			out = append(out, z)
			i++
			continue
		}
		out = append(out, syms[i])
	}
	tr.zpos = zpos
	tr.size[w] = int32(len(out))
	// Pass 3: count the new pairs around each z.
	lastInc := -1
	for _, zp := range zpos {
		for p := zp - 1; p <= zp; p++ {
			if p < 0 || p+1 >= len(out) || p <= lastInc {
				continue
			}
			lastInc = p
			i := tr.pairOf(pairKey(out[p], out[p+1]))
			ps := tr.pair(i)
			ps.count += f
			if ps.queued != tr.step {
				ps.queued = tr.step
				tr.changed = append(tr.changed, i)
			}
			if l := ps.where; len(l) == 0 || l[len(l)-1] != w {
				ps.where = append(l, w)
			}
		}
	}
}

// less orders heap entries: higher count first; ties go to the pair whose
// left token's bytes, then right token's bytes, sort first, so training
// never depends on id assignment or map order.
func (tr *trainer) less(x, y heapItem) bool {
	if x.count != y.count {
		return x.count > y.count
	}
	kx, ky := tr.pair(x.pair).key, tr.pair(y.pair).key
	tok := tr.t.tokens
	if xa, ya := tok[uint32(kx>>32)].b, tok[uint32(ky>>32)].b; xa != ya {
		return xa < ya
	}
	return tok[uint32(kx)].b < tok[uint32(ky)].b
}

func (tr *trainer) push(it heapItem) {
	h := append(tr.heap, it)
	tr.heap = h
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !tr.less(h[i], h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (tr *trainer) pop() heapItem {
	h := tr.heap
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	tr.heap = h[:last]
	if last > 0 {
		tr.down(0)
	}
	return top
}

func (tr *trainer) down(i int) {
	h := tr.heap
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && tr.less(h[r], h[l]) {
			c = r
		}
		if !tr.less(h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
