package bpe_test

import (
	"context"
	"strings"
	"testing"

	"github.com/llmesh/llmesh/services/internal/bpe"
)

// benchCorpus is about 4 MB of demo documents.
func benchCorpus() []string { return corpus(42, 3500) }

func totalBytes(texts []string) int64 {
	n := 0
	for _, s := range texts {
		n += len(s)
	}
	return int64(n)
}

// BenchmarkTrain trains an 8000-token vocabulary on ~4 MB of the demo
// corpus; MB/s is input bytes per second.
func BenchmarkTrain(b *testing.B) {
	texts := benchCorpus()
	b.SetBytes(totalBytes(texts))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bpe.Train(context.Background(), texts, bpe.TrainOptions{VocabSize: 8000}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchTokenizer(b *testing.B) (*bpe.Tokenizer, []string) {
	texts := benchCorpus()
	tok, err := bpe.Train(context.Background(), texts[:1000], bpe.TrainOptions{VocabSize: 8000})
	if err != nil {
		b.Fatal(err)
	}
	return tok, texts
}

// BenchmarkEncode encodes ~4 MB one document at a time on one goroutine,
// with a warm merge cache.
func BenchmarkEncode(b *testing.B) {
	tok, texts := benchTokenizer(b)
	b.SetBytes(totalBytes(texts))
	for b.Loop() {
		for _, s := range texts {
			tok.Encode(s)
		}
	}
}

// BenchmarkEncodeBatch is BenchmarkEncode across GOMAXPROCS goroutines.
func BenchmarkEncodeBatch(b *testing.B) {
	tok, texts := benchTokenizer(b)
	b.SetBytes(totalBytes(texts))
	for b.Loop() {
		tok.EncodeBatch(texts)
	}
}

// BenchmarkEncodeColdCache encodes with a fresh tokenizer each round (no
// cached pre-tokens), the cost of the merge loop itself.
func BenchmarkEncodeColdCache(b *testing.B) {
	tok, texts := benchTokenizer(b)
	j, _ := tok.MarshalJSON()
	joined := strings.Join(texts[:300], "")
	b.SetBytes(int64(len(joined)))
	for b.Loop() {
		b.StopTimer()
		fresh, err := bpe.Load(j)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		fresh.Encode(joined)
	}
}

func BenchmarkDecode(b *testing.B) {
	tok, texts := benchTokenizer(b)
	ids := tok.EncodeBatch(texts)
	b.SetBytes(totalBytes(texts))
	for b.Loop() {
		for _, x := range ids {
			if _, err := tok.Decode(x); err != nil {
				b.Fatal(err)
			}
		}
	}
}
