package corpustest_test

import (
	"testing"

	"github.com/llmesh/llmesh/services/internal/corpus/corpustest"
)

// TestDocs reads both shared corpora (skipping when they are absent) and
// checks that every document has a title and a text.
func TestDocs(t *testing.T) {
	for _, name := range []string{"cn-law.jsonl.gz", "en-legal.jsonl.gz"} {
		t.Run(name, func(t *testing.T) {
			docs := corpustest.Docs(t, name)
			if len(docs) == 0 {
				t.Fatalf("%s has no documents", corpustest.Path(t, name))
			}
			for i, d := range docs {
				if d.ID == "" || d.Title == "" || d.Text == "" {
					t.Fatalf("document %d: id %q, title %q, %d bytes of text; want all three", i, d.ID, d.Title, len(d.Text))
				}
			}
			if texts := corpustest.Texts(t, name); len(texts) != len(docs) || texts[0] != docs[0].Text {
				t.Errorf("Texts: %d texts, want the %d documents' texts", len(texts), len(docs))
			}
		})
	}
}
