package corpus

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParquetRoundTrip(t *testing.T) {
	docs := []Doc{
		{ID: "a", Title: "中华人民共和国公司法(2018-10-26)", Text: "第一条 为了规范公司的组织和行为……", Label: "statute", Date: "2018-10-26"},
		{ID: "b", Text: "Call [CN_MOBILE] now.", Redactions: []Span{{Start: 5, End: 16, Type: "cn_mobile"}}},
	}
	var buf bytes.Buffer
	if err := WriteParquet(&buf, docs); err != nil {
		t.Fatal(err)
	}
	got, bad, n, err := ReadDocs(buf.Bytes(), FormatParquet)
	if err != nil || n != 0 || len(bad) != 0 {
		t.Fatalf("ReadDocs = %v, %v, %d", err, bad, n)
	}
	if diff := cmp.Diff(docs, got); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	texts, err := Read(buf.Bytes(), FormatParquet)
	if err != nil || len(texts) != 2 || texts[1] != docs[1].Text {
		t.Fatalf("Read parquet = %q, %v", texts, err)
	}
	if _, _, _, err := ReadDocs([]byte("PAR1 not really"), FormatParquet); !errors.Is(err, ErrMalformed) {
		t.Fatalf("broken parquet: %v", err)
	}
}

func TestReadDocsToleratesBadLines(t *testing.T) {
	in := "{\"id\":\"1\",\"text\":\"good\"}\nnot json\n{\"body\":1}\n\xff\xfe{\"text\":\"x\"}\n{\"id\":2,\"title\":\"t\",\"text\":\"also good\"}\n"
	docs, bad, n, err := ReadDocs([]byte(in), FormatJSONL)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].ID != "1" || docs[1].ID != "2" || docs[1].Title != "t" {
		t.Fatalf("docs = %+v", docs)
	}
	if n != 3 || len(bad) != 3 || bad[0].Line != 2 || bad[1].Line != 3 || bad[2].Line != 4 {
		t.Fatalf("bad = %d %+v", n, bad)
	}
	var out bytes.Buffer
	if err := WriteDocsJSONL(&out, docs); err != nil {
		t.Fatal(err)
	}
	texts, err := Read(out.Bytes(), FormatJSONL)
	if err != nil || len(texts) != 2 {
		t.Fatalf("Read(WriteDocsJSONL) = %v, %v", texts, err)
	}
}
