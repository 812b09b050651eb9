// Package prepbench measures the data-prep pipeline for `llmesh bench
// dataprep`: the default stages over the shared legal corpora (or the
// built-in demo corpus when they are absent), in one process on every core.
package prepbench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/llmesh/llmesh/services/dataprep"
	"github.com/llmesh/llmesh/services/dataprep/democorpus"
	"github.com/llmesh/llmesh/services/internal/benchfmt"
	"github.com/llmesh/llmesh/services/internal/corpus"
)

// Result is one measurement.
type Result = benchfmt.Result

// Options configure a run.
type Options struct {
	// DataDir holds cn-law.jsonl.gz and en-legal.jsonl.gz; empty uses the
	// built-in demo corpus.
	DataDir string
	// DemoDocuments is the demo corpus size when DataDir is empty.
	DemoDocuments int
	// Log receives progress lines; nil is silent.
	Log io.Writer
}

// Corpora are the shared corpora the bench reads.
var Corpora = []string{"cn-law.jsonl.gz", "en-legal.jsonl.gz"}

// Run measures the default pipeline on each corpus.
func Run(ctx context.Context, o Options) ([]Result, error) {
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	type input struct {
		name  string
		docs  []corpus.Doc
		bytes int64
		bad   int
	}
	var inputs []input
	if o.DataDir != "" {
		for _, f := range Corpora {
			data, err := os.ReadFile(filepath.Join(o.DataDir, f))
			if err != nil {
				return nil, err
			}
			docs, _, bad, err := corpus.ReadDocs(data, corpus.FormatJSONL)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			var n int64
			for _, d := range docs {
				n += int64(len(d.Text))
			}
			inputs = append(inputs, input{f, docs, n, bad})
		}
	} else {
		n := max(o.DemoDocuments, 1)
		var docs []corpus.Doc
		var size int64
		for _, d := range democorpus.Generate(1, n) {
			docs = append(docs, corpus.Doc{ID: d.ID, Title: d.Title, Text: d.Text})
			size += int64(len(d.Text))
		}
		inputs = append(inputs, input{"demo", docs, size, 0})
	}
	var results []Result
	for _, in := range inputs {
		logf("dataprep: default pipeline over %s (%d documents, %.1f MB)", in.name, len(in.docs), float64(in.bytes)/1e6)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		out, res, err := dataprep.Process(ctx, dataprep.Spec{}, in.docs)
		if err != nil {
			return nil, err
		}
		secs := time.Since(start).Seconds()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		r := Result{
			Name:  fmt.Sprintf("dataprep/default/%s/threads=%d", in.name, runtime.GOMAXPROCS(0)),
			Unit:  "MB/s",
			Value: float64(in.bytes) / 1e6 / secs,
		}
		r.Missing("datatrove", "datatrove (Python) cannot be installed here: PyPI is unreachable; FACTS.md has single-thread reference figures for its stages")
		r.AddNote(fmt.Sprintf("%d → %d documents; stages ms: %s", len(in.docs), len(out), stageMillis(res)))
		results = append(results, r, Result{
			Name:  fmt.Sprintf("dataprep/default/%s/peak-heap", in.name),
			Unit:  "MB",
			Value: float64(after.HeapSys-before.HeapSys+before.HeapInuse) / 1e6,
			Note:  "Go heap reserved while the whole corpus is held in memory (the service streams shards instead)",
		})
	}
	return results, nil
}

func stageMillis(res dataprep.Result) string {
	s := ""
	for _, name := range []string{"normalize", "quality", "pii", "exact_dedup", "near_dedup", "label"} {
		if st, ok := res.Stages[name]; ok {
			s += fmt.Sprintf("%s %.0f, ", name, st.Millis)
		}
	}
	if len(s) > 2 {
		s = s[:len(s)-2]
	}
	return s + " (summed over workers)"
}
