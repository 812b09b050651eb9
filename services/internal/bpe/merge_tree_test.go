package bpe

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pkoukk/tiktoken-go-loader/assets"

	"github.com/llmesh/llmesh/services/dataprep/democorpus"
)

// TestMergeStrategiesAgree checks the tournament-tree and heap merges
// against the scanning one, in merges mode (a trained tokenizer) and rank
// mode (cl100k_base), on random words of every length up to 300 bytes.
func TestMergeStrategiesAgree(t *testing.T) {
	var texts []string
	for _, d := range democorpus.Generate(1, 100) {
		texts = append(texts, d.Text)
	}
	trained, err := Train(context.Background(), texts, TrainOptions{VocabSize: 1500})
	if err != nil {
		t.Fatal(err)
	}
	data, err := assets.Assets.ReadFile("cl100k_base.tiktoken")
	if err != nil {
		t.Fatal(err)
	}
	cl100k, err := LoadTiktoken(data, Cl100kBase)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	pieces := []string{"合同", "甲方", "被告", "the", " Agreement", "a", "aa", "é", "\xff", "人民币", "元", "0", "00", " ", "ing", "本院认为"}
	for name, tok := range map[string]*Tokenizer{"merges": trained, "rank": cl100k} {
		for range 3000 {
			var b strings.Builder
			for b.Len() < 2+r.IntN(300) {
				b.WriteString(pieces[r.IntN(len(pieces))])
			}
			w := b.String()
			want := tok.mergeSmall(w)
			if diff := cmp.Diff(want, tok.mergeTree(nil, w)); diff != "" {
				t.Fatalf("%s: word %q (-scan +tree):\n%s", name, w, diff)
			}
			if diff := cmp.Diff(want, tok.mergeHeap(w)); diff != "" {
				t.Fatalf("%s: word %q (-scan +heap):\n%s", name, w, diff)
			}
		}
	}
}
