package dataprep_test

import (
	"context"
	"testing"

	"github.com/llmesh/llmesh/services/dataprep"
	"github.com/llmesh/llmesh/services/dataprep/democorpus"
	"github.com/llmesh/llmesh/services/internal/corpus"
)

// TestLabelsOnDemoCorpus: the label model labels the demo corpus (only
// contracts and judgments) by its kinds.
func TestLabelsOnDemoCorpus(t *testing.T) {
	gen := democorpus.Generate(7, 600)
	var docs []corpus.Doc
	kind := map[string]string{}
	for _, d := range gen {
		docs = append(docs, corpus.Doc{ID: d.ID, Title: d.Title, Text: d.Text})
		k := "contract"
		if d.Kind == democorpus.KindJudgment {
			k = "judgment"
		}
		kind[d.ID] = k
	}
	out, res, err := dataprep.Process(context.Background(), dataprep.Spec{}, docs)
	if err != nil {
		t.Fatal(err)
	}
	right := 0
	for _, d := range out {
		if d.Label == kind[d.ID] {
			right++
		}
	}
	if acc := float64(right) / float64(len(out)); acc < 0.95 {
		t.Errorf("label accuracy %.3f on %d documents (counts %v), want at least 0.95", acc, len(out), res.Labels.Counts)
	}
}
