package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// maxDatasetFile bounds one file of a text folder.
const maxDatasetFile = 64 << 20

// cmdDataset uploads and lists datasets: `dataset put NAME PATH` takes a
// JSONL file (gzip or not), a Parquet file, a text file or a folder of text
// files (one document per .txt/.md file, its path as the id).
func cmdDataset(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: dataset put NAME PATH | dataset list", errUsage)
	}
	verb := args[0]
	fs := flag.NewFlagSet("dataset "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL")
	format := fs.String("format", "", "jsonl, text or parquet (default: from the file name)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch verb {
	case "list":
		b, err := connectBus(ctx, *natsURL)
		if err != nil {
			return err
		}
		defer b.Close()
		recs, err := b.ListDatasets(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-24s %-8s %10s %10s  %s\n", "NAME", "FORMAT", "DOCUMENTS", "BYTES", "REF")
		for _, r := range recs {
			fmt.Fprintf(stdout, "%-24s %-8s %10d %10d  %s\n", r.Name, r.Format, r.Documents, r.Size, r.Ref)
		}
		return nil
	case "put":
		if fs.NArg() != 2 {
			return fmt.Errorf("%w: dataset put NAME PATH", errUsage)
		}
		name, path := fs.Arg(0), fs.Arg(1)
		if err := bus.ValidName(name); err != nil {
			return err
		}
		data, f, docs, err := readDatasetPath(path, *format)
		if err != nil {
			return err
		}
		b, err := connectBus(ctx, *natsURL)
		if err != nil {
			return err
		}
		defer b.Close()
		info, err := b.PutBytes(ctx, data)
		if err != nil {
			return err
		}
		if err := b.PutDataset(ctx, &busv1.DatasetRecord{Name: name, Ref: info.Ref, Size: info.Size, Format: f, Documents: docs, CreatedAt: timestamppb.Now()}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "dataset %s: %s, %d bytes, %s\n", name, f, info.Size, info.Ref)
		return nil
	}
	return fmt.Errorf("%w: dataset put|list", errUsage)
}

// readDatasetPath reads a dataset file, or turns a folder of text files
// into JSONL. docs is 0 when not counted here.
func readDatasetPath(path, format string) ([]byte, string, int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, "", 0, err
	}
	if !fi.IsDir() {
		if fi.Size() > 4<<30 {
			return nil, "", 0, fmt.Errorf("%s: %d bytes exceeds 4 GiB", path, fi.Size())
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, "", 0, err
		}
		if format == "" {
			switch {
			case strings.HasSuffix(path, ".parquet"):
				format = "parquet"
			case strings.HasSuffix(path, ".txt"), strings.HasSuffix(path, ".md"):
				format = "text"
			default:
				format = "jsonl"
			}
		}
		return data, format, 0, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && (strings.HasSuffix(p, ".txt") || strings.HasSuffix(p, ".md")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, "", 0, err
	}
	sort.Strings(files)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	var n int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, "", 0, err
		}
		if fi.Size() > maxDatasetFile {
			return nil, "", 0, fmt.Errorf("%s: %d bytes exceeds %d", f, fi.Size(), maxDatasetFile)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, "", 0, err
		}
		if !utf8.Valid(b) {
			return nil, "", 0, fmt.Errorf("%s: not valid UTF-8", f)
		}
		rel, _ := filepath.Rel(path, f)
		if err := enc.Encode(map[string]string{"id": filepath.ToSlash(rel), "text": string(b)}); err != nil {
			return nil, "", 0, err
		}
		n++
	}
	if n == 0 {
		return nil, "", 0, fmt.Errorf("%s: no .txt or .md files", path)
	}
	return buf.Bytes(), "jsonl", n, nil
}
