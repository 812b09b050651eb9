package bpe_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/llmesh/llmesh/services/internal/bpe"
)

// rankFile builds a rank file: the 256 bytes at ranks 0..255, then extra
// tokens at 256 onwards.
func rankFile(extra ...string) string {
	var b strings.Builder
	for i := 0; i < 256; i++ {
		fmt.Fprintf(&b, "%s %d\n", base64.StdEncoding.EncodeToString([]byte{byte(i)}), i)
	}
	for i, s := range extra {
		fmt.Fprintf(&b, "%s %d\n", base64.StdEncoding.EncodeToString([]byte(s)), 256+i)
	}
	return b.String()
}

func TestLoadTiktokenRankMerge(t *testing.T) {
	// Ranks: ab 256, bc 257, cd 258, abcd 259, " x" 260. In "xabcdx" ab
	// merges first, then cd, then (ab)(cd): tiktoken joins any two parts
	// whose concatenation is a token, though no merge names that pair.
	tok, err := bpe.LoadTiktoken([]byte(rankFile("ab", "bc", "cd", "abcd", " x")), bpe.R50kBase)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string][]uint32{
		"abc":             {256, 'c'},
		"bcd":             {257, 'd'},
		"abcd":            {259}, // the whole pre-token is a token
		"xabcdx":          {'x', 259, 'x'},
		" x<|endoftext|>": {260, 50256},
	}
	for in, want := range tests {
		if diff := cmp.Diff(want, tok.Encode(in)); diff != "" {
			t.Errorf("Encode(%q) (-want +got):\n%s", in, diff)
		}
	}
	if id, ok := tok.TokenID("<|endoftext|>"); !ok || id != 50256 {
		t.Errorf("TokenID(<|endoftext|>) = %d, %v", id, ok)
	}
}

