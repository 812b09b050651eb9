package bpe_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	tiktoken "github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
	"github.com/pkoukk/tiktoken-go-loader/assets"

	"github.com/llmesh/llmesh/services/dataprep/democorpus"
	"github.com/llmesh/llmesh/services/internal/bpe"
	"github.com/llmesh/llmesh/services/internal/corpus/corpustest"
)

// refPair is one encoding as we load it and as tiktoken-go (the outside
// reference, with its offline loader) loads it.
type refPair struct {
	enc    bpe.Encoding
	ours   *bpe.Tokenizer
	theirs *tiktoken.Tiktoken
	rank   []byte // the rank file
}

var (
	refOnce  sync.Once
	refPairs []*refPair
	refErr   error
)

// references loads cl100k_base and r50k_base from tiktoken-go-loader's
// embedded rank files, once per test binary.
func references(tb testing.TB) []*refPair {
	tb.Helper()
	refOnce.Do(func() {
		tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader())
		for _, enc := range []bpe.Encoding{bpe.Cl100kBase, bpe.R50kBase} {
			data, err := assets.Assets.ReadFile(enc.String() + ".tiktoken")
			if err != nil {
				refErr = err
				return
			}
			ours, err := bpe.LoadTiktoken(data, enc)
			if err != nil {
				refErr = fmt.Errorf("LoadTiktoken(%v): %w", enc, err)
				return
			}
			theirs, err := tiktoken.GetEncoding(enc.String())
			if err != nil {
				refErr = fmt.Errorf("tiktoken-go %v: %w", enc, err)
				return
			}
			refPairs = append(refPairs, &refPair{enc: enc, ours: ours, theirs: theirs, rank: data})
		}
	})
	if refErr != nil {
		tb.Fatal(refErr)
	}
	return refPairs
}

// theirIDs encodes s with tiktoken-go, special tokens recognised (as
// Encode recognises them).
func (p *refPair) theirIDs(s string) []uint32 {
	ids := p.theirs.Encode(s, []string{"all"}, nil)
	out := make([]uint32, len(ids))
	for i, id := range ids {
		out[i] = uint32(id)
	}
	return out
}

// mismatch describes where got and want first differ, with the text of the
// tokens around it.
func (p *refPair) mismatch(got, want []uint32) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(0, i-3)
	show := func(ids []uint32) string {
		hi := min(len(ids), i+4)
		var parts []string
		for _, id := range ids[lo:hi] {
			s, _ := p.ours.Decode([]uint32{id})
			parts = append(parts, fmt.Sprintf("%d:%q", id, s))
		}
		return strings.Join(parts, " ")
	}
	return fmt.Sprintf("%v: first difference at token %d of %d (ours) / %d (tiktoken-go)\n ours:   %s\n theirs: %s",
		p.enc, i, len(got), len(want), show(got), show(want))
}

// nastyTexts are the cases a hand-written pre-tokenizer gets wrong first.
var nastyTexts = map[string]string{
	"contractions":     "I'm can't we'll they've she'd you're it's",
	"contractions up":  "I'M CAN'T WE'LL THEY'VE SHE'D YOU'RE IT'S 'S 'LL 'Re 'vE 'T 'M 'D",
	"contraction tail": "''s 'sup 'rex 'l 'x ' 's ''",
	"digits 1-7":       "1 12 123 1234 12345 123456 1234567 x1234567y",
	"digit groups":     "3.14159 1,000,000 2023-12-31 0x1F 12:30:45",
	"other numbers":    "½ ² Ⅻ ١٢٣ ０１２３４ 〇一二 ⑩",
	"full-width":       "ＡＢＣ１２３！？（Ｘ）",
	"mixed scripts":    "Привет мир! こんにちは世界 안녕하세요 مرحبا שלום Ελληνικά हिन्दी ไทย",
	"chinese":          "本院认为，原、被告之间的房屋租赁合同系双方真实意思表示，合法有效。（¥10,000.00）",
	"emoji":            "hi 😀😀 👍🏽 ok🇨🇳🇺🇸",
	"zwj":              "👨‍👩‍👧‍👦 family 🏳️‍🌈 x\u200dy \u200b zero",
	"combining":        "e\u0301 cafe\u0301 n\u0303o a\u0308\u0308 \u0301x",
	"crlf":             "a\r\nb\r\n\r\nc\rd\n\re\r",
	"lone cr":          "x\ry \r z\r\r",
	"trailing spaces":  "end   ",
	"trailing tabs":    "end\t\t",
	"spaces and tabs":  "a \t b\t \tc  \t\n d",
	"nbsp":             "a\u00a0b \u00a0c\u00a0\u00a0d\u00a0",
	"ideographic sp":   "甲\u3000乙\u3000\u3000丙\u3000",
	"nel ls ps":        "a\u0085b\u2028c\u2029d \u0085 \u2028x",
	"other spaces":     "a\u2003b\u202fc\u205fd\u1680e\u000bf\u000cg",
	"punct newlines":   "end.\n\nnext!\r\n(x)\n\n\n",
	"space punct":      "a .b ..c !? (d) 'e",
	"prefix other":     "(hello) [world] «quote» —dash ¿qué? #tag @user $100",
	"leading spaces":   "   indented\n    more",
	"newline spaces":   "a\n  b\n\t\tc \n d",
	"special tokens":   "<|endoftext|>x<|fim_prefix|>y<|fim_middle|>z<|fim_suffix|><|endofprompt|><|endoftext",
	"near special":     "<|endoftext |> <|endoftext|><|endoftext|> <|",
	"long word":        strings.Repeat("a", 300) + " " + strings.Repeat("本院认为", 200),
	"long spaces":      strings.Repeat(" ", 200) + "x" + strings.Repeat("\n", 100),
	"long digits":      strings.Repeat("9", 100),
	"code":             "func main() {\n\tfmt.Println(\"hi\")\n}\n\n// comment\nx := []int{1, 2}\n",
	"empty":            "",
	"single":           "a",
	"single space":     " ",
	"private use":      "\ue000\U000f0000 \U0010fffd",
	"astral letters":   "𝐀𝐁𝐂 𠀀𠀁 𝟙𝟚",
}

