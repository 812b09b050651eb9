package bpe_test

import (
	"fmt"
	"testing"

	"github.com/llmesh/llmesh/services/internal/corpus/corpustest"
)

// readCorpus returns the text of every document in the shared corpus
// name, skipping the test if it is absent.
func readCorpus(tb testing.TB, name string) []string {
	tb.Helper()
	return corpustest.Texts(tb, name)
}

// takeBytes returns whole documents from docs, in order, skipping any that
// would take the total over limit bytes.
func takeBytes(docs []string, limit int) []string {
	var out []string
	n := 0
	for _, d := range docs {
		if n+len(d) > limit {
			continue
		}
		out = append(out, d)
		n += len(d)
	}
	return out
}

// mixedCorpus returns about mb megabytes (10^6 bytes) of whole documents,
// half from the Chinese law corpus and half from the English licences.
func mixedCorpus(tb testing.TB, mb float64) []string {
	tb.Helper()
	half := int(mb * 1e6 / 2)
	cn := takeBytes(readCorpus(tb, "cn-law.jsonl.gz"), half)
	en := takeBytes(readCorpus(tb, "en-legal.jsonl.gz"), half)
	return append(cn, en...)
}

func sizeMB(texts []string) string {
	return fmt.Sprintf("%.1f MB", float64(totalBytes(texts))/1e6)
}
