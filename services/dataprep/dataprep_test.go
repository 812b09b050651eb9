package dataprep_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/dataprep"
	"github.com/llmesh/llmesh/services/dataprep/normalize"
	"github.com/llmesh/llmesh/services/dataprep/synth"
	"github.com/llmesh/llmesh/services/internal/corpus"
)

const wait = 150 * time.Second

// runService runs one dataprep instance on b until ctx ends or the test does.
func runService(t *testing.T, ctx context.Context, b *bus.Bus) {
	t.Helper()
	svc, err := dataprep.New(dataprep.Config{Bus: b, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
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
}

// start runs a dataprep service on a fresh bus until the test ends.
func start(t *testing.T) *bus.Bus {
	t.Helper()
	b := bustest.New(t)
	runService(t, context.Background(), b)
	return b
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func submit(t *testing.T, b *bus.Bus, spec string) string {
	t.Helper()
	rec, err := b.SubmitJob(testCtx(t), bus.KindDataprep, []byte(spec), bus.SubmitOptions{})
	if err != nil {
		t.Fatalf("submit %s: %v", spec, err)
	}
	return rec.Id
}

func await(t *testing.T, b *bus.Bus, id string) *busv1.JobRecord {
	t.Helper()
	ctx := testCtx(t)
	var rec *busv1.JobRecord
	bustest.WaitFor(t, wait, func() error {
		var err error
		if rec, err = b.GetJob(ctx, id); err != nil {
			return err
		}
		if !bus.Finished(rec.State) {
			return errors.New("job " + id + " is " + rec.State.String())
		}
		return nil
	})
	return rec
}

// runJob submits a dataprep job and waits until it finishes.
func runJob(t *testing.T, b *bus.Bus, spec string) *busv1.JobRecord {
	t.Helper()
	return await(t, b, submit(t, b, spec))
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
func readDataset(t *testing.T, b *bus.Bus, name string) (*busv1.DatasetRecord, []corpus.Doc) {
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
	docs, _, _, err := corpus.ReadDocs(data, rec.Format)
	if err != nil {
		t.Fatal(err)
	}
	return rec, docs
}

// dropped sums a result's drops over every stage.
func dropped(res dataprep.Result) int {
	n := 0
	for _, st := range res.Stages {
		for _, c := range st.Dropped {
			n += c
		}
	}
	return n
}

func TestBuiltinDemo(t *testing.T) {
	b := start(t)
	res := succeeded(t, runJob(t, b, `{"builtin":"demo","documents":80,"seed":3,"output":"demo-clean"}`))
	if res.InputDocuments != 80 || res.Documents == 0 || res.Format != corpus.FormatParquet {
		t.Fatalf("result = %+v", res)
	}
	if res.Documents+dropped(res) != res.InputDocuments {
		t.Errorf("%d kept + %d dropped != %d input (stages %v)", res.Documents, dropped(res), res.InputDocuments, res.Stages)
	}
	rec, docs := readDataset(t, b, "demo-clean")
	if rec.Ref != res.Ref || rec.Documents != int64(res.Documents) || len(docs) != res.Documents || rec.Format != corpus.FormatParquet {
		t.Errorf("dataset record %v / %d documents do not match result %+v", rec, len(docs), res)
	}
	labels := map[string]int{}
	for i, d := range docs {
		if normalize.Text(d.Text) != d.Text || !utf8.ValidString(d.Text) {
			t.Errorf("document %d is not normalised", i)
		}
		labels[d.Label]++
	}
	if labels["contract"] == 0 || labels["judgment"] == 0 || res.Labels == nil {
		t.Errorf("labels = %v (report %+v), want contracts and judgments", labels, res.Labels)
	}
	// The tokenizer reads the Parquet output as it is.
	if texts, err := corpus.Read(mustObject(t, b, res.Ref), corpus.FormatParquet); err != nil || len(texts) != len(docs) {
		t.Errorf("corpus.Read of the output = %d texts, %v", len(texts), err)
	}
	again := succeeded(t, runJob(t, b, `{"builtin":"demo","documents":80,"seed":3,"output":"demo-again"}`))
	if again.Ref != res.Ref {
		t.Errorf("same seed gave dataset %s, then %s", res.Ref, again.Ref)
	}
}

func mustObject(t *testing.T, b *bus.Bus, ref string) []byte {
	t.Helper()
	data, err := b.GetObject(testCtx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// upload registers a JSONL dataset built from raw lines.
func upload(t *testing.T, b *bus.Bus, name string, lines []string) {
	t.Helper()
	ctx := testCtx(t)
	data := []byte(strings.Join(lines, "\n") + "\n")
	info, err := b.PutBytes(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.PutDataset(ctx, &busv1.DatasetRecord{Name: name, Ref: info.Ref, Size: info.Size, Format: corpus.FormatJSONL, Documents: int64(len(lines))}); err != nil {
		t.Fatal(err)
	}
}

func line(id, title, text string) string {
	b, _ := json.Marshal(map[string]string{"id": id, "title": title, "text": text})
	return string(b)
}

// baseDocs are distinct, clean legal documents (low mutual similarity).
var baseDocs = func() []string {
	c := synth.Generate(synth.Config{Seed: 9, Base: 60})
	var out []string
	for _, d := range c.Docs {
		out = append(out, d.Text)
	}
	return out
}()

func legalDoc(i int) string { return baseDocs[i] }

// nearCopy changes the last few percent of a document.
func nearCopy(s string) string {
	r := []rune(s)
	cut := len(r) * 97 / 100
	return string(r[:cut]) + "（本条另有约定的除外）"
}

func TestUploadedDataset(t *testing.T) {
	b := start(t)
	var lines []string
	for i := range 40 {
		lines = append(lines, line(fmt.Sprint(i), "", legalDoc(i)))
	}
	base := legalDoc(3)
	lines = append(lines,
		line("dup", "", base),               // exact duplicate of document 3
		line("dup-ws", "", base+"\r\n\r\n"), // the same after normalisation
		line("near", "", nearCopy(base)),    // a near duplicate
		line("short", "", "太短。"),
		line("pii", "", legalDoc(50)+"联系邮箱 zhang.san@example.com，手机13812345678。"),
		"not json at all",
		`{"title":"no text"}`,
	)
	upload(t, b, "raw", lines)
	res := succeeded(t, runJob(t, b, `{"input":"raw","output":"clean","format":"jsonl"}`))
	if res.InputDocuments != 45 || res.BadRecords != 2 || len(res.BadSamples) != 2 {
		t.Errorf("input %d, bad %d %v; want 45 read and 2 bad records reported", res.InputDocuments, res.BadRecords, res.BadSamples)
	}
	if res.Stages["exact_dedup"].Dropped["duplicate"] != 2 {
		t.Errorf("exact dedup dropped %v, want 2 duplicates", res.Stages["exact_dedup"].Dropped)
	}
	if res.Stages["near_dedup"].Dropped["near_duplicate"] != 1 {
		t.Errorf("near dedup dropped %v, want 1", res.Stages["near_dedup"].Dropped)
	}
	if res.Stages["quality"].Dropped["min_chars"] != 1 {
		t.Errorf("quality dropped %v, want the short document", res.Stages["quality"].Dropped)
	}
	_, docs := readDataset(t, b, "clean")
	if len(docs) != res.Documents || res.Documents != 41 {
		t.Fatalf("%d documents in the dataset, result %d; want 41", len(docs), res.Documents)
	}
	var scrubbed *corpus.Doc
	for i := range docs {
		if docs[i].ID == "pii" {
			scrubbed = &docs[i]
		}
	}
	if scrubbed == nil || strings.Contains(scrubbed.Text, "13812345678") || strings.Contains(scrubbed.Text, "zhang.san") || len(scrubbed.Redactions) != 2 {
		t.Errorf("PII document = %+v, want both values scrubbed and 2 redaction spans", scrubbed)
	}
}

// TestShardsAndInstances: a job split into 5 shards over two instances,
// one of which stops mid-job (its shard is handed back and redone), gives
// byte for byte the dataset one instance gives; and the same documents as
// one shard (the Parquet file then has one row group instead of five).
func TestShardsAndInstances(t *testing.T) {
	b := start(t)
	one := succeeded(t, runJob(t, b, `{"builtin":"demo","documents":300,"seed":5,"output":"one","shards":1}`))
	five := succeeded(t, runJob(t, b, `{"builtin":"demo","documents":300,"seed":5,"output":"five","shards":5}`))

	b2 := bustest.New(t)
	ctxA, stopA := context.WithCancel(context.Background())
	runService(t, ctxA, b2)
	runService(t, context.Background(), b2)
	id := submit(t, b2, `{"builtin":"demo","documents":300,"seed":5,"output":"five","shards":5}`)
	stopA() // instance A stops at once; whatever it held is redone by B
	two := succeeded(t, await(t, b2, id))
	if two.Shards != 5 || one.Shards != 1 {
		t.Fatalf("shards = %d and %d", one.Shards, two.Shards)
	}
	if two.Ref != five.Ref {
		t.Errorf("5 shards on 2 instances gave %s, on 1 instance %s", two.Ref, five.Ref)
	}
	_, d1 := readDataset(t, b, "one")
	_, d5 := readDataset(t, b, "five")
	if len(d1) != len(d5) || len(d1) != one.Documents {
		t.Fatalf("1 shard: %d documents, 5 shards: %d", len(d1), len(d5))
	}
	for i := range d1 {
		if d1[i].Text != d5[i].Text || d1[i].Label != d5[i].Label {
			t.Fatalf("document %d differs between 1 and 5 shards", i)
		}
	}
}

func TestBadSpecs(t *testing.T) {
	b := start(t)
	for name, tc := range map[string]struct{ spec, want string }{
		"both":              {`{"builtin":"demo","input":"x","output":"o"}`, "either builtin or input"},
		"neither":           {`{"output":"o"}`, "set builtin"},
		"unknown builtin":   {`{"builtin":"wiki","output":"o"}`, "unknown builtin"},
		"path in output":    {`{"builtin":"demo","output":"../x"}`, "invalid name"},
		"unknown field":     {`{"builtin":"demo","output":"o","stagez":[]}`, "unknown field"},
		"unknown stage":     {`{"builtin":"demo","output":"o","stages":[{"name":"spellcheck"}]}`, `unknown stage "spellcheck"`},
		"stage twice":       {`{"builtin":"demo","output":"o","stages":[{"name":"pii"},{"name":"pii"}]}`, "listed twice"},
		"bad stage config":  {`{"builtin":"demo","output":"o","stages":[{"name":"pii","config":{"action":"shout"}}]}`, "action"},
		"stage config typo": {`{"builtin":"demo","output":"o","stages":[{"name":"near_dedup","config":{"bandz":4}}]}`, "unknown field"},
		"bad format":        {`{"builtin":"demo","output":"o","format":"csv"}`, "format"},
		"missing dataset":   {`{"input":"nope","output":"o"}`, "not found"},
	} {
		t.Run(name, func(t *testing.T) {
			rec := runJob(t, b, tc.spec)
			if rec.State != busv1.JobState_JOB_STATE_FAILED || !strings.Contains(rec.Error, tc.want) {
				t.Errorf("job = %s %q, want failed mentioning %q", rec.State, rec.Error, tc.want)
			}
		})
	}
}

func TestProcessLocal(t *testing.T) {
	var docs []corpus.Doc
	for i := range 30 {
		docs = append(docs, corpus.Doc{ID: fmt.Sprint(i), Text: legalDoc(i)})
	}
	docs = append(docs, corpus.Doc{ID: "dup", Text: docs[0].Text}, corpus.Doc{ID: "bad", Text: "a\xffb 很短"})
	spec := dataprep.Spec{Stages: []dataprep.StageSpec{{Name: "normalize"}, {Name: "quality"}, {Name: "exact_dedup"},
		{Name: "augment", Config: json.RawMessage(`{"delete_rate":0.5,"max_span":3,"copies":1}`)}}}
	out, res, err := dataprep.Process(context.Background(), spec, docs)
	if err != nil {
		t.Fatal(err)
	}
	if res.InvalidUTF8 != 1 || res.Stages["exact_dedup"].Dropped["duplicate"] != 1 || res.Augmented == 0 {
		t.Errorf("result = %+v", res)
	}
	if len(out) != 30+res.Augmented {
		t.Errorf("%d documents out, want 30 + %d augmented", len(out), res.Augmented)
	}
	if _, _, err := dataprep.Process(context.Background(), dataprep.Spec{Stages: []dataprep.StageSpec{{Name: "nope"}}}, docs); err == nil {
		t.Error("unknown stage accepted")
	}
}

func TestNewNeedsBus(t *testing.T) {
	if _, err := dataprep.New(dataprep.Config{}); err == nil {
		t.Fatal("New without a bus succeeded")
	}
}
