package bpe_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/llmesh/llmesh/services/dataprep/democorpus"
	"github.com/llmesh/llmesh/services/internal/bpe"
)

// hfEncoder finds node and the npm tokenizers package that
// `llmesh bench tokenizer --install-partners` installs, or skips.
func hfEncoder(t *testing.T) (node, script string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: HF tokenizers cannot run")
	}
	dir, _ := filepath.Abs("../../../bench/tokenizers")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "tokenizers")); err != nil {
		t.Skip("npm tokenizers is not installed (npm ci --prefix bench/tokenizers)")
	}
	return node, filepath.Join(dir, "hf_encode.mjs")
}

// TestHFLoadsOurTokenizerJSON: a tokenizer we train and save as
// tokenizer.json loads in HF tokenizers and encodes like ours.
func TestHFLoadsOurTokenizerJSON(t *testing.T) {
	node, script := hfEncoder(t)
	var texts []string
	for _, d := range democorpus.Generate(11, 200) {
		texts = append(texts, d.Text)
	}
	tok, err := bpe.Train(context.Background(), texts[:150], bpe.TrainOptions{VocabSize: 2000})
	if err != nil {
		t.Fatal(err)
	}
	probe := append(texts[150:], "第一条 甲方（出卖人）应于2024年3月1日前交付货物。", "Article 12. The Buyer's   obligations\r\n\tend here.", "混合 mixed 文本 123456 ！？", "")
	dir := t.TempDir()
	js, err := tok.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	tokFile, textsFile := filepath.Join(dir, "tokenizer.json"), filepath.Join(dir, "texts.json")
	tj, _ := json.Marshal(probe)
	if err := os.WriteFile(tokFile, js, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(textsFile, tj, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, script, tokFile, textsFile).Output()
	if err != nil {
		t.Fatalf("HF tokenizers could not load our tokenizer.json: %v", err)
	}
	var hf [][]uint32
	if err := json.Unmarshal(out, &hf); err != nil {
		t.Fatalf("hf_encode output: %v", err)
	}
	if len(hf) != len(probe) {
		t.Fatalf("HF encoded %d texts, want %d", len(hf), len(probe))
	}
	for i, text := range probe {
		if ours := tok.Encode(text); !slices.Equal(ours, hf[i]) {
			t.Errorf("text %d: HF and ours differ\nours %v\nhf   %v", i, ours, hf[i])
		}
	}
}