func TestLoadTiktokenErrors(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := map[string]struct {
		file string
		enc  bpe.Encoding
		want string
	}{
		"empty":         {"", bpe.R50kBase, "no tokens"},
		"no rank":       {rankFile() + b64("ab") + "\n", bpe.R50kBase, "line 257 (\"YWI=\") has no rank"},
		"empty rank":    {rankFile() + b64("ab") + " \n", bpe.R50kBase, "line 257: rank \"\": empty"},
		"negative rank": {rankFile() + b64("ab") + " -3\n", bpe.R50kBase, "not a decimal number"},
		"rank text":     {rankFile() + b64("ab") + " 1x\n", bpe.R50kBase, "not a decimal number"},
		"two spaces":    {rankFile() + b64("ab") + "  300\n", bpe.R50kBase, "not a decimal number"},
		"huge rank":     {rankFile() + b64("ab") + " 99999999999\n", bpe.R50kBase, "over the limit of 2097151"},
		"rank limit":    {rankFile() + b64("ab") + " 2097152\n", bpe.R50kBase, "over the limit of 2097151"},
		"bad base64":    {rankFile() + "@@@ 300\n", bpe.R50kBase, "line 257: token \"@@@\" is not base64"},
		"no padding":    {rankFile() + "YWI 300\n", bpe.R50kBase, "is not base64"},
		"empty token":   {rankFile() + " 300\n", bpe.R50kBase, "line 257: token is empty"},
		"dup token":     {rankFile() + b64("a") + " 300\n", bpe.R50kBase, "line 257: token \"a\" repeats line 98"},
		"dup rank":      {rankFile() + b64("ab") + " 5\n", bpe.R50kBase, "line 257: rank 5 repeats line 6"},
		"missing byte":  {strings.SplitN(rankFile(), "\n", 2)[1], bpe.R50kBase, "no token for byte 0x00"},
		"special clash": {rankFile() + b64("ab") + " 50256\n", bpe.R50kBase, "rank 50256 is the id of special token \"<|endoftext|>\""},
		"special token": {rankFile() + b64("<|endoftext|>") + " 300\n", bpe.R50kBase, "is special in r50k_base"},
		"sparse":        {rankFile() + b64("ab") + " 2000000\n", bpe.R50kBase, "leaves more than 1024 ranks unused"},
		"long token":    {rankFile() + b64(strings.Repeat("x", 1025)) + " 300\n", bpe.R50kBase, "line 257: token is 1025 bytes, over the limit of 1024"},
		"long base64":   {rankFile() + strings.Repeat("QUFB", 400) + " 300\n", bpe.R50kBase, "line 257: token is 1600 base64 bytes, over the limit of 1368"},
		"bad encoding":  {rankFile(), bpe.Encoding(9), "unknown encoding Encoding(9)"},
		"zero encoding": {rankFile(), 0, "unknown encoding"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := bpe.LoadTiktoken([]byte(tc.file), tc.enc)
			if !errors.Is(err, bpe.ErrInvalid) {
				t.Fatalf("error = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestLoadTiktokenTooLarge(t *testing.T) {
	_, err := bpe.LoadTiktoken(make([]byte, bpe.MaxFileBytes+1), bpe.Cl100kBase)
	if !errors.Is(err, bpe.ErrInvalid) || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("error = %v", err)
	}
}

func TestLoadTiktokenLineEnds(t *testing.T) {
	crlf := strings.ReplaceAll(rankFile("ab"), "\n", "\r\n") + "\n\n"
	tok, err := bpe.LoadTiktoken([]byte(strings.TrimSuffix(crlf, "\n")), bpe.Cl100kBase)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint32{256, 100257}, tok.Encode("ab<|endoftext|>")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestMarshalTiktoken writes the reference rank files back byte for byte,
// and a trained tokenizer's ordinary tokens with ranks = ids.
func TestMarshalTiktoken(t *testing.T) {
	for _, p := range references(t) {
		got, err := p.ours.MarshalTiktoken()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, p.rank) {
			t.Errorf("%v: MarshalTiktoken differs from the rank file it was loaded from", p.enc)
		}
	}
	tok := trained(t)
	data, err := tok.MarshalTiktoken()
	if err != nil {
		t.Fatal(err)
	}
	back, err := bpe.LoadTiktoken(data, bpe.R50kBase)
	if err != nil {
		t.Fatal(err)
	}
	for id := range tok.VocabSize() {
		want, _ := tok.Decode([]uint32{uint32(id)})
		if _, special := tok.TokenID(want); special && id < len(tok.SpecialTokens()) {
			continue
		}
		if got, err := back.Decode([]uint32{uint32(id)}); err != nil || got != want {
			t.Fatalf("token %d: %q, %v after the rank file; want %q", id, got, err, want)
		}
	}
	for name, s := range mixedTexts {
		if got, _ := back.Decode(back.Encode(s)); got != s {
			t.Errorf("%s: rank-file tokenizer does not round-trip", name)
		}
	}

	notSpecial := hfFile(map[string]int{"he": 256}, `["h e"]`, `{"id":300,"content":"<x>","special":false}`)
	hf, err := bpe.Load([]byte(notSpecial))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hf.MarshalTiktoken(); !errors.Is(err, bpe.ErrInvalid) || !strings.Contains(err.Error(), `"<x>" (id 300) is not special`) {
		t.Errorf("MarshalTiktoken with a non-special added token: %v", err)
	}
}

// TestTiktokenViaTokenizerJSON saves rank-loaded tokenizers as
// tokenizer.json (merges derived from ranks, as HuggingFace converts
// tiktoken files), loads them back in merges mode, and checks that they
// encode the mixed corpus and the nasty cases as the originals do.
func TestTiktokenViaTokenizerJSON(t *testing.T) {
	texts := append(parityCorpus(t, 2), func() []string {
		var out []string
		for _, s := range nastyCases() {
			out = append(out, s)
		}
		return out
	}()...)
	for _, p := range references(t) {
		t.Run(p.enc.String(), func(t *testing.T) {
			j, err := p.ours.MarshalJSON()
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
			got, want := back.EncodeBatch(texts), p.ours.EncodeBatch(texts)
			for i := range texts {
				if !cmp.Equal(got[i], want[i]) {
					t.Errorf("text %d:\n%s", i, p.mismatch(got[i], want[i]))
				}
			}
		})
	}
}

func FuzzLoadTiktoken(f *testing.F) {
	f.Add([]byte(rankFile("ab", "bc", "abc")), uint8(1))
	f.Add([]byte(rankFile("ab")+"YWI= 5\n"), uint8(2))
	f.Add([]byte("YQ== 0\nYg== 1\n"), uint8(2))
	small, err := bpe.Train(context.Background(), []string{"合同 contract 合同 contract"}, bpe.TrainOptions{VocabSize: 270})
	if err != nil {
		f.Fatal(err)
	}
	data, _ := small.MarshalTiktoken()
	f.Add(data, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, enc uint8) {
		tok, err := bpe.LoadTiktoken(data, bpe.Encoding(enc%3))
		if err != nil {
			if !errors.Is(err, bpe.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		for _, s := range []string{"合同 the\xff", "<|endoftext|>x", "", "a  b\r\n"} {
			got, err := tok.Decode(tok.Encode(s))
			if err != nil || got != s {
				t.Fatalf("loaded tokenizer: round trip of %q gave %q, %v", s, got, err)
			}
		}
		if _, err := tok.MarshalTiktoken(); err != nil {
			t.Fatal(err)
		}
		if _, err := tok.MarshalJSON(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzRoundTripRank is FuzzRoundTrip for the rank-mode cl100k and r50k
// tokenizers: Decode(Encode(s)) == s for any bytes.
func FuzzRoundTripRank(f *testing.F) {
	for _, s := range mixedTexts {
		f.Add(s)
	}
	for _, s := range nastyTexts {
		f.Add(s)
	}
	refs := references(f)
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range refs {
			got, err := p.ours.Decode(p.ours.Encode(s))
			if err != nil || got != s {
				t.Fatalf("%v: Decode(Encode(%q)) = %q, %v", p.enc, s, got, err)
			}
		}
	})
}

// TestEncodeBatchCutsLargeTexts checks that EncodeBatch, which encodes
// large texts in parts, gives Encode's ids.
func TestEncodeBatchCutsLargeTexts(t *testing.T) {
	big := strings.Repeat("第一条 Goods：甲方向乙方出售laptop computers 120台。\n\n  Article 2\n1. x\r\nok 'S\n中文\n", 4000)
	texts := []string{big, "", "short", big[:70000]}
	for _, p := range references(t) {
		got := p.ours.EncodeBatch(texts)
		for i, s := range texts {
			if want := p.ours.Encode(s); !cmp.Equal(got[i], want) {
				t.Errorf("%v: text %d:\n%s", p.enc, i, p.mismatch(got[i], want))
			}
		}
	}
	tok := trained(t)
	got := tok.EncodeBatch(texts)
	for i, s := range texts {
		if diff := cmp.Diff(tok.Encode(s), got[i]); diff != "" {
			t.Errorf("trained: text %d (-Encode +EncodeBatch):\n%s", i, diff)
		}
	}
}
