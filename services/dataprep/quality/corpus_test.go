package quality

import (
	"sort"
	"testing"

	"github.com/llmesh/llmesh/services/dataprep/normalize"
	"github.com/llmesh/llmesh/services/internal/corpus/corpustest"
)

// corpus reads the "text" field of every document of a shared corpus,
// normalized, or skips tb.
func corpus(tb testing.TB, name string) []string {
	tb.Helper()
	docs := corpustest.Texts(tb, name)
	for i, d := range docs {
		docs[i] = normalize.Text(d)
	}
	return docs
}

var corpora = []string{"cn-law.jsonl.gz", "en-legal.jsonl.gz"}

// TestCorpora runs the default filter over the real corpora, logs the
// reject rate per rule and an example of each, and fails above 3%.
func TestCorpora(t *testing.T) {
	f, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range corpora {
		t.Run(name, func(t *testing.T) {
			docs := corpus(t, name)
			rejects := map[string]int{}
			example := map[string]string{}
			for _, d := range docs {
				if rule, ok := f.Check(d); !ok {
					rejects[rule]++
					if _, seen := example[rule]; !seen || testing.Verbose() && len(d) < len(example[rule]) {
						example[rule] = d
					}
				}
			}
			total := 0
			names := make([]string, 0, len(rejects))
			for r, n := range rejects {
				total += n
				names = append(names, r)
			}
			sort.Strings(names)
			t.Logf("%s: %d documents, %d rejected (%.2f%%)", name, len(docs), total, 100*float64(total)/float64(len(docs)))
			for _, r := range names {
				ex := []rune(example[r])
				if len(ex) > 160 {
					ex = append(ex[:160], '…')
				}
				t.Logf("  %-18s %4d (%.2f%%) e.g. %q", r, rejects[r], 100*float64(rejects[r])/float64(len(docs)), string(ex))
			}
			if rate := float64(total) / float64(len(docs)); rate > 0.03 {
				t.Errorf("%s: reject rate %.2f%% is above 3%%", name, 100*rate)
			}
		})
	}
}

func BenchmarkCheck(b *testing.B) {
	f, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range corpora {
		b.Run(name, func(b *testing.B) {
			docs := corpus(b, name)
			n := 0
			for _, d := range docs {
				n += len(d)
			}
			b.SetBytes(int64(n))
			b.ResetTimer()
			for b.Loop() {
				for _, d := range docs {
					f.Check(d)
				}
			}
		})
	}
}
