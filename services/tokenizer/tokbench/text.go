package tokbench

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/llmesh/llmesh/services/internal/corpus"
)

// Corpora are the files under the shared data folder that Run reads: half
// the text comes from each, whole documents in file order.
var Corpora = []string{"cn-law.jsonl.gz", "en-legal.jsonl.gz"}

// FindDataDir looks for shared/data (holding Corpora) in start and each
// folder above it — ../shared/data seen from a checkout — and returns it, or
// "" if there is none.
func FindDataDir(start string) string {
	return corpus.FindSharedData(start)
}

// LoadCorpora returns about limit bytes of whole documents from dir, an
// equal share from each of Corpora.
func LoadCorpora(dir string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("tokbench: text size %d bytes is not positive", limit)
	}
	share := limit / len(Corpora)
	var out []string
	for _, c := range Corpora {
		docs, err := readDocs(filepath.Join(dir, c), share)
		if err != nil {
			return nil, err
		}
		out = append(out, docs...)
	}
	return out, nil
}

// readDocs reads the "text" field of a gzip JSONL file, keeping whole
// documents in order and skipping any that would take the total over limit.
func readDocs(path string, limit int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokbench: corpus: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("tokbench: corpus %s: %w", path, err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 1<<20), maxDocBytes)
	var out []string
	n, line := 0, 0
	for sc.Scan() {
		line++
		var doc struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			return nil, fmt.Errorf("tokbench: corpus %s line %d: %w", path, line, err)
		}
		if n+len(doc.Text) > limit {
			continue
		}
		out = append(out, doc.Text)
		n += len(doc.Text)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokbench: corpus %s line %d (lines up to %d MiB): %w", path, line+1, maxDocBytes>>20, err)
	}
	return out, nil
}

const maxDocBytes = 64 << 20

// totalBytes is the summed length of texts.
func totalBytes(texts []string) int {
	n := 0
	for _, s := range texts {
		n += len(s)
	}
	return n
}

// writeText writes texts to path, each followed by a newline: the file both
// training children read, line by line.
func writeText(path string, texts []string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("tokbench: text file: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, s := range texts {
		w.WriteString(s)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("tokbench: text file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("tokbench: text file %s: %w", path, err)
	}
	return nil
}
