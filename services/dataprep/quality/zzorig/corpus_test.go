package quality

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/llmesh/llmesh/services/dataprep/normalize"
)

// corpus reads the "text" field of every line of a gzip JSONL corpus in
// ../shared/data above the working directory, normalized, or skips tb.
func corpus(tb testing.TB, name string) []string {
	tb.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		tb.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "shared", "data", name)
		if f, err := os.Open(p); err == nil {
			defer f.Close()
			zr, err := gzip.NewReader(f)
			if err != nil {
				tb.Fatalf("%s: %v", p, err)
			}
			var docs []string
			sc := bufio.NewScanner(zr)
			sc.Buffer(nil, 64<<20)
			for sc.Scan() {
				var d struct{ Text string }
				if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
					tb.Fatalf("%s: %v", p, err)
				}
				docs = append(docs, normalize.Text(d.Text))
			}
			if err := sc.Err(); err != nil {
				tb.Fatalf("%s: %v", p, err)
			}
			return docs
		}
		up := filepath.Dir(dir)
		if up == dir {
			tb.Skipf("no shared/data/%s above the working directory", name)
		}
		dir = up
	}
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
