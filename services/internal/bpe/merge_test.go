package bpe

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/llmesh/llmesh/services/dataprep/democorpus"
)

// TestMergeHeapMatchesSmall checks the O(n log n) merge used for long
// pre-tokens against the quadratic reference on random words.
func TestMergeHeapMatchesSmall(t *testing.T) {
	var texts []string
	for _, d := range democorpus.Generate(1, 100) {
		texts = append(texts, d.Text)
	}
	tok, err := Train(context.Background(), texts, TrainOptions{VocabSize: 1500})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	pieces := []string{"合同", "甲方", "被告", "the", " Agreement", "a", "aa", "é", "\xff", "人民币", "元", "0", "00"}
	for range 3000 {
		var b strings.Builder
		for range 1 + r.IntN(40) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		w := b.String()
		if diff := cmp.Diff(tok.mergeSmall(w), tok.mergeHeap(w)); diff != "" {
			t.Fatalf("word %q (-small +heap):\n%s", w, diff)
		}
	}
	long := strings.Repeat("本院认为", 5000)
	ids := tok.appendWord(nil, long)
	if len(ids) >= len(long)/3 {
		t.Errorf("long word: %d tokens for %d Han characters", len(ids), len(long)/3)
	}
}
