package corpustest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/llmesh/llmesh/services/internal/corpus"
)

// Dir returns the shared/data folder found in the working directory or the
// nearest folder above it, or "" when there is none.
func Dir() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	return corpus.FindSharedData(wd)
}

// Path returns the path of the shared corpus name (such as
// "cn-law.jsonl.gz"), skipping tb when it is absent.
func Path(tb testing.TB, name string) string {
	tb.Helper()
	dir := Dir()
	if dir == "" {
		tb.Skipf("shared corpus %s: no shared/data with the corpora in or above the working directory", name)
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("shared corpus %s: %v", name, err)
	}
	return p
}

// Doc is one document of a shared corpus.
type Doc struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

// Docs reads every document of the shared corpus name, in file order. It
// skips tb when the corpus is absent and fails it on a broken gzip stream,
// a line that is not JSON or a document without a "text" field. Blank
// lines are ignored.
func Docs(tb testing.TB, name string) []Doc {
	tb.Helper()
	p := Path(tb, name)
	data, err := os.ReadFile(p)
	if err != nil {
		tb.Fatalf("shared corpus %s: %v", name, err)
	}
	read, bad, n, err := corpus.ReadDocs(data, corpus.FormatJSONL)
	if err != nil {
		tb.Fatalf("shared corpus %s: %v", p, err)
	}
	if n > 0 {
		tb.Fatalf("shared corpus %s: %d bad lines, the first: line %d: %s", p, n, bad[0].Line, bad[0].Err)
	}
	docs := make([]Doc, len(read))
	for i, d := range read {
		docs[i] = Doc{ID: d.ID, Title: d.Title, Text: d.Text}
	}
	return docs
}

// Texts returns the text of every document of the shared corpus name, in
// file order, skipping or failing tb as Docs does.
func Texts(tb testing.TB, name string) []string {
	tb.Helper()
	docs := Docs(tb, name)
	texts := make([]string, len(docs))
	for i, d := range docs {
		texts[i] = d.Text
	}
	return texts
}
