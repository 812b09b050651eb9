package bpe_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/llmesh/llmesh/services/internal/bpe"
)

// hfFile builds a minimal GPT-2 style tokenizer.json: the 256 byte tokens
// (in GPT-2's byte-level spelling) plus extra vocab entries and merges.
func hfFile(extraVocab map[string]int, merges string, added string) string {
	var b strings.Builder
	b.WriteString(`{"version":"1.0","added_tokens":[` + added + `],"normalizer":null,`)
	b.WriteString(`"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},`)
	b.WriteString(`"decoder":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":{`)
	for i, r := range gpt2Bytes() {
		fmt.Fprintf(&b, "%q:%d,", string(r), i)
	}
	for s, id := range extraVocab {
		fmt.Fprintf(&b, "%q:%d,", s, id)
	}
	b.WriteString(`"<|endoftext|>":999},"merges":` + merges + `}}`)
	return b.String()
}

func gpt2Bytes() []rune {
	var out []rune
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			out = append(out, rune(b))
		} else {
			out = append(out, rune(256+n))
			n++
		}
	}
	return out
}

const eot = `{"id":999,"content":"<|endoftext|>","special":true}`

func TestLoadHF(t *testing.T) {
	vocab := map[string]int{"Ġt": 256, "he": 257, "Ġthe": 258}
	for name, merges := range map[string]string{
		"string merges": `["Ġ t","h e","Ġt he"]`,
		"pair merges":   `[["Ġ","t"],["h","e"],["Ġt","he"]]`,
	} {
		t.Run(name, func(t *testing.T) {
			tok, err := bpe.Load([]byte(hfFile(vocab, merges, eot)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]uint32{'a', 258, 999}, tok.Encode("a the<|endoftext|>")); diff != "" {
				t.Errorf("Encode (-want +got):\n%s", diff)
			}
			if id, ok := tok.TokenID(" the"); !ok || id != 258 {
				t.Errorf("TokenID(\" the\") = %d, %v", id, ok)
			}
			if _, err := tok.Decode([]uint32{300}); !errors.Is(err, bpe.ErrTokenID) {
				t.Errorf("Decode of a gap id: %v, want ErrTokenID", err)
			}
			// GPT-2's plain ByteLevel pre-tokenizer: Han is not chunked.
			j, _ := tok.MarshalJSON()
			if !strings.Contains(string(j), `"use_regex":true}`) || strings.Contains(string(j), "Split") {
				t.Errorf("re-marshalled pre_tokenizer changed: %s", j)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	good := map[string]int{"he": 256}
	tests := map[string]struct {
		file string
		want string
	}{
		"not json":       {"{", "unexpected end"},
		"no model":       {`{}`, "no model"},
		"wordpiece":      {`{"model":{"type":"WordPiece","vocab":{"a":0}}}`, `model type "WordPiece"`},
		"empty vocab":    {`{"model":{"type":"BPE","vocab":{}}}`, "no vocab"},
		"missing merge":  {hfFile(good, `["h zz"]`, eot), `"zz" is not in the vocab`},
		"missing result": {hfFile(good, `["h e","e h"]`, eot), `result "eh" is not in the vocab`},
		"bad merge":      {hfFile(good, `["he"]`, eot), "not two tokens"},
		"bad pair":       {hfFile(good, `[["h"]]`, eot), `neither "a b" nor`},
		"dup merge":      {hfFile(good, `["h e","h e"]`, eot), "repeats merge 0"},
		"dup id":         {hfFile(map[string]int{"he": 256, "eh": 256}, `[]`, eot), "duplicate id 256"},
		"added dup":      {hfFile(good, `[]`, `{"id":256,"content":"<x>","special":true}`), "duplicate id 256"},
		"negative id":    {hfFile(map[string]int{"he": -1}, `[]`, eot), "outside [0,"},
		"huge id":        {hfFile(map[string]int{"he": 1 << 30}, `[]`, eot), "outside [0,"},
		"sparse ids":     {hfFile(map[string]int{"he": 100000}, `[]`, eot), "unused"},
		"not byte-level": {hfFile(map[string]int{"▁he": 256}, `[]`, eot), "not in byte-level form"},
		"missing byte":   {`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}`, "lacks the token for byte 0x00"},
		"normalizer":     {`{"normalizer":{"type":"NFC"},"model":{"type":"BPE","vocab":{"a":0}}}`, "normalizer"},
		"prefix space":   {`{"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":true},"model":{"type":"BPE","vocab":{"a":0}}}`, "add_prefix_space"},
		"metaspace":      {`{"pre_tokenizer":{"type":"Metaspace"},"model":{"type":"BPE","vocab":{"a":0}}}`, `"Metaspace" is not supported`},
		"byte fallback":  {`{"model":{"type":"BPE","byte_fallback":true,"vocab":{"a":0}}}`, "byte_fallback"},
		"subword prefix": {`{"model":{"type":"BPE","continuing_subword_prefix":"##","vocab":{"a":0}}}`, "continuing_subword_prefix"},
		"added no id":    {hfFile(good, `[]`, `{"content":"<x>"}`), "has no id"},
		"added empty":    {hfFile(good, `[]`, `{"id":1000,"content":""}`), "empty content"},
		"float id":       {`{"model":{"type":"BPE","vocab":{"a":1.5}}}`, "tokenizer.json"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := bpe.Load([]byte(tc.file))
			if !errors.Is(err, bpe.ErrInvalid) {
				t.Fatalf("error = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestLoadTooLarge(t *testing.T) {
	_, err := bpe.Load(make([]byte, bpe.MaxFileBytes+1))
	if !errors.Is(err, bpe.ErrInvalid) || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("error = %v", err)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(hfFile(map[string]int{"he": 256}, `["h e"]`, eot)))
	f.Add([]byte(hfFile(map[string]int{"he": 256}, `[["h","e"]]`, eot)))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0},"merges":["a a"]}}`))
	small, err := bpe.Train(context.Background(), []string{"合同 contract 合同 contract"}, bpe.TrainOptions{VocabSize: 270})
	if err != nil {
		f.Fatal(err)
	}
	j, _ := small.MarshalJSON()
	f.Add(j)
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := bpe.Load(data)
		if err != nil {
			if !errors.Is(err, bpe.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		for _, s := range []string{"合同 the\xff", "<|endoftext|>x", ""} {
			got, err := tok.Decode(tok.Encode(s))
			if err != nil || got != s {
				t.Fatalf("loaded tokenizer: round trip of %q gave %q, %v", s, got, err)
			}
		}
		if _, err := tok.MarshalJSON(); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range mixedTexts {
		f.Add(s)
	}
	tok := trained(f)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := tok.Decode(tok.Encode(s))
		if err != nil {
			t.Fatal(err)
		}
		if got != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
	})
}
