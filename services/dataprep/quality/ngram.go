package quality

// table is an open-addressing set of non-zero uint64 keys, reused between
// documents (the duplicate-line measure).
type table struct {
	keys []uint64
	mask uint64
}

// reset empties the table and sizes it for n keys.
func (t *table) reset(n int) {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	if cap(t.keys) >= size {
		t.keys = t.keys[:size]
		clear(t.keys)
	} else {
		t.keys = make([]uint64, size)
	}
	t.mask = uint64(size - 1)
}

// add adds k and reports whether it is new.
func (t *table) add(k uint64) bool {
	for i := k & t.mask; ; i = (i + 1) & t.mask {
		switch t.keys[i] {
		case k:
			return false
		case 0:
			t.keys[i] = k
			return true
		}
	}
}

// gslot is one n-gram table entry: the gram's hash (0: empty), the word
// position of its first occurrence and its count so far, in one 16-byte
// cell so that a probe touches one cache line.
type gslot struct {
	key   uint64
	first int32
	count uint32
}

// gramTable is an open-addressing table of n-gram hashes. It is indexed by
// the hash's high bits (the rolling step below mixes upwards) and grows at
// half load, so that its size follows the number of distinct grams rather
// than the number of positions. Its memory is reused between levels and
// documents.
type gramTable struct {
	slots []gslot
	spare []gslot // the other buffer, for growing
	shift uint    // 64 - log2(len(slots))
	used  int
	limit int // grow when used reaches limit
}

// reset empties the table, sized for about n distinct keys.
func (t *gramTable) reset(n int) {
	bits := uint(4)
	for 1<<bits < 2*n {
		bits++
	}
	t.setSize(bits)
}

func (t *gramTable) setSize(bits uint) {
	size := 1 << bits
	if cap(t.slots) >= size {
		t.slots = t.slots[:size]
		clear(t.slots)
	} else {
		t.slots = make([]gslot, size)
	}
	t.shift = 64 - bits
	t.used = 0
	t.limit = size / 2
}

// grow quadruples the table, keeping its entries.
func (t *gramTable) grow() {
	old := t.slots
	t.slots, t.spare = t.spare, old
	bits := 64 - t.shift + 2
	t.setSize(bits)
	mask := uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.key == 0 {
			continue
		}
		i := s.key >> t.shift
		for t.slots[i].key != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
		t.used++
	}
}

// step extends a rolling n-gram hash by one word hash. The multiply carries
// every input bit into the high bits, which index the tables.
func step(h, w uint64) uint64 {
	return (h^w)*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
}

// block is how many positions the counting loop hashes ahead.
const block = 32

// gramSeed starts every rolling n-gram hash.
const gramSeed = 5

// ngramLimits says which n-gram measures a run needs and when it may stop.
type ngramLimits struct {
	top [3]float64 // thresholds for 2..4-grams; 0: off
	dup [6]float64 // thresholds for 5..10-grams; 0: off
	// check makes the run stop at the first failing rule and as soon as no
	// later rule can fail; otherwise every measure is computed.
	check bool
}

