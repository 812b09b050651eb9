package dataprep_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/dataprep"
	"github.com/llmesh/llmesh/services/internal/corpus"
)

const wait = 20 * time.Second

func TestNormalize(t *testing.T) {
	tests := map[string]struct {
		in, want string
	}{
		"nfc composes":             {"cafe\u0301 re\u0301sume\u0301", "café résumé"},
		"nfc hangul":               {"\u1100\u1161", "\uAC00"},
		"crlf":                     {"line one\r\nline two\r\n", "line one\nline two"},
		"lone cr dropped":          {"a\rb", "ab"},
		"control chars dropped":    {"a\x00b\x07c\x1bd\x7fe", "abcde"},
		"tab kept":                 {"a\tb", "a\tb"},
		"bom dropped":              {"\uFEFFhello", "hello"},
		"line separator":           {"a\u2028b", "a\nb"},
		"paragraph separator":      {"a\u2029b", "a\nb"},
		"vertical tab, form feed":  {"a\vb\fc", "a\nb\nc"},
		"trailing spaces":          {"a  \nb\t\t\nc\u3000", "a\nb\nc"},
		"leading indent kept":      {"a\n  b", "a\n  b"},
		"blank runs collapsed":     {"a\n\n\n\n\nb", "a\n\nb"},
		"whitespace-only lines":    {"a\n  \n\t\n \u3000\nb", "a\n\nb"},
		"document trimmed":         {"\n\n  a  \n\n", "a"},
		"invalid utf-8 replaced":   {"a\xffb", "a\uFFFDb"},
		"empty":                    {"", ""},
		"chinese punctuation kept": {"第一条　合同，“甲方”：（一）付款；二、交货！？《民法典》……", "第一条　合同，“甲方”：（一）付款；二、交货！？《民法典》……"},
		"full width kept":          {"ＡＢＣ１２３，。", "ＡＢＣ１２３，。"},
		"mixed":                    {"第一条\r\n\r\n\r\n  The lessee   \u2028应当付款。\x00", "第一条\n\n  The lessee\n应当付款。"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := dataprep.Normalize(tc.in)
			if got != tc.want {
				t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if again := dataprep.Normalize(got); again != got {
				t.Errorf("Normalize is not idempotent: %q -> %q", got, again)
			}
		})
	}
}

// start runs a dataprep service on a fresh bus until the test ends.
func start(t *testing.T) *bus.Bus {
	t.Helper()
	b := bustest.New(t)
	svc, err := dataprep.New(dataprep.Config{Bus: b})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(wait):
			t.Errorf("Run did not return after cancel")
		}
	})
	return b
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// runJob submits a dataprep job and waits until it finishes.
func runJob(t *testing.T, b *bus.Bus, spec string) *busv1.JobRecord {
	t.Helper()
	ctx := testCtx(t)
	rec, err := b.SubmitJob(ctx, bus.KindDataprep, []byte(spec), bus.SubmitOptions{})
	if err != nil {
		t.Fatalf("submit %s: %v", spec, err)
	}
	bustest.WaitFor(t, wait, func() error {
		rec, err = b.GetJob(ctx, rec.Id)
		if err != nil {
			return err
		}
		if !bus.Finished(rec.State) {
			return errors.New("job " + rec.Id + " is " + rec.State.String())
		}
		return nil
	})
	return rec
}

func succeeded(t *testing.T, rec *busv1.JobRecord) dataprep.Result {
	t.Helper()
	if rec.State != busv1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %s: %s %q, want succeeded", rec.Id, rec.State, rec.Error)
	}
	var res dataprep.Result
	if err := json.Unmarshal(rec.ResultJson, &res); err != nil {
		t.Fatalf("result %s: %v", rec.ResultJson, err)
	}
	return res
}

