package normalize

import (
	"testing"

	"github.com/llmesh/llmesh/services/internal/corpus/corpustest"
	"golang.org/x/text/unicode/norm"
)

// corpusText reads the raw "text" fields of a shared corpus, or skips tb.
func corpusText(tb testing.TB, name string) []string {
	tb.Helper()
	return corpustest.Texts(tb, name)
}

var corpora = []string{"cn-law.jsonl.gz", "en-legal.jsonl.gz"}

// benchDocs runs fn over every document of each corpus; the partner
// benchmarks (x/text NFC and NFKC over the same documents) run beside them.
func benchDocs(b *testing.B, fn func(string) string) {
	for _, name := range corpora {
		b.Run(name, func(b *testing.B) {
			docs := corpusText(b, name)
			n := 0
			for _, d := range docs {
				n += len(d)
			}
			b.SetBytes(int64(n))
			b.ResetTimer()
			for b.Loop() {
				for _, d := range docs {
					fn(d)
				}
			}
		})
	}
}

func BenchmarkText(b *testing.B) {
	b.Run("Text", func(b *testing.B) { benchDocs(b, Text) })
	b.Run("partner=x-text-NFC", func(b *testing.B) { benchDocs(b, norm.NFC.String) })
}

func BenchmarkKey(b *testing.B) {
	b.Run("Key", func(b *testing.B) { benchDocs(b, Key) })
	b.Run("KeySimplified", func(b *testing.B) {
		benchDocs(b, func(s string) string { return KeyWith(s, KeyOptions{Simplified: true}) })
	})
	b.Run("partner=x-text-NFKC", func(b *testing.B) { benchDocs(b, norm.NFKC.String) })
}

func BenchmarkToSimplified(b *testing.B) {
	b.Run("simplified-input", func(b *testing.B) { benchDocs(b, ToSimplified) })
	// Traditional input: the Chinese corpus with every Simplified character
	// that has a Traditional form replaced, so nearly every CJK rune maps.
	rev := map[rune]rune{}
	for _, p := range tsPairs {
		if _, ok := rev[p.to]; !ok {
			rev[p.to] = p.from
		}
	}
	b.Run("traditional-input", func(b *testing.B) {
		docs := corpusText(b, corpora[0])
		n := 0
		for i, d := range docs {
			rs := []rune(d)
			for j, r := range rs {
				if t, ok := rev[r]; ok {
					rs[j] = t
				}
			}
			docs[i] = string(rs)
			n += len(docs[i])
		}
		b.SetBytes(int64(n))
		b.ResetTimer()
		for b.Loop() {
			for _, d := range docs {
				ToSimplified(d)
			}
		}
	})
}
