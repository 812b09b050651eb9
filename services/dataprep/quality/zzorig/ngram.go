package quality

// table is an open-addressing hash table of non-zero uint64 keys with
// counts, reused between documents.
type table struct {
	keys   []uint64
	counts []uint32
	mask   uint64
}

// reset empties the table and sizes it for n keys.
func (t *table) reset(n int) {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	if cap(t.keys) >= size {
		t.keys, t.counts = t.keys[:size], t.counts[:size]
		clear(t.keys)
	} else {
		t.keys, t.counts = make([]uint64, size), make([]uint32, size)
	}
	t.mask = uint64(size - 1)
}

// add adds d to the count of k and reports whether k is new.
func (t *table) add(k uint64, d uint32) bool {
	for i := k & t.mask; ; i = (i + 1) & t.mask {
		switch t.keys[i] {
		case k:
			t.counts[i] += d
			return false
		case 0:
			t.keys[i], t.counts[i] = k, d
			return true
		}
	}
}

// inc counts k once more and returns its count.
func (t *table) inc(k uint64) uint32 {
	for i := k & t.mask; ; i = (i + 1) & t.mask {
		switch t.keys[i] {
		case k:
			t.counts[i]++
			return t.counts[i]
		case 0:
			t.keys[i], t.counts[i] = k, 1
			return 1
		}
	}
}

func (t *table) count(k uint64) uint32 {
	for i := k & t.mask; ; i = (i + 1) & t.mask {
		switch t.keys[i] {
		case k:
			return t.counts[i]
		case 0:
			return 0
		}
	}
}

// ngramHashes sets sc.cur[i] to the hash of the n-gram at word i, for
// i < len(toks)-n+1.
func (sc *scratch) ngramHashes(n int) int {
	m := len(sc.toks) - n + 1
	if m <= 0 {
		return 0
	}
	cur := sc.cur[:0]
	for i := 0; i < m; i++ {
		h := uint64(n)
		for _, t := range sc.toks[i : i+n] {
			h = (h^t)*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
		}
		cur = append(cur, mix(h))
	}
	sc.cur = cur
	return m
}

// topNGram returns the share of word characters covered by the n-gram
// whose occurrences cover most characters.
func (sc *scratch) topNGram(n int) float64 {
	m := sc.ngramHashes(n)
	total := sc.cum[len(sc.cum)-1]
	if m == 0 || total == 0 {
		return 0
	}
	sc.tab.reset(m)
	best := int64(0)
	for i, h := range sc.cur[:m] {
		c := int64(sc.tab.inc(h)) * int64(sc.cum[i+n]-sc.cum[i])
		best = max(best, c)
	}
	return min(1, float64(best)/float64(total))
}

// dupNGrams sets frac[n-5], n = 5..maxN, to the share of word characters
// covered by n-grams that occur more than once. An n-gram can repeat only
// where its (n-1)-gram prefix repeats, so after n = 5 only those positions
// are counted.
func (sc *scratch) dupNGrams(maxN int, frac []float64) {
	total := sc.cum[len(sc.cum)-1]
	if total == 0 {
		return
	}
	nt := len(sc.toks)
	sc.alive = sc.alive[:0]
	for range nt {
		sc.alive = append(sc.alive, true)
	}
	if cap(sc.cur) < nt {
		sc.cur = make([]uint64, nt)
	}
	cur := sc.cur[:nt]
	for i := range cur {
		cur[i] = uint64(5)
	}
	// cur[i] accumulates the hash of the growing gram at i.
	for n := 1; n <= maxN; n++ {
		m := nt - n + 1
		if m <= 0 {
			return
		}
		live := 0
		for i := 0; i < m; i++ {
			if sc.alive[i] {
				cur[i] = (cur[i]^sc.toks[i+n-1])*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
				live++
			}
		}
		if n < 5 {
			continue // prefixes only: no pruning below 5-grams
		}
		sc.tab.reset(live)
		for i := 0; i < m; i++ {
			if sc.alive[i] {
				sc.tab.inc(mix(cur[i]))
			}
		}
		covered, end := int32(0), 0 // characters covered; words covered up to end
		for i := 0; i < m; i++ {
			if !sc.alive[i] {
				continue
			}
			if sc.tab.count(mix(cur[i])) < 2 {
				sc.alive[i] = false
				continue
			}
			from := max(i, end)
			end = i + n
			covered += sc.cum[end] - sc.cum[from]
		}
		for i := m; i < nt; i++ {
			sc.alive[i] = false
		}
		frac[n-5] = float64(covered) / float64(total)
	}
}