// readDataset returns a registered dataset's record and documents.
func readDataset(t *testing.T, b *bus.Bus, name string) (*busv1.DatasetRecord, []string) {
	t.Helper()
	ctx := testCtx(t)
	rec, err := b.GetDataset(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.GetObject(ctx, rec.Ref)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := corpus.Read(data, rec.Format)
	if err != nil {
		t.Fatal(err)
	}
	return rec, docs
}

func TestBuiltinDemo(t *testing.T) {
	b := start(t)
	res := succeeded(t, runJob(t, b, `{"builtin":"demo","documents":60,"seed":3,"output":"demo-clean"}`))

	if res.Dataset != "demo-clean" || res.InputDocuments != 60 || res.Documents == 0 {
		t.Errorf("result = %+v, want 60 input documents into demo-clean", res)
	}
	if n := res.Documents + res.DroppedShort + res.DroppedDuplicate; n != res.InputDocuments {
		t.Errorf("%d kept + %d short + %d duplicate != %d input", res.Documents, res.DroppedShort, res.DroppedDuplicate, res.InputDocuments)
	}
	rec, docs := readDataset(t, b, "demo-clean")
	if rec.Ref != res.Ref || rec.Size != res.Bytes || rec.Documents != int64(res.Documents) || rec.Format != corpus.FormatJSONL {
		t.Errorf("dataset record %v does not match result %+v", rec, res)
	}
	if len(docs) != res.Documents {
		t.Errorf("dataset holds %d documents, result says %d", len(docs), res.Documents)
	}
	seen := map[string]bool{}
	for i, d := range docs {
		if dataprep.Normalize(d) != d || utf8.RuneCountInString(d) < 20 || seen[d] {
			t.Errorf("document %d is not normalised, long enough and unique: %q", i, d)
		}
		seen[d] = true
	}

	// Same seed, same dataset.
	again := succeeded(t, runJob(t, b, `{"builtin":"demo","documents":60,"seed":3,"output":"demo-again"}`))
	if again.Ref != res.Ref {
		t.Errorf("same seed gave dataset %s, then %s", res.Ref, again.Ref)
	}
}

func TestUploadedDataset(t *testing.T) {
	b := start(t)
	ctx := testCtx(t)
	lease := "The lessee shall pay the rent on the first day of each month."
	zh := "第一条　甲方应当于每月一日前向乙方支付租金，逾期支付的，按日计付违约金。"
	raw := []string{
		lease,
		zh,
		"too short", // dropped: short
		"The lessee shall pay the rent on the first day of each month.   \r\n", // duplicate after normalising
		zh,      // exact duplicate
		"  短  ", // dropped: short
		"Article 2.\r\n\r\n\r\n\r\nThe lessor shall deliver the premises.",
	}
	var buf strings.Builder
	if err := corpus.WriteJSONL(&buf, raw); err != nil {
		t.Fatal(err)
	}
	info, err := b.PutBytes(ctx, []byte(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.PutDataset(ctx, &busv1.DatasetRecord{Name: "raw", Ref: info.Ref, Size: info.Size, Format: corpus.FormatJSONL, Documents: int64(len(raw))}); err != nil {
		t.Fatal(err)
	}

	res := succeeded(t, runJob(t, b, `{"input":"raw","output":"clean"}`))
	want := dataprep.Result{Dataset: "clean", InputDocuments: 7, Documents: 3, DroppedShort: 2, DroppedDuplicate: 2}
	got := res
	got.Ref, got.Bytes, got.Millis = "", 0, 0
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	_, docs := readDataset(t, b, "clean")
	wantDocs := []string{lease, zh, "Article 2.\n\nThe lessor shall deliver the premises."}
	if diff := cmp.Diff(wantDocs, docs); diff != "" {
		t.Errorf("clean documents (-want +got):\n%s", diff)
	}

	// A higher min_chars drops more; the Chinese document (36 characters)
	// and its copy now count as short, not as a duplicate.
	res = succeeded(t, runJob(t, b, `{"input":"raw","output":"long","min_chars":40}`))
	if res.Documents != 2 || res.DroppedShort != 4 || res.DroppedDuplicate != 1 {
		t.Errorf("min_chars 40: result %+v, want 2 kept, 4 short, 1 duplicate", res)
	}

	// Nothing surviving is an error, not an empty dataset.
	rec := runJob(t, b, `{"input":"raw","output":"none","min_chars":1000}`)
	if rec.State != busv1.JobState_JOB_STATE_FAILED || !strings.Contains(rec.Error, "no document of 7 survived") {
		t.Errorf("min_chars 1000: %s %q, want failed with no document surviving", rec.State, rec.Error)
	}
	if _, err := b.GetDataset(ctx, "none"); !errors.Is(err, bus.ErrNotFound) {
		t.Errorf("dataset none after a failed job: %v, want not found", err)
	}
}

func TestBadSpecs(t *testing.T) {
	b := start(t)
	tests := map[string]struct {
		spec string
		want []string // substrings of the job's error
	}{
		"builtin and input": {`{"builtin":"demo","input":"raw","output":"x"}`, []string{"either builtin or input"}},
		"neither":           {`{"output":"x"}`, []string{"set builtin"}},
		"unknown builtin":   {`{"builtin":"wiki","output":"x"}`, []string{`unknown builtin corpus "wiki"`}},
		"output traversal":  {`{"builtin":"demo","output":"../x"}`, []string{`"../x"`, "invalid name"}},
		"output missing":    {`{"builtin":"demo"}`, []string{"name is empty"}},
		"input slash":       {`{"input":"a/b","output":"x"}`, []string{`"a/b"`, "invalid name"}},
		"unknown field":     {`{"builtin":"demo","output":"x","min_char":5}`, []string{`unknown field "min_char"`}},
		"wrong type":        {`{"builtin":"demo","output":"x","documents":"ten"}`, []string{"documents"}},
		"negative min":      {`{"builtin":"demo","output":"x","min_chars":-1}`, []string{"min_chars -1"}},
		"too many docs":     {`{"builtin":"demo","output":"x","documents":2000000}`, []string{"documents 2000000 out of range"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rec := runJob(t, b, tc.spec)
			if rec.State != busv1.JobState_JOB_STATE_FAILED {
				t.Fatalf("%s: %s, want failed", tc.spec, rec.State)
			}
			for _, w := range append(tc.want, "invalid job spec: dataprep") {
				if !strings.Contains(rec.Error, w) {
					t.Errorf("error %q does not mention %q", rec.Error, w)
				}
			}
			if rec.Attempts != 1 {
				t.Errorf("a bad spec ran %d times, want 1 (no retry)", rec.Attempts)
			}
		})
	}
}

func TestMissingInput(t *testing.T) {
	b := start(t)
	rec := runJob(t, b, `{"input":"nope","output":"x"}`)
	if rec.State != busv1.JobState_JOB_STATE_FAILED || !strings.Contains(rec.Error, `dataset "nope"`) || !strings.Contains(rec.Error, bus.ErrNotFound.Error()) {
		t.Errorf("missing input: %s %q, want failed with dataset \"nope\": not found", rec.State, rec.Error)
	}
}

func TestNewNeedsBus(t *testing.T) {
	if _, err := dataprep.New(dataprep.Config{}); err == nil {
		t.Error("New without a bus succeeded")
	}
}
