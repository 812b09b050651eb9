package tokenizer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	"github.com/llmesh/llmesh/bus/tensor"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/dataprep/democorpus"
	"github.com/llmesh/llmesh/services/internal/bpe"
	"github.com/llmesh/llmesh/services/internal/corpus"
	"github.com/llmesh/llmesh/services/tokenizer"
)

const wait = 20 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// start runs a tokenizer service on a fresh bus until the test ends.
func start(t *testing.T) *bus.Bus {
	t.Helper()
	b := bustest.New(t)
	svc, err := tokenizer.New(tokenizer.Config{Bus: b})
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

// testDocs is a small mixed Chinese and English corpus.
func testDocs() []string {
	var docs []string
	for _, d := range democorpus.Generate(7, 30) {
		docs = append(docs, d.Text)
	}
	return append(docs,
		"第一条 The lessee shall pay 租金 monthly. 第二条 甲方 and 乙方 agree.",
		"Article 3: the deposit is 5,000 元 (五千元整).",
	)
}

func putDataset(t *testing.T, b *bus.Bus, name string, docs []string) {
	t.Helper()
	ctx := testCtx(t)
	var buf strings.Builder
	if err := corpus.WriteJSONL(&buf, docs); err != nil {
		t.Fatal(err)
	}
	info, err := b.PutBytes(ctx, []byte(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.PutDataset(ctx, &busv1.DatasetRecord{Name: name, Ref: info.Ref, Size: info.Size, Format: corpus.FormatJSONL, Documents: int64(len(docs))}); err != nil {
		t.Fatal(err)
	}
}

// runJob submits a tokenize job and waits until it finishes.
func runJob(t *testing.T, b *bus.Bus, spec string) *busv1.JobRecord {
	t.Helper()
	ctx := testCtx(t)
	rec, err := b.SubmitJob(ctx, bus.KindTokenize, []byte(spec), bus.SubmitOptions{})
	if err != nil {
		t.Fatalf("submit %s: %v", spec, err)
	}
	bustest.WaitFor(t, wait, func() error {
		rec, err = b.GetJob(ctx, rec.Id)
		if err != nil {
			return err
		}
		if !bus.Finished(rec.State) {
			return fmt.Errorf("job %s is %s", rec.Id, rec.State)
		}
		return nil
	})
	return rec
}

func succeeded(t *testing.T, rec *busv1.JobRecord) tokenizer.Result {
	t.Helper()
	if rec.State != busv1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %s: %s %q, want succeeded", rec.Id, rec.State, rec.Error)
	}
	var res tokenizer.Result
	if err := json.Unmarshal(rec.ResultJson, &res); err != nil {
		t.Fatalf("result %s: %v", rec.ResultJson, err)
	}
	return res
}

// loadTokenizer reads a registered tokenizer from the object store.
func loadTokenizer(t *testing.T, b *bus.Bus, name string) (*busv1.TokenizerRecord, *bpe.Tokenizer) {
	t.Helper()
	ctx := testCtx(t)
	rec, err := b.GetTokenizer(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.GetObject(ctx, rec.Ref)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := bpe.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return rec, tok
}

// shard reads a token shard and returns its ids and metadata.
func shard(t *testing.T, b *bus.Bus, ref string, wantType tensor.DType) ([]uint32, map[string]string) {
	t.Helper()
	payload, err := b.GetObject(testCtx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	return decodeShard(t, payload, wantType)
}

func decodeShard(t *testing.T, payload []byte, wantType tensor.DType) ([]uint32, map[string]string) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	set, err := tensor.Decode(payload, tensor.Limits{}, tensor.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	tt, ok := set.Get("tokens")
	if !ok || len(set.Tensors) != 1 {
		t.Fatalf("shard holds %d tensors, want one called tokens", len(set.Tensors))
	}
	if tt.DType != wantType || len(tt.Shape) != 1 {
		t.Fatalf("tokens tensor is %s %v, want one-dimensional %s", tt.DType, tt.Shape, wantType)
	}
	var ids []uint32
	if wantType == tensor.Uint16 {
		u, err := tensor.Uint16s(tt)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range u {
			ids = append(ids, uint32(id))
		}
	} else {
		u, err := tensor.Uint32s(tt)
		if err != nil {
			t.Fatal(err)
		}
		ids = slices.Clone(u)
	}
	if len(ids) != tt.Shape[0] {
		t.Fatalf("tokens tensor of shape %v has %d ids", tt.Shape, len(ids))
	}
	return ids, set.Meta
}

// splitDocs decodes a shard back into its documents.
func splitDocs(t *testing.T, tok *bpe.Tokenizer, ids []uint32) []string {
	t.Helper()
	eot, ok := tok.TokenID(tokenizer.EndOfText)
	if !ok {
		t.Fatalf("tokenizer has no %s", tokenizer.EndOfText)
	}
	if len(ids) == 0 || ids[len(ids)-1] != eot {
		t.Fatalf("shard of %d ids does not end with %s", len(ids), tokenizer.EndOfText)
	}
	var docs []string
	for doc := range strings.SplitSeq(string(mustDecode(t, tok, ids)), tokenizer.EndOfText) {
		docs = append(docs, doc)
	}
	return docs[:len(docs)-1]
}

func mustDecode(t *testing.T, tok *bpe.Tokenizer, ids []uint32) string {
	t.Helper()
	s, err := tok.Decode(ids)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenizeJob(t *testing.T) {
	b := start(t)
	docs := testDocs()
	putDataset(t, b, "small", docs)

	res := succeeded(t, runJob(t, b, `{"dataset":"small","vocab_size":300,"val_fraction":0.2}`))
	if res.Tokenizer != "small" || res.Documents != len(docs) || res.VocabSize != 300 {
		t.Errorf("result = %+v, want tokenizer small of 300 tokens over %d documents", res, len(docs))
	}
	rec, tok := loadTokenizer(t, b, "small")
	if rec.Ref != res.TokenizerRef || int(rec.VocabSize) != res.VocabSize || rec.Dataset != "small" || tok.VocabSize() != res.VocabSize {
		t.Errorf("tokenizer record %v (loaded vocabulary %d) does not match result %+v", rec, tok.VocabSize(), res)
	}

	var all []string
	for split, sh := range map[string]struct {
		ref string
		n   int
	}{"train": {res.TrainRef, res.TrainTokens}, "val": {res.ValRef, res.ValTokens}} {
		ids, meta := shard(t, b, sh.ref, tensor.Uint16)
		if len(ids) != sh.n || sh.n == 0 {
			t.Errorf("%s shard has %d tokens, result says %d", split, len(ids), sh.n)
		}
		for i, id := range ids {
			if int(id) >= res.VocabSize {
				t.Fatalf("%s token %d is %d, not below vocab_size %d", split, i, id, res.VocabSize)
			}
		}
		want := map[string]string{"split": split, "tokenizer": "small", "dataset": "small", "tokenizer_ref": res.TokenizerRef}
		if split == "train" {
			want["shard"], want["shards"] = "0", "1"
		}
		if diff := cmp.Diff(want, meta); diff != "" {
			t.Errorf("%s shard metadata (-want +got):\n%s", split, diff)
		}
		all = append(all, splitDocs(t, tok, ids)...)
	}
	// Every document lands in exactly one split and decodes back to itself.
	if diff := cmp.Diff(docs, all, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("documents decoded from the shards (-want +got):\n%s", diff)
	}
}

func TestUseExisting(t *testing.T) {
	b := start(t)
	ctx := testCtx(t)
	putDataset(t, b, "small", testDocs())
	first := succeeded(t, runJob(t, b, `{"dataset":"small","vocab_size":300}`))

	job := runJob(t, b, `{"dataset":"small","use":"small"}`)
	second := succeeded(t, job)
	if second.TrainSeconds != 0 {
		t.Errorf("use: train_seconds = %g, want 0 (no training)", second.TrainSeconds)
	}
	for what, pair := range map[string][2]any{
		"tokenizer ref": {first.TokenizerRef, second.TokenizerRef},
		"vocab size":    {first.VocabSize, second.VocabSize},
		"train shard":   {first.TrainRef, second.TrainRef},
		"val shard":     {first.ValRef, second.ValRef},
		"train tokens":  {first.TrainTokens, second.TrainTokens},
		"val tokens":    {first.ValTokens, second.ValTokens},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s: trained %v, reused %v", what, pair[0], pair[1])
		}
	}
	events, err := b.WatchEvents(ctx, job.Id)
	if err != nil {
		t.Fatal(err)
	}
	for ev := range events {
		if p := ev.GetProgress(); p != nil && p.Stage == "train-tokenizer" {
			t.Errorf("use: progress of stage %s: %v", p.Stage, p)
		}
		if a := ev.GetArtifact(); a != nil && a.Kind == "tokenizer" {
			t.Errorf("use: registered a tokenizer: %v", a)
		}
	}
	list, err := b.ListTokenizers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Errorf("%d tokenizers registered, want 1", len(list))
	}
}

func TestJobErrors(t *testing.T) {
	b := start(t)
	putDataset(t, b, "small", testDocs())
	putDataset(t, b, "single", []string{"only one document here"})
	tests := map[string]struct {
		spec string
		want []string // substrings of the job's error
	}{
		"vocab too small":   {`{"dataset":"small","vocab_size":10}`, []string{"invalid job spec", "vocab_size 10 out of range"}},
		"vocab too large":   {`{"dataset":"small","vocab_size":2000000}`, []string{"invalid job spec", "vocab_size 2000000 out of range"}},
		"val fraction 0.7":  {`{"dataset":"small","val_fraction":0.7}`, []string{"invalid job spec", "val_fraction 0.7 out of range"}},
		"val fraction < 0":  {`{"dataset":"small","val_fraction":-0.1}`, []string{"invalid job spec", "val_fraction -0.1 out of range"}},
		"min frequency":     {`{"dataset":"small","min_frequency":-1}`, []string{"invalid job spec", "min_frequency -1"}},
		"unknown field":     {`{"dataset":"small","vocab":300}`, []string{"invalid job spec", `unknown field "vocab"`}},
		"dataset slash":     {`{"dataset":"a/b"}`, []string{"invalid job spec", `dataset: name "a/b"`}},
		"no dataset":        {`{}`, []string{"invalid job spec", "dataset: name is empty"}},
		"tokenizer path":    {`{"dataset":"small","tokenizer":"../t"}`, []string{"invalid job spec", `tokenizer: name "../t"`}},
		"use path":          {`{"dataset":"small","use":"x/y"}`, []string{"invalid job spec", `use: tokenizer: name "x/y"`}},
		"missing dataset":   {`{"dataset":"nope"}`, []string{`dataset "nope"`, "not found"}},
		"missing tokenizer": {`{"dataset":"small","use":"nope"}`, []string{`tokenizer "nope"`, "not found"}},
		"one document":      {`{"dataset":"single"}`, []string{`dataset "single" has 1 documents`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rec := runJob(t, b, tc.spec)
			if rec.State != busv1.JobState_JOB_STATE_FAILED {
				t.Fatalf("%s: %s, want failed", tc.spec, rec.State)
			}
			for _, w := range tc.want {
				if !strings.Contains(rec.Error, w) {
					t.Errorf("error %q does not mention %q", rec.Error, w)
				}
			}
		})
	}
}

func TestSpecDefaults(t *testing.T) {
	s := tokenizer.Spec{Dataset: "d"}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	want := tokenizer.Spec{Dataset: "d", Tokenizer: "d", VocabSize: 1024, MinFrequency: 2, ValFraction: 0.05, Shards: 1}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

// registerTokenizer trains a tokenizer on docs and registers it as name.
func registerTokenizer(t *testing.T, b *bus.Bus, name string, docs []string, vocab int) *bpe.Tokenizer {
	t.Helper()
	ctx := testCtx(t)
	tok, err := bpe.Train(ctx, docs, bpe.TrainOptions{VocabSize: vocab, SpecialTokens: []string{tokenizer.EndOfText}})
	if err != nil {
		t.Fatal(err)
	}
	js, err := tok.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	info, err := b.PutBytes(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.PutTokenizer(ctx, &busv1.TokenizerRecord{Name: name, Ref: info.Ref, VocabSize: int32(tok.VocabSize())}); err != nil {
		t.Fatal(err)
	}
	return tok
}

// request sends req on subject and decodes the reply into reply, waiting
// for the service to subscribe.
func request(t *testing.T, b *bus.Bus, subject string, data []byte, reply proto.Message) {
	t.Helper()
	var msg *nats.Msg
	bustest.WaitFor(t, wait, func() error {
		var err error
		msg, err = b.Conn().Request(subject, data, 5*time.Second)
		return err
	})
	if err := proto.Unmarshal(msg.Data, reply); err != nil {
		t.Fatalf("reply on %s: %v", subject, err)
	}
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestEncodeDecode(t *testing.T) {
	b := start(t)
	tok := registerTokenizer(t, b, "mixed", testDocs(), 300)
	texts := []string{
		"第一条 The lessee shall pay 租金 monthly.",
		"Hello, 世界! 123 元整。",
		"",
		"tabs\tand\nnewlines, emoji 🙂, ＡＢＣ，“引号”",
		"text with " + tokenizer.EndOfText + " inside",
	}

	var enc busv1.EncodeReply
	request(t, b, bus.TokenizerEncodeSubject, marshal(t, &busv1.EncodeRequest{Tokenizer: "mixed", Texts: texts}), &enc)
	if enc.Error != "" || len(enc.Tokens) != len(texts) {
		t.Fatalf("encode: %d sequences, error %q; want %d sequences", len(enc.Tokens), enc.Error, len(texts))
	}
	for i, ids := range enc.Tokens {
		if diff := cmp.Diff(tok.Encode(texts[i]), ids.Ids, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("encode %q: ids differ from the local tokenizer (-want +got):\n%s", texts[i], diff)
		}
	}
	eot, _ := tok.TokenID(tokenizer.EndOfText)
	if !slices.Contains(enc.Tokens[4].Ids, eot) {
		t.Errorf("encode %q: no %s id %d in %v", texts[4], tokenizer.EndOfText, eot, enc.Tokens[4].Ids)
	}

	var dec busv1.DecodeReply
	request(t, b, bus.TokenizerDecodeSubject, marshal(t, &busv1.DecodeRequest{Tokenizer: "mixed", Tokens: enc.Tokens}), &dec)
	if dec.Error != "" {
		t.Fatalf("decode: %s", dec.Error)
	}
	if diff := cmp.Diff(texts, dec.Texts); diff != "" {
		t.Errorf("decode(encode(texts)) (-want +got):\n%s", diff)
	}
}

func TestOnlineErrors(t *testing.T) {
	b := start(t)
	tok := registerTokenizer(t, b, "mixed", testDocs(), 300)
	vocab := uint32(tok.VocabSize())
	many := make([]string, tokenizer.MaxRequestTexts+1)
	manyIDs := make([]*busv1.TokenIDs, tokenizer.MaxRequestTexts+1)
	for i := range manyIDs {
		manyIDs[i] = &busv1.TokenIDs{Ids: []uint32{1}}
	}
	tests := map[string]struct {
		subject string
		req     []byte
		want    []string
	}{
		"encode unknown tokenizer": {bus.TokenizerEncodeSubject, marshal(t, &busv1.EncodeRequest{Tokenizer: "nope", Texts: []string{"a"}}), []string{`tokenizer "nope"`, "not found"}},
		"decode unknown tokenizer": {bus.TokenizerDecodeSubject, marshal(t, &busv1.DecodeRequest{Tokenizer: "nope"}), []string{`tokenizer "nope"`, "not found"}},
		"encode bad name":          {bus.TokenizerEncodeSubject, marshal(t, &busv1.EncodeRequest{Tokenizer: "../x"}), []string{`"../x"`, "invalid name"}},
		"encode no name":           {bus.TokenizerEncodeSubject, marshal(t, &busv1.EncodeRequest{Texts: []string{"a"}}), []string{"name is empty"}},
		"encode malformed":         {bus.TokenizerEncodeSubject, []byte{0xff}, []string{"malformed encode request"}},
		"decode malformed":         {bus.TokenizerDecodeSubject, []byte{0xff}, []string{"malformed decode request"}},
		"encode too many texts":    {bus.TokenizerEncodeSubject, marshal(t, &busv1.EncodeRequest{Tokenizer: "mixed", Texts: many}), []string{"1025 texts; the limit is 1024"}},
		"decode too many":          {bus.TokenizerDecodeSubject, marshal(t, &busv1.DecodeRequest{Tokenizer: "mixed", Tokens: manyIDs}), []string{"1025 sequences; the limit is 1024"}},
		"decode id out of range": {bus.TokenizerDecodeSubject, marshal(t, &busv1.DecodeRequest{Tokenizer: "mixed", Tokens: []*busv1.TokenIDs{{Ids: []uint32{5}}, {Ids: []uint32{1, vocab}}}}),
			[]string{fmt.Sprintf("id %d is not in the vocabulary (size %d)", vocab, vocab)}},
		"decode huge id": {bus.TokenizerDecodeSubject, marshal(t, &busv1.DecodeRequest{Tokenizer: "mixed", Tokens: []*busv1.TokenIDs{{Ids: []uint32{1 << 31}}}}),
			[]string{"not in the vocabulary"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var errMsg string
			var results int
			if tc.subject == bus.TokenizerEncodeSubject {
				var r busv1.EncodeReply
				request(t, b, tc.subject, tc.req, &r)
				errMsg, results = r.Error, len(r.Tokens)
			} else {
				var r busv1.DecodeReply
				request(t, b, tc.subject, tc.req, &r)
				errMsg, results = r.Error, len(r.Texts)
			}
			if results != 0 {
				t.Errorf("reply with error %q carries %d results, want none", errMsg, results)
			}
			for _, w := range tc.want {
				if !strings.Contains(errMsg, w) {
					t.Errorf("reply error %q does not mention %q", errMsg, w)
				}
			}
		})
	}
}

func TestEncodeShard(t *testing.T) {
	tests := map[string]struct {
		ids   []uint32
		vocab int
		dtype tensor.DType
	}{
		"small vocab":         {[]uint32{0, 1, 299}, 300, tensor.Uint16},
		"exactly 65536":       {[]uint32{0, 65535}, 1 << 16, tensor.Uint16},
		"just above 65536":    {[]uint32{0, 65535, 65536}, 1<<16 + 1, tensor.Uint32},
		"large vocab":         {[]uint32{7, 70000, 99999}, 100000, tensor.Uint32},
		"one id, large vocab": {[]uint32{1<<20 - 1}, 1 << 20, tensor.Uint32},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			meta := map[string]string{"split": "train", "dataset": "d"}
			payload, err := tokenizer.EncodeShard(tc.ids, tc.vocab, meta)
			if err != nil {
				t.Fatal(err)
			}
			ids, gotMeta := decodeShard(t, payload, tc.dtype)
			if diff := cmp.Diff(tc.ids, ids, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(meta, gotMeta); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
		})
	}
}

// An empty shard cannot be stored (Arrow tensors need an element); the
// service never makes one, since every document ends with EndOfText.
func TestEncodeShardEmpty(t *testing.T) {
	if _, err := tokenizer.EncodeShard(nil, 300, nil); err == nil {
		t.Error("EncodeShard(nil) succeeded")
	}
}

func TestNewNeedsBus(t *testing.T) {
	if _, err := tokenizer.New(tokenizer.Config{}); err == nil {
		t.Error("New without a bus succeeded")
	}
}
