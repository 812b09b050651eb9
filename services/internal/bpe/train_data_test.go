package bpe_test

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// sharedDataDir finds ../shared/data walking up from the working directory,
// or returns "" if there is none.
func sharedDataDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		d := filepath.Join(dir, "..", "shared", "data")
		if _, err := os.Stat(filepath.Join(d, "cn-law.jsonl.gz")); err == nil {
			return d
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
}

// readCorpus returns the text of every document in the gzip JSONL file
// name under the shared data folder, skipping the test if it is absent.
func readCorpus(tb testing.TB, name string) []string {
	tb.Helper()
	dir := sharedDataDir()
	if dir == "" {
		tb.Skipf("no ../shared/data with %s found above the working directory", name)
	}
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		tb.Skipf("corpus %s: %v", name, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatalf("corpus %s: %v", name, err)
	}
	var out []string
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		var doc struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			tb.Fatalf("corpus %s: line %d: %v", name, len(out)+1, err)
		}
		out = append(out, doc.Text)
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("corpus %s: %v", name, err)
	}
	return out
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
