package corpus

import (
	"bytes"
	"compress/gzip"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadWriteRoundTrip(t *testing.T) {
	docs := []string{"第一条 甲方应当按时付款。", "Article 1. The Buyer shall pay.", "line\nbreak <b>&</b>"}
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, docs); err != nil {
		t.Fatal(err)
	}
	got, err := Read(buf.Bytes(), "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(docs, got); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(buf.Bytes())
	zw.Close()
	got, err = Read(gz.Bytes(), FormatJSONL)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(docs, got); diff != "" {
		t.Fatalf("gzip round trip (-want +got):\n%s", diff)
	}
}

func TestReadErrors(t *testing.T) {
	tests := map[string]struct {
		data   string
		format string
	}{
		"not json":       {data: "{\"text\": \"ok\"}\nnot json\n", format: "jsonl"},
		"no text field":  {data: "{\"body\": \"x\"}\n", format: "jsonl"},
		"unknown format": {data: "x", format: "parquet-ish"},
		"invalid utf8":   {data: "ok\n\n\xff\xfe", format: "text"},
		"bad gzip":       {data: "\x1f\x8b\x00\x00", format: "jsonl"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Read([]byte(tc.data), tc.format)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Read = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestReadText(t *testing.T) {
	got, err := Read([]byte("one\r\ntwo\n\n\n three \n\n"), FormatText)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"one\ntwo", "three"}, got); diff != "" {
		t.Fatal(diff)
	}
}
