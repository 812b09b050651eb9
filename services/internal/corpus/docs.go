package corpus

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// FormatParquet is a Parquet file with a "text" column (and optionally id,
// title, label, date and redactions).
const FormatParquet = "parquet"

// Span is a stretch of a document's original text that a stage removed or
// replaced, recorded so the change can be audited without the value.
type Span struct {
	Start int    `json:"start"`
	End   int    `json:"end"`
	Type  string `json:"type"`
}

// Doc is one document with what the stages learnt about it.
type Doc struct {
	ID         string `json:"id,omitempty"`
	Title      string `json:"title,omitempty"`
	Text       string `json:"text"`
	Label      string `json:"label,omitempty"`
	Date       string `json:"date,omitempty"`
	Redactions []Span `json:"redactions,omitempty"`
}

// LineError is an input record that could not be read; readers that
// tolerate bad records report these and go on.
type LineError struct {
	Line int    `json:"line"`
	Err  string `json:"error"`
}

// MaxBadLines bounds the bad records kept in a report (the count is exact).
const MaxBadLines = 100

// ReadDocs parses a dataset into documents, tolerating bad records: a JSONL
// line that is not a JSON object with a "text" string, or a text that is
// not valid UTF-8, is counted and reported (the first MaxBadLines of them)
// and skipped. Gzip input is detected by its magic bytes. A Parquet file
// needs a string column "text". The error is for the whole input (an
// unknown format, a broken gzip or Parquet file).
func ReadDocs(data []byte, format string) (docs []Doc, bad []LineError, badCount int, err error) {
	if format, err = ValidFormat(format); err != nil {
		return nil, nil, 0, err
	}
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, nil, 0, fmt.Errorf("%w: gzip: %v", ErrMalformed, err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, nil, 0, fmt.Errorf("%w: gzip: %v", ErrMalformed, err)
		}
	}
	note := func(line int, msg string) {
		badCount++
		if len(bad) < MaxBadLines {
			bad = append(bad, LineError{Line: line, Err: msg})
		}
	}
	switch format {
	case FormatParquet:
		docs, err = readParquet(data)
		for i := range docs {
			if !utf8.ValidString(docs[i].Text) {
				note(i+1, "text is not valid UTF-8")
				docs[i].Text = ""
			}
		}
		return compact(docs), bad, badCount, err
	case FormatText:
		texts, err := readText(data)
		if err != nil {
			return nil, nil, 0, err
		}
		for _, t := range texts {
			docs = append(docs, Doc{Text: t})
		}
		return docs, nil, 0, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if !utf8.Valid(b) {
			note(line, "not valid UTF-8")
			continue
		}
		var d struct {
			ID         json.RawMessage `json:"id"`
			Title      string          `json:"title"`
			Text       *string         `json:"text"`
			Label      string          `json:"label"`
			Date       string          `json:"date"`
			Redactions []Span          `json:"redactions"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			note(line, err.Error())
			continue
		}
		if d.Text == nil {
			note(line, `no "text" field`)
			continue
		}
		// An id may be a JSON string or a number; either is kept as text.
		var id string
		if json.Unmarshal(d.ID, &id) != nil {
			id = string(bytes.TrimSpace(d.ID))
		}
		docs = append(docs, Doc{ID: id, Title: d.Title, Text: *d.Text, Label: d.Label, Date: d.Date, Redactions: d.Redactions})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, nil, 0, fmt.Errorf("%w: line %d longer than %d bytes", ErrMalformed, line+1, MaxLine)
		}
		return nil, nil, 0, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return docs, bad, badCount, nil
}

func compact(docs []Doc) []Doc {
	out := docs[:0]
	for _, d := range docs {
		if d.Text != "" {
			out = append(out, d)
		}
	}
	return out
}

var docSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.BinaryTypes.String},
	{Name: "title", Type: arrow.BinaryTypes.String},
	{Name: "text", Type: arrow.BinaryTypes.String},
	{Name: "label", Type: arrow.BinaryTypes.String},
	{Name: "date", Type: arrow.BinaryTypes.String},
	// redactions is the JSON array of spans: an audit column, never values.
	{Name: "redactions", Type: arrow.BinaryTypes.String},
}, nil)

// WriteParquet writes documents as a zstd-compressed Parquet file with the
// columns id, title, text, label, date and redactions (JSON spans).
func WriteParquet(w io.Writer, docs []Doc) error {
	pw, err := NewParquetWriter(w)
	if err != nil {
		return err
	}
	if err := pw.Write(docs); err != nil {
		pw.Close()
		return err
	}
	return pw.Close()
}

// ParquetWriter streams documents into a Parquet file, one row group per
// Write, so a large dataset never has to be held in memory whole.
type ParquetWriter struct {
	fw  *pqarrow.FileWriter
	mem memory.Allocator
}

// NewParquetWriter starts a Parquet file on w.
func NewParquetWriter(w io.Writer) (*ParquetWriter, error) {
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd))
	fw, err := pqarrow.NewFileWriter(docSchema, w, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return nil, err
	}
	return &ParquetWriter{fw: fw, mem: memory.NewGoAllocator()}, nil
}

// Write adds documents as one row group.
func (p *ParquetWriter) Write(docs []Doc) error {
	if len(docs) == 0 {
		return nil
	}
	b := array.NewRecordBuilder(p.mem, docSchema)
	defer b.Release()
	for _, d := range docs {
		red := ""
		if len(d.Redactions) > 0 {
			j, err := json.Marshal(d.Redactions)
			if err != nil {
				return err
			}
			red = string(j)
		}
		for i, v := range []string{d.ID, d.Title, d.Text, d.Label, d.Date, red} {
			b.Field(i).(*array.StringBuilder).Append(v)
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return p.fw.Write(rec)
}

// Close finishes the file (its footer).
func (p *ParquetWriter) Close() error { return p.fw.Close() }

// readParquet reads the documents of a Parquet file; only "text" is
// required.
func readParquet(data []byte) (docs []Doc, err error) {
	defer func() {
		if r := recover(); r != nil {
			docs, err = nil, fmt.Errorf("%w: parquet: %v", ErrMalformed, r)
		}
	}()
	tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(data), parquet.NewReaderProperties(nil),
		pqarrow.ArrowReadProperties{}, memory.NewGoAllocator())
	if err != nil {
		return nil, fmt.Errorf("%w: parquet: %v", ErrMalformed, err)
	}
	defer tbl.Release()
	col := func(name string) *arrow.Chunked {
		idx := tbl.Schema().FieldIndices(name)
		if len(idx) == 0 {
			return nil
		}
		return tbl.Column(idx[0]).Data()
	}
	text := col("text")
	if text == nil {
		return nil, fmt.Errorf("%w: parquet file has no \"text\" column", ErrMalformed)
	}
	docs = make([]Doc, tbl.NumRows())
	fields := map[string]func(d *Doc, v string){
		"id": func(d *Doc, v string) { d.ID = v }, "title": func(d *Doc, v string) { d.Title = v },
		"text": func(d *Doc, v string) { d.Text = v }, "label": func(d *Doc, v string) { d.Label = v },
		"date": func(d *Doc, v string) { d.Date = v },
		"redactions": func(d *Doc, v string) {
			if v != "" {
				_ = json.Unmarshal([]byte(v), &d.Redactions)
			}
		},
	}
	for name, set := range fields {
		c := col(name)
		if c == nil {
			continue
		}
		row := 0
		for _, chunk := range c.Chunks() {
			s, ok := chunk.(*array.String)
			if !ok {
				if lb, ok := chunk.(*array.LargeString); ok {
					for i := 0; i < lb.Len(); i++ {
						set(&docs[row], lb.Value(i))
						row++
					}
					continue
				}
				return nil, fmt.Errorf("%w: parquet column %q is %s, want string", ErrMalformed, name, chunk.DataType())
			}
			for i := 0; i < s.Len(); i++ {
				if s.IsValid(i) {
					set(&docs[row], s.Value(i))
				}
				row++
			}
		}
	}
	return docs, nil
}

// WriteDocsJSONL writes documents as JSONL, one Doc object a line, which
// Read and ReadDocs both accept.
func WriteDocsJSONL(w io.Writer, docs []Doc) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range docs {
		if err := enc.Encode(&docs[i]); err != nil {
			return err
		}
	}
	return bw.Flush()
}
