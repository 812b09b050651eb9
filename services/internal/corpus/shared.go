package corpus

import (
	"os"
	"path/filepath"
)

// sharedCorpora are the files a shared data folder holds: Chinese laws and
// English legal texts, gzip JSONL with id, title and text fields.
var sharedCorpora = []string{"cn-law.jsonl.gz", "en-legal.jsonl.gz"}

// FindSharedData returns the folder shared/data, holding the shared corpora
// (cn-law.jsonl.gz and en-legal.jsonl.gz), found in start or the nearest
// folder above it — a checkout's ../shared/data — or "" if there is none.
func FindSharedData(start string) string {
	dir, err := filepath.Abs(start)
	if err != nil {
		return ""
	}
	for {
		d := filepath.Join(dir, "shared", "data")
		if hasSharedCorpora(d) {
			return d
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
}

func hasSharedCorpora(dir string) bool {
	for _, name := range sharedCorpora {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return false
		}
	}
	return true
}
