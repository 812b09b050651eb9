package bpe_test

import (
	"runtime"
	"testing"

	"github.com/llmesh/llmesh/services/internal/bpe"
)

// BenchmarkEncodeCl100k encodes the same ~10 MB of mixed Chinese and
// English text (parityCorpus) with cl100k_base, one document at a time on
// one goroutine: "ours" from a freshly loaded tokenizer each round (a cold
// merge cache), then "tiktoken-go", which reports its partner's speed and
// the ratio measured in the same run. Run it with -cpu 1:
//
//	go test -run '^$' -bench EncodeCl100k -cpu 1 ./services/internal/bpe/
func BenchmarkEncodeCl100k(b *testing.B) {
	texts := parityCorpus(b, 10)
	size := totalBytes(texts)
	var p *refPair
	for _, r := range references(b) {
		if r.enc == bpe.Cl100kBase {
			p = r
		}
	}
	oursMBps := map[int]float64{} // by GOMAXPROCS, for -cpu lists
	b.Run("ours", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			b.StopTimer()
			tok, err := bpe.LoadTiktoken(p.rank, bpe.Cl100kBase)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			for _, s := range texts {
				tok.Encode(s)
			}
		}
		oursMBps[runtime.GOMAXPROCS(0)] = float64(size) * float64(b.N) / b.Elapsed().Seconds() / 1e6
	})
	b.Run("tiktoken-go", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			for _, s := range texts {
				p.theirs.Encode(s, []string{"all"}, nil)
			}
		}
		theirs := float64(size) * float64(b.N) / b.Elapsed().Seconds() / 1e6
		if ours := oursMBps[runtime.GOMAXPROCS(0)]; ours > 0 {
			b.ReportMetric(ours/theirs, "ours/tiktoken-go")
			b.Logf("%.1f MB of text: ours %.1f MB/s, tiktoken-go %.1f MB/s: %.2fx", float64(size)/1e6, ours, theirs, ours/theirs)
		}
	})
}

// BenchmarkEncodeBatchCl100k is EncodeBatch on the same text across
// GOMAXPROCS goroutines, warm cache; compare -cpu 1,2 for scaling.
func BenchmarkEncodeBatchCl100k(b *testing.B) {
	texts := parityCorpus(b, 10)
	var tok *bpe.Tokenizer
	for _, r := range references(b) {
		if r.enc == bpe.Cl100kBase {
			tok = r.ours
		}
	}
	b.SetBytes(totalBytes(texts))
	for b.Loop() {
		tok.EncodeBatch(texts)
	}
}
