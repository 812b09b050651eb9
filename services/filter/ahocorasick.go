package filter

// matcher is an Aho–Corasick automaton over bytes, compiled to a dense DFA
// (every state has a transition for every byte class, failure links
// folded in), so scanning costs one table load per byte. Bytes that occur
// in no pattern share class 0.
type matcher struct {
	class   [256]uint16
	nclass  int
	next    []int32 // next[state*nclass+class]
	out     [][]int32
	trans   []int32 // next, as rows, flagged (see scan)
	lengths []int   // pattern byte lengths
}

// newMatcher compiles patterns (non-empty byte strings).
func newMatcher(patterns []string) *matcher {
	m := &matcher{}
	for _, p := range patterns {
		for i := 0; i < len(p); i++ {
			if m.class[p[i]] == 0 {
				m.nclass++
				m.class[p[i]] = uint16(m.nclass)
			}
		}
	}
	m.nclass++ // class 0
	// Trie with sparse children first.
	type node struct {
		child map[uint16]int32
		fail  int32
		out   []int32
	}
	nodes := []node{{child: map[uint16]int32{}}}
	for id, p := range patterns {
		s := int32(0)
		for i := 0; i < len(p); i++ {
			c := m.class[p[i]]
			n, ok := nodes[s].child[c]
			if !ok {
				n = int32(len(nodes))
				nodes = append(nodes, node{child: map[uint16]int32{}})
				nodes[s].child[c] = n
			}
			s = n
		}
		nodes[s].out = append(nodes[s].out, int32(id))
		m.lengths = append(m.lengths, len(p))
	}
	m.next = make([]int32, len(nodes)*m.nclass)
	m.out = make([][]int32, len(nodes))
	// Breadth-first: a state's failure target is complete before it.
	queue := []int32{}
	for c := 0; c < m.nclass; c++ {
		if n, ok := nodes[0].child[uint16(c)]; ok {
			m.next[c] = n
			queue = append(queue, n)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := nodes[s].fail
		m.out[s] = append(append([]int32(nil), nodes[s].out...), m.out[f]...)
		for c := 0; c < m.nclass; c++ {
			if n, ok := nodes[s].child[uint16(c)]; ok {
				nodes[n].fail = m.next[int(f)*m.nclass+c]
				m.next[int(s)*m.nclass+c] = n
				queue = append(queue, n)
			} else {
				m.next[int(s)*m.nclass+c] = m.next[int(f)*m.nclass+c]
			}
		}
	}
	m.trans = make([]int32, len(m.next))
	for i, n := range m.next {
		row := n * int32(m.nclass)
		if len(m.out[n]) > 0 {
			row = -row - 1
		}
		m.trans[i] = row
	}
	m.next = nil
	return m
}

// scan calls fn(pattern, end) for every occurrence of a pattern in text,
// end being the byte offset just past it, in order of end.
func (m *matcher) scan(text []byte, fn func(pattern, end int)) {
	// trans[row+class] is the next state's row (state*nclass), negated
	// minus one when that state has outputs.
	trans, class := m.trans, &m.class
	s := int32(0)
	for i, b := range text {
		s = trans[s+int32(class[b])]
		if s < 0 {
			s = -s - 1
			for _, p := range m.out[s/int32(m.nclass)] {
				fn(int(p), i+1)
			}
		}
	}
}
