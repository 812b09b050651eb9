package corpus

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Formats.
const (
	FormatJSONL = "jsonl"
	FormatText  = "text"
)

// ErrMalformed is wrapped by every error about malformed input.
var ErrMalformed = errors.New("corpus: malformed dataset")

// MaxLine is the longest JSONL line (one document) accepted.
const MaxLine = 16 << 20

// ValidFormat checks a format name; empty means jsonl.
func ValidFormat(format string) (string, error) {
	switch format {
	case "", FormatJSONL:
		return FormatJSONL, nil
	case FormatText:
		return FormatText, nil
	case FormatParquet:
		return FormatParquet, nil
	}
	return "", fmt.Errorf("%w: unknown format %q (want jsonl, text or parquet)", ErrMalformed, format)
}

// Read parses a dataset into its documents' texts. Gzip input is detected by
// its magic bytes and decompressed.
func Read(data []byte, format string) ([]string, error) {
	format, err := ValidFormat(format)
	if err != nil {
		return nil, err
	}
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrMalformed, err)
		}
		data, err = io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrMalformed, err)
		}
	}
	switch format {
	case FormatText:
		return readText(data)
	case FormatParquet:
		docs, err := readParquet(data)
		if err != nil {
			return nil, err
		}
		texts := make([]string, len(docs))
		for i, d := range docs {
			texts[i] = d.Text
		}
		return texts, nil
	}
	return readJSONL(data)
}

func readJSONL(data []byte) ([]string, error) {
	var docs []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var rec struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrMalformed, line, err)
		}
		if rec.Text == nil {
			return nil, fmt.Errorf("%w: line %d: no \"text\" field", ErrMalformed, line)
		}
		docs = append(docs, *rec.Text)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: line %d longer than %d bytes", ErrMalformed, line+1, MaxLine)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return docs, nil
}

func readText(data []byte) ([]string, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: text dataset is not valid UTF-8", ErrMalformed)
	}
	var docs []string
	for _, d := range strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n\n") {
		if d = strings.TrimSpace(d); d != "" {
			docs = append(docs, d)
		}
	}
	return docs, nil
}

// WriteJSONL writes documents as JSONL, one {"text": ...} object a line.
func WriteJSONL(w io.Writer, docs []string) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, d := range docs {
		if err := enc.Encode(struct {
			Text string `json:"text"`
		}{d}); err != nil {
			return err
		}
	}
	return bw.Flush()
}
