package bpe_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"testing"

	"github.com/llmesh/llmesh/services/internal/bpe"
)

// BenchmarkTrainMixed10MB trains a 32k vocabulary on 10 MB of the shared
// corpora (5 MB of Chinese laws, 5 MB of English licences), the size the
// issue compares with HF tokenizers. It skips when ../shared/data is absent.
func BenchmarkTrainMixed10MB(b *testing.B) {
	texts := mixedCorpus(b, 10)
	b.SetBytes(totalBytes(texts))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bpe.Train(context.Background(), texts, bpe.TrainOptions{VocabSize: 32000}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTrainMixedDigest prints the SHA-256 of the tokenizer.json trained on
// the mixed corpus at the size LLMESH_TRAIN_DIGEST_MB names (unset: skip),
// and compares it with LLMESH_TRAIN_DIGEST_WANT when that is set. It pins
// the trainer's output across optimisations.
func TestTrainMixedDigest(t *testing.T) {
	mb := os.Getenv("LLMESH_TRAIN_DIGEST_MB")
	if mb == "" {
		t.Skip("set LLMESH_TRAIN_DIGEST_MB (and LLMESH_TRAIN_DIGEST_WANT) to run")
	}
	var size float64
	if _, err := fmt.Sscan(mb, &size); err != nil {
		t.Fatalf("LLMESH_TRAIN_DIGEST_MB %q: %v", mb, err)
	}
	texts := mixedCorpus(t, size)
	tok, err := bpe.Train(context.Background(), texts, bpe.TrainOptions{VocabSize: 32000})
	if err != nil {
		t.Fatal(err)
	}
	j, err := tok.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%x", sha256.Sum256(j))
	t.Logf("%s, vocab %d: sha256 %s", sizeMB(texts), tok.VocabSize(), got)
	if want := os.Getenv("LLMESH_TRAIN_DIGEST_WANT"); want != "" && got != want {
		t.Errorf("digest = %s, want %s", got, want)
	}
}
