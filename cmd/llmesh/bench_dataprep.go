package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/llmesh/llmesh/services/dataprep/prepbench"
	"github.com/llmesh/llmesh/services/tokenizer/tokbench"
)

func benchDataprep(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench dataprep", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	data := fs.String("data", "", "folder with cn-law.jsonl.gz and en-legal.jsonl.gz (default: ../shared/data from here or above; else the built-in demo corpus)")
	demo := fs.Int("demo-documents", 20000, "demo corpus size when the shared corpora are absent")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: bench dataprep takes no arguments", errUsage)
	}
	opts := prepbench.Options{DataDir: *data, DemoDocuments: *demo}
	if opts.DataDir == "" {
		wd, _ := os.Getwd()
		opts.DataDir = tokbench.FindDataDir(wd)
	}
	if !*asJSON {
		opts.Log = stderr
	}
	results, err := prepbench.Run(ctx, opts)
	if err != nil {
		return err
	}
	return writeBench(stdout, "dataprep", *asJSON, results)
}
