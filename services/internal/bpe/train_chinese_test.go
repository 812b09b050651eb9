package bpe_test

import (
	"context"
	"testing"
	"unicode/utf8"

	"github.com/llmesh/llmesh/services/internal/bpe"
)

// TestChineseEfficiency trains a 32k vocabulary on up to 10 MB of the
// Chinese law corpus (the documents whose index mod 10 is not 0) and checks
// that the held-out laws (index mod 10 == 0) encode at no more than 0.8
// tokens per character. It runs at full size (a few seconds) and skips when
// ../shared/data is absent.
func TestChineseEfficiency(t *testing.T) {
	const (
		trainBytes    = 10e6
		maxTokPerRune = 0.8
	)
	docs := readCorpus(t, "cn-law.jsonl.gz")
	var train, held []string
	for i, d := range docs {
		if i%10 == 0 {
			held = append(held, d)
		} else {
			train = append(train, d)
		}
	}
	train = takeBytes(train, trainBytes)
	tok, err := bpe.Train(context.Background(), train, bpe.TrainOptions{VocabSize: 32000})
	if err != nil {
		t.Fatal(err)
	}
	runes, tokens := 0, 0
	for i, ids := range tok.EncodeBatch(held) {
		runes += utf8.RuneCountInString(held[i])
		tokens += len(ids)
	}
	ratio := float64(tokens) / float64(runes)
	t.Logf("trained on %d laws (%s); %d held-out laws: %d tokens for %d characters = %.3f tokens/char",
		len(train), sizeMB(train), len(held), tokens, runes, ratio)
	if ratio > maxTokPerRune {
		t.Errorf("held-out laws encode at %.3f tokens per character, over the limit of %.1f", ratio, maxTokPerRune)
	}
}