// ngrams measures the repeated n-grams of the words collected by scan,
// filling st.TopNGramCharFrac and st.DupNGramCharFrac, and, when lim.check,
// returns the first failing n-gram rule ("" if none).
//
// All n-gram lengths are counted in one sweep, n = 2, 3, ...: an n-gram can
// occur more than once only where both its (n-1)-gram prefix and its
// (n-1)-gram suffix do, so each length only visits the positions that
// survived the one before, and each position's hash is its prefix's hash
// extended by one word (no rehashing). A table entry remembers where its
// gram first occurred, so one probe per position both counts it and marks
// every position of a repeated gram.
//
// The measures are exact (up to 64-bit hash collisions), identical to
// counting every position: a pruned position's gram occurs once, so for the
// top n-gram it weighs its own length, and for the duplicate n-grams it
// covers nothing. The early exits are exact too: the characters covered by
// repeated n-grams bound those covered by repeated m-grams for every m > n.
func (sc *scratch) ngrams(lim *ngramLimits, st *Stats) string {
	toks, cum := sc.toks, sc.cum
	nw := len(toks)
	total := cum[nw]
	if nw < 2 || total == 0 {
		return ""
	}
	// What is needed: the last length with a rule on, and for the early
	// exit, the lowest duplicate threshold at each length and above.
	lastTop, lastDup := 1, 4
	for i, v := range lim.top {
		if v > 0 || !lim.check {
			lastTop = i + 2
		}
	}
	var dupFloor [7]float64 // dupFloor[i]: the least duplicate threshold on for lengths >= i+5
	dupFloor[6] = 2         // above every fraction: nothing left to fail
	for i := len(lim.dup) - 1; i >= 0; i-- {
		v := lim.dup[i]
		if v > 0 || !lim.check {
			if lastDup == 4 {
				lastDup = i + 5
			}
		}
		dupFloor[i] = dupFloor[i+1]
		if v > 0 {
			dupFloor[i] = min(dupFloor[i], v)
		}
	}
	maxN := max(lastTop, lastDup)
	if maxN < 2 {
		return ""
	}

	// Level 1: every position, hashed from its first word.
	pos, hs := sc.pos[:0], sc.hs[:0]
	for i, w := range toks {
		pos = append(pos, int32(i))
		hs = append(hs, step(gramSeed, w))
	}
	flag := sc.flag[:0]
	for range nw + 1 {
		flag = append(flag, 0)
	}
	sc.pos, sc.hs, sc.flag = pos, hs, flag

	t := &sc.gt
	for n := 2; n <= maxN; n++ {
		m := nw - n + 1 // positions that hold an n-gram
		if m <= 0 {
			break
		}
		// Keep the positions whose (n-1)-gram prefix and suffix repeat,
		// clearing every flag of the previous length as we go (a flag is
		// read, as a suffix, only before its own position is visited).
		if n == 2 {
			pos, hs = pos[:m], hs[:m]
		} else {
			// Positions ascend and m drops by one per length: only the
			// last one can have run out of words.
			// Its flag is read (as a suffix) before it is cleared.
			out := -1
			if last := len(pos) - 1; last >= 0 && int(pos[last]) >= m {
				out = int(pos[last])
				pos, hs = pos[:last], hs[:last]
			}
			k := 0
			for j, i := range pos {
				keep := flag[i] & flag[i+1] // flags are 0 or 1
				flag[i] = 0
				pos[k], hs[k] = i, hs[j] // k <= j: a write past the kept ones is overwritten or cut
				k += int(keep)
			}
			if out >= 0 {
				flag[out] = 0
			}
			pos, hs = pos[:k], hs[:k]
		}

		// Count, flagging the positions of repeated grams and tracking the
		// gram whose occurrences cover most characters.
		t.reset(len(pos) / 2)
		best, touch := int64(0), uint64(0)
		for b := 0; b < len(pos); b += block {
			e := min(b+block, len(pos))
			// Hash a block and touch its home slots first: the loads do
			// not wait on one another (nor on mispredicted branches), so
			// their cache misses overlap.
			for j := b; j < e; j++ {
				h := step(hs[j], toks[int(pos[j])+n-1]) | 1
				hs[j] = h
				touch += t.slots[h>>t.shift].key
			}
			for j := b; j < e; j++ {
				h, i := hs[j], pos[j]
				s := &t.slots[h>>t.shift]
				if s.key != h {
					if s = t.find(h, i); s == nil {
						continue // new gram
					}
				}
				s.count++
				flag[s.first] = 1 // again from the third occurrence on: cheaper than a test
				flag[i] = 1
				if n <= 4 {
					best = max(best, int64(s.count)*int64(cum[int(i)+n]-cum[i]))
				}
			}
		}

		sc.sink += touch
		if n <= 4 {
			if n <= lastTop {
				// A gram that occurs once covers its own characters.
				if n == 2 {
					sc.maxLens(lastTop)
				}
				best = max(best, int64(sc.maxLen[n-2]))
				frac := min(1, float64(best)/float64(total))
				st.TopNGramCharFrac[n-2] = frac
				if max := lim.top[n-2]; lim.check && max > 0 && frac > max {
					return rules[9+n-2]
				}
			}
		}
		if n < 5 && !(lim.check && n >= lastTop && n < maxN) {
			continue // no duplicate measure, and no early exit to try
		}

		// Characters covered by repeated n-grams.
		covered, end := int32(0), 0
		for _, i := range pos {
			if flag[i] == 0 {
				continue
			}
			from := max(int(i), end)
			end = int(i) + n
			covered += cum[end] - cum[from]
		}
		frac := float64(covered) / float64(total)
		if n >= 5 {
			st.DupNGramCharFrac[n-5] = frac
			if max := lim.dup[n-5]; lim.check && max > 0 && frac > max {
				return rules[12+n-5]
			}
		}
		if lim.check && frac <= dupFloor[max(n-4, 0)] {
			break // no longer gram can cover more
		}
	}
	return ""
}

// find looks h up past its home slot: it returns h's slot, or inserts h,
// first seen at position i, and returns nil.
func (t *gramTable) find(h uint64, i int32) *gslot {
	mask := uint64(len(t.slots) - 1)
	for j := h >> t.shift; ; j = (j + 1) & mask {
		s := &t.slots[j]
		switch s.key {
		case h:
			return s
		case 0:
			s.key, s.first, s.count = h, i, 1
			if t.used++; t.used >= t.limit {
				t.grow()
			}
			return nil
		}
	}
}

// maxLens sets sc.maxLen[n-2], n = 2..maxN (at most 4), to the most
// characters any n-gram holds, in one pass.
func (sc *scratch) maxLens(maxN int) {
	cum := sc.cum
	nw := len(cum) - 1
	var l2, l3, l4 int32
	i := 0
	if maxN >= 4 {
		for ; i+4 <= nw; i++ {
			c := cum[i]
			l2 = max(l2, cum[i+2]-c)
			l3 = max(l3, cum[i+3]-c)
			l4 = max(l4, cum[i+4]-c)
		}
	}
	if maxN >= 3 {
		for ; i+3 <= nw; i++ {
			c := cum[i]
			l2 = max(l2, cum[i+2]-c)
			l3 = max(l3, cum[i+3]-c)
		}
	}
	for ; i+2 <= nw; i++ {
		l2 = max(l2, cum[i+2]-cum[i])
	}
	sc.maxLen = [3]int32{l2, l3, l4}
}