// nastyCases returns nastyTexts plus every byte of ASCII next to letters,
// digits and spaces.
func nastyCases() map[string]string {
	out := map[string]string{}
	for k, v := range nastyTexts {
		out[k] = v
	}
	var b strings.Builder
	for c := 0; c < 128; c++ {
		fmt.Fprintf(&b, "a%cb 1%c2 %c \n%c\n", c, c, c, c)
	}
	out["ascii"] = b.String()
	return out
}

func TestTiktokenParityNasty(t *testing.T) {
	for _, p := range references(t) {
		for name, s := range nastyCases() {
			t.Run(p.enc.String()+"/"+name, func(t *testing.T) {
				got, want := p.ours.Encode(s), p.theirIDs(s)
				if !cmp.Equal(got, want) {
					t.Errorf("%q:\n%s", truncateText(s, 80), p.mismatch(got, want))
				}
				if back, err := p.ours.Decode(got); err != nil || back != s {
					t.Errorf("Decode(Encode(%q)) = %q, %v", truncateText(s, 80), truncateText(back, 80), err)
				}
			})
		}
	}
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// readText returns the texts of the shared corpus name, in order, up to
// and including the document that takes the total to limit bytes.
func readText(tb testing.TB, name string, limit int) []string {
	tb.Helper()
	var out []string
	n := 0
	for _, d := range corpustest.Texts(tb, name) {
		if n >= limit {
			break
		}
		out = append(out, d)
		n += len(d)
	}
	return out
}

// parityCorpus returns about mb megabytes of mixed text: Chinese laws and
// English licences from shared/data (mb*0.45 each) and the built-in demo
// corpus (the rest). It skips the test when shared/data is absent.
func parityCorpus(tb testing.TB, mb float64) []string {
	tb.Helper()
	if corpustest.Dir() == "" {
		tb.Skip("no shared/data (cn-law.jsonl.gz, en-legal.jsonl.gz) above the working directory; CI has it")
	}
	part := int(mb * 1e6 * 0.45)
	texts := readText(tb, "cn-law.jsonl.gz", part)
	texts = append(texts, readText(tb, "en-legal.jsonl.gz", part)...)
	demo := int(mb*1e6) - int(totalBytes(texts))
	for seed := uint64(7); demo > 0; seed++ {
		for _, d := range democorpus.Generate(seed, demo/1000+1) {
			if demo <= 0 {
				break
			}
			texts = append(texts, d.Text)
			demo -= len(d.Text)
		}
	}
	return texts
}

// fullParity is set by LLMESH_FULL_PARITY=1: compare on 10 MB per encoding
// instead of the default sample.
var fullParity = os.Getenv("LLMESH_FULL_PARITY") == "1"

// TestTiktokenParityCorpus encodes mixed Chinese and English text with
// both tokenizers, documents spread over GOMAXPROCS goroutines, and
// requires identical ids.
func TestTiktokenParityCorpus(t *testing.T) {
	mb := 10.0
	if !fullParity {
		mb = 2
	}
	texts := parityCorpus(t, mb)
	for _, p := range references(t) {
		t.Run(p.enc.String(), func(t *testing.T) {
			var next, nTok atomic.Int64
			var mu sync.Mutex
			var failures []string
			var wg sync.WaitGroup
			for range runtime.GOMAXPROCS(0) {
				wg.Go(func() {
					for {
						i := int(next.Add(1)) - 1
						if i >= len(texts) {
							return
						}
						got, want := p.ours.Encode(texts[i]), p.theirIDs(texts[i])
						nTok.Add(int64(len(want)))
						if !cmp.Equal(got, want) {
							mu.Lock()
							failures = append(failures, fmt.Sprintf("document %d: %s", i, p.mismatch(got, want)))
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			t.Logf("%v: %d documents, %d bytes, %d tokens compared", p.enc, len(texts), totalBytes(texts), nTok.Load())
			for i, f := range failures {
				if i == 5 {
					t.Errorf("... and %d more", len(failures)-5)
					break
				}
				t.Error(f)
			}
		})
	}
}

func FuzzParity(f *testing.F) {
	for _, s := range nastyTexts {
		f.Add(s)
	}
	refs := references(f)
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			t.Skip("tiktoken-go replaces invalid UTF-8 with U+FFFD; parity is for valid text")
		}
		for _, p := range refs {
			if got, want := p.ours.Encode(s), p.theirIDs(s); !cmp.Equal(got, want) {
				t.Fatalf("%q:\n%s", s, p.mismatch(got, want))
			}
		}
	})
}
