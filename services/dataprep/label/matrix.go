package label

import (
	"fmt"
	"runtime"
	"sync"
)

// Doc is one document to label.
type Doc struct {
	Title string
	Text  string
}

// Matrix is the label matrix: one row per document, one column per
// labeling function, each cell a class index or Abstain.
type Matrix struct {
	// Docs and Functions are the dimensions.
	Docs, Functions int
	// Votes holds the cells row-major: Votes[i*Functions+j].
	Votes []int8
	// Names are the function names; Labels the class names. Either may be
	// nil for a matrix built by hand.
	Names  []string
	Labels []string
}

// NewMatrix returns a docs × functions matrix of abstains.
func NewMatrix(docs, functions int) *Matrix {
	m := &Matrix{Docs: docs, Functions: functions, Votes: make([]int8, docs*functions)}
	for i := range m.Votes {
		m.Votes[i] = Abstain
	}
	return m
}

// At returns the vote of function j on document i.
func (m *Matrix) At(i, j int) int { return int(m.Votes[i*m.Functions+j]) }

// Set stores the vote of function j on document i.
func (m *Matrix) Set(i, j, label int) { m.Votes[i*m.Functions+j] = int8(label) }

// Row returns document i's votes; it aliases the matrix.
func (m *Matrix) Row(i int) []int8 { return m.Votes[i*m.Functions : (i+1)*m.Functions] }

// maxLabel returns the largest vote in m, or Abstain.
func (m *Matrix) maxLabel() int {
	hi := Abstain
	for _, v := range m.Votes {
		hi = max(hi, int(v))
	}
	return hi
}

// Apply runs every labeling function of cfg over docs, spreading documents
// over GOMAXPROCS goroutines. cfg must be valid: Apply validates a config
// that has not been validated and panics if it is not.
func Apply(cfg *Config, docs []Doc) *Matrix {
	if cfg.compiled == nil {
		if err := cfg.Validate(); err != nil {
			panic(fmt.Sprintf("label.Apply: %v", err))
		}
	}
	c := cfg.compiled
	m := &Matrix{Docs: len(docs), Functions: len(c.fns), Votes: make([]int8, len(docs)*len(c.fns)), Names: cfg.Names(), Labels: c.labels}
	workers := min(runtime.GOMAXPROCS(0), max(len(docs)/8, 1))
	const chunk = 16
	var next int64
	var mu sync.Mutex
	take := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		lo := int(next)
		next += chunk
		return lo, min(lo+chunk, len(docs))
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			s := c.newScratch()
			for {
				lo, hi := take()
				if lo >= len(docs) {
					return
				}
				for i := lo; i < hi; i++ {
					c.label(&docs[i], s, m.Row(i))
				}
			}
		})
	}
	wg.Wait()
	return m
}

// MajorityVote returns, per document, the label with the most votes.
// Documents without votes, and ties between labels, get Abstain.
func MajorityVote(m *Matrix) []int {
	k := m.maxLabel() + 1
	out := make([]int, m.Docs)
	counts := make([]int, max(k, 1))
	for i := range m.Docs {
		clear(counts)
		for _, v := range m.Row(i) {
			if v >= 0 {
				counts[v]++
			}
		}
		out[i] = argmaxUnique(counts)
	}
	return out
}

// argmaxUnique returns the index of the strictly largest positive count,
// or Abstain when there is none or a tie.
func argmaxUnique(counts []int) int {
	best, bestN, tie := Abstain, 0, false
	for c, n := range counts {
		switch {
		case n > bestN:
			best, bestN, tie = c, n, false
		case n == bestN && n > 0:
			tie = true
		}
	}
	if tie {
		return Abstain
	}
	return best
}
