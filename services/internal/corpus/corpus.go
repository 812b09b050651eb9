package corpus

import (
	"bufio"
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

// Read parses a dataset into its documents' texts, strictly: the first bad
// record (a JSONL line that is not an object with a "text" string, invalid
// UTF-8) is an error that names its line. ReadDocs is the tolerant reader.
func Read(data []byte, format string) ([]string, error) {
	docs, bad, n, err := ReadDocs(data, format)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		return nil, fmt.Errorf("%w: line %d: %s", ErrMalformed, bad[0].Line, bad[0].Err)
	}
	texts := make([]string, len(docs))
	for i, d := range docs {
		texts[i] = d.Text
	}
	return texts, nil
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
