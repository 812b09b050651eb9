package bpe_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/llmesh/llmesh/services/dataprep/democorpus"
	"github.com/llmesh/llmesh/services/internal/bpe"
)

// corpus returns the text of n demo documents for seed.
func corpus(seed uint64, n int) []string {
	docs := democorpus.Generate(seed, n)
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.Text
	}
	return out
}

var (
	sharedOnce sync.Once
	shared     *bpe.Tokenizer
	sharedErr  error
)

// trained returns a tokenizer trained once per test binary on 400 demo
// documents (about 500 KB).
func trained(t testing.TB) *bpe.Tokenizer {
	t.Helper()
	sharedOnce.Do(func() {
		shared, sharedErr = bpe.Train(context.Background(), corpus(1, 400), bpe.TrainOptions{VocabSize: 3000})
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

var mixedTexts = map[string]string{
	"chinese":    "本院认为，原、被告之间的房屋租赁合同系双方真实意思表示，合法有效。被告应于本判决生效之日起十日内支付租金人民币壹万元整（¥10,000.00）。",
	"english":    "This Agreement is made on March 5, 2023 by and between Acme Trading Co., Ltd. (\"Party A\") and Wei Chen (\"Party B\"). WHEREAS, the Seller isn't liable...",
	"mixed":      "第一条 Goods：甲方向乙方出售laptop computers 120台，单价USD 1,200.00。\n\n\tIN WITNESS WHEREOF  ",
	"specials":   "<|endoftext|>合同<|endoftext|><|endoftext|>end<|endoftext",
	"whitespace": "  \n\n \t\u3000 x  ",
	"emoji":      "合同😀 ok 🇨🇳",
	"invalid":    "ab\xff\xfe中\xe4\xb8文\x80",
	"empty":      "",
}

func TestRoundTrip(t *testing.T) {
	tok := trained(t)
	for name, s := range mixedTexts {
		t.Run(name, func(t *testing.T) {
			got, err := tok.Decode(tok.Encode(s))
			if err != nil {
				t.Fatal(err)
			}
			if got != s {
				t.Errorf("Decode(Encode(%q)) = %q", s, got)
			}
		})
	}
}

func TestRoundTripRandomBytes(t *testing.T) {
	tok := trained(t)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 500 {
		b := make([]byte, r.IntN(300))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if i%2 == 1 { // long runs exercise the heap merge path
			b = bytes.Repeat([]byte("aé中 "[r.IntN(4):][:1]), 200+r.IntN(200))
		}
		s := string(b)
		got, err := tok.Decode(tok.Encode(s))
		if err != nil || got != s {
			t.Fatalf("round trip of %q: got %q, %v", s, got, err)
		}
	}
}

func TestTrainDeterministic(t *testing.T) {
	texts := corpus(5, 150)
	opts := bpe.TrainOptions{VocabSize: 1200}
	a, err := bpe.Train(context.Background(), texts, opts)
	if err != nil {
		t.Fatal(err)
	}
	rev := append([]string(nil), texts...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	b, err := bpe.Train(context.Background(), rev, opts)
	if err != nil {
		t.Fatal(err)
	}
	ja, _ := a.MarshalJSON()
	jb, _ := b.MarshalJSON()
	if !bytes.Equal(ja, jb) {
		t.Fatal("training twice (input reversed) gave different tokenizers")
	}
	if a.VocabSize() != 1200 {
		t.Errorf("VocabSize = %d, want 1200", a.VocabSize())
	}
}

func TestTrainParallelCountingMatches(t *testing.T) {
	// Above 1 MiB the word counts are built in parallel; the result must
	// be the same as training on the same text in one piece.
	texts := corpus(9, 1000)
	opts := bpe.TrainOptions{VocabSize: 800}
	a, err := bpe.Train(context.Background(), texts, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bpe.Train(context.Background(), []string{strings.Join(texts, "\n")}, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Joining adds "\n" pre-tokens, which can change counts of whitespace
	// pairs only; compare the Chinese and English merges by encoding.
	sample := strings.Join(texts[:20], "")
	if diff := cmp.Diff(len(a.Encode(sample)), len(b.Encode(sample))); diff != "" && abs(len(a.Encode(sample))-len(b.Encode(sample))) > len(sample)/100 {
		t.Errorf("parallel and serial training disagree: %s", diff)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestSpecialTokens(t *testing.T) {
	texts := []string{"hello <|im_start|>world<|im_end|> hello world"}
	tok, err := bpe.Train(context.Background(), texts, bpe.TrainOptions{VocabSize: 300, SpecialTokens: []string{"<|im_start|>", "<|im_end|>", "<|endoftext|>"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"<|im_start|>", "<|im_end|>", "<|endoftext|>"}, tok.SpecialTokens()); diff != "" {
		t.Errorf("SpecialTokens (-want +got):\n%s", diff)
	}
	for i, s := range tok.SpecialTokens() {
		if id, ok := tok.TokenID(s); !ok || id != uint32(i) {
			t.Errorf("TokenID(%q) = %d, %v; want %d", s, id, ok, i)
		}
	}
	ids := tok.Encode("a<|im_end|><|endoftext|>b")
	if diff := cmp.Diff([]uint32{ids[0], 1, 2, ids[len(ids)-1]}, ids); diff != "" {
		t.Errorf("specials not recognised (-want +got):\n%s", diff)
	}
	// Specials never take part in merges.
	j, _ := tok.MarshalJSON()
	if bytes.Contains(j, []byte(`"<|im_start|> `)) || bytes.Contains(j, []byte("im_start|>w")) {
		t.Error("a merge involves a special token")
	}

	def, err := bpe.Train(context.Background(), texts, bpe.TrainOptions{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"<|endoftext|>"}, def.SpecialTokens()); diff != "" {
		t.Errorf("default specials (-want +got):\n%s", diff)
	}
	none, err := bpe.Train(context.Background(), texts, bpe.TrainOptions{VocabSize: 300, SpecialTokens: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(none.SpecialTokens()) != 0 {
		t.Errorf("SpecialTokens = %q, want none", none.SpecialTokens())
	}
}

func TestChineseMergesFormWords(t *testing.T) {
	tok := trained(t)
	for _, w := range []string{"合同", "甲方", "乙方", "被告", "原告", "本院认为", "人民币"} {
		if _, ok := tok.TokenID(w); !ok {
			t.Errorf("no token for %q", w)
		}
	}
	// No token spans more than ChunkRunes Han characters.
	j, _ := tok.MarshalJSON()
	loaded, err := bpe.Load(j)
	if err != nil {
		t.Fatal(err)
	}
	for id := range loaded.VocabSize() {
		s, err := loaded.Decode([]uint32{uint32(id)})
		if err != nil {
			t.Fatal(err)
		}
		if n := countHan(s); n > bpe.ChunkRunes {
			t.Errorf("token %d %q has %d Han characters, over %d", id, s, n, bpe.ChunkRunes)
		}
	}
}

func countHan(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x4E00 && r <= 0x9FFF {
			n++
		}
	}
	return n
}

func TestCompression(t *testing.T) {
	tok := trained(t)
	tests := map[string]struct {
		texts []string
		max   float64 // tokens per byte
	}{
		"training text": {corpus(1, 400), 0.25},
		"held out":      {corpus(2, 100), 0.3},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			nBytes, nTok := 0, 0
			for i, ids := range tok.EncodeBatch(tc.texts) {
				nBytes += len(tc.texts[i])
				nTok += len(ids)
			}
			ratio := float64(nTok) / float64(nBytes)
			t.Logf("%d tokens for %d bytes: %.3f tokens/byte", nTok, nBytes, ratio)
			if ratio > tc.max {
				t.Errorf("%.3f tokens per byte, want at most %.2f", ratio, tc.max)
			}
		})
	}
}

func TestEncodeBatchMatchesEncode(t *testing.T) {
	tok := trained(t)
	texts := corpus(4, 50)
	got := tok.EncodeBatch(texts)
	for i, s := range texts {
		if diff := cmp.Diff(tok.Encode(s), got[i]); diff != "" {
			t.Fatalf("text %d (-Encode +EncodeBatch):\n%s", i, diff)
		}
	}
}

func TestDecodeOutOfRange(t *testing.T) {
	tok := trained(t)
	_, err := tok.Decode([]uint32{5, uint32(tok.VocabSize())})
	if !errors.Is(err, bpe.ErrTokenID) {
		t.Fatalf("Decode(out of range) error = %v, want ErrTokenID", err)
	}
	if !strings.Contains(err.Error(), "3000") {
		t.Errorf("error %q does not name the vocabulary size", err)
	}
}

func TestTrainOptionsErrors(t *testing.T) {
	tests := map[string]bpe.TrainOptions{
		"too small":     {VocabSize: 100},
		"too large":     {VocabSize: bpe.MaxVocabSize + 1},
		"empty special": {VocabSize: 300, SpecialTokens: []string{""}},
		"dup special":   {VocabSize: 300, SpecialTokens: []string{"<a>", "<a>"}},
	}
	for name, opts := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := bpe.Train(context.Background(), []string{"x"}, opts); !errors.Is(err, bpe.ErrInvalid) {
				t.Errorf("error = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestTrainStopsOnMinFrequency(t *testing.T) {
	tok, err := bpe.Train(context.Background(), []string{"abab cd"}, bpe.TrainOptions{VocabSize: 1000, MinFrequency: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Only "ab" occurs twice.
	if got, want := tok.VocabSize(), 1+256+1; got != want {
		t.Errorf("VocabSize = %d, want %d", got, want)
	}
}

func TestTrainCancelAndProgress(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := bpe.Train(ctx, corpus(1, 20), bpe.TrainOptions{VocabSize: 1000}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Train error = %v, want context.Canceled", err)
	}
	var calls, last, total int
	_, err := bpe.Train(context.Background(), corpus(1, 50), bpe.TrainOptions{VocabSize: 1000, Progress: func(d, n int) {
		calls++
		last, total = d, n
	}})
	if err != nil {
		t.Fatal(err)
	}
	if calls < 10 || last != total || total != 1000-257 {
		t.Errorf("progress: %d calls, last (%d, %d)", calls, last, total)
	}
}

func TestMarshalLoadRoundTrip(t *testing.T) {
	tok := trained(t)
	j, err := tok.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := bpe.Load(j)
	if err != nil {
		t.Fatal(err)
	}
	j2, _ := back.MarshalJSON()
	if !bytes.Equal(j, j2) {
		t.Error("Load(MarshalJSON()) does not marshal back to the same bytes")
	}
	for name, s := range mixedTexts {
		if diff := cmp.Diff(tok.Encode(s), back.Encode(s)); diff != "" {
			t.Errorf("%s: loaded tokenizer encodes differently (-orig +loaded):\n%s", name, diff)
		}
	}
}
