package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/llmesh/llmesh/services/filter/filterbench"
	"github.com/llmesh/llmesh/services/tokenizer/tokbench"
)

func benchFilter(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench filter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	data := fs.String("data", "", "folder with cn-law.jsonl.gz and en-legal.jsonl.gz (default: ../shared/data from here or above; else built-in sample sentences)")
	mb := fs.Float64("mb", 8, "megabytes of text for the throughput runs")
	tokens := fs.Int("tokens", 20000, "tokens streamed per streaming run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: bench filter takes no arguments", errUsage)
	}
	opts := filterbench.Options{DataDir: *data, MB: *mb, Tokens: *tokens}
	if opts.DataDir == "" {
		wd, _ := os.Getwd()
		opts.DataDir = tokbench.FindDataDir(wd)
	}
	if !*asJSON {
		opts.Log = stderr
	}
	results, err := filterbench.Run(ctx, opts)
	if err != nil {
		return err
	}
	return writeBench(stdout, "filter", *asJSON, results)
}
