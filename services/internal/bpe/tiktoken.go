package bpe

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
)

// Encoding names a tiktoken encoding: the pre-tokenizer and the special
// tokens that go with a rank file, which holds neither.
type Encoding int

const (
	// R50kBase is GPT-2's encoding: GPT2Pattern (no Han chunking) and
	// <|endoftext|> = 50256.
	R50kBase Encoding = iota + 1
	// Cl100kBase is GPT-3.5/4's encoding: Cl100kPattern and
	// <|endoftext|> = 100257, <|fim_prefix|> = 100258,
	// <|fim_middle|> = 100259, <|fim_suffix|> = 100260,
	// <|endofprompt|> = 100276.
	Cl100kBase
)

// String returns tiktoken's name for e: "r50k_base" or "cl100k_base".
func (e Encoding) String() string {
	switch e {
	case R50kBase:
		return "r50k_base"
	case Cl100kBase:
		return "cl100k_base"
	}
	return fmt.Sprintf("Encoding(%d)", int(e))
}

func (e Encoding) specials() []addedToken {
	switch e {
	case R50kBase:
		return []addedToken{{content: "<|endoftext|>", id: 50256, special: true}}
	case Cl100kBase:
		return []addedToken{
			{content: "<|endoftext|>", id: 100257, special: true},
			{content: "<|fim_prefix|>", id: 100258, special: true},
			{content: "<|fim_middle|>", id: 100259, special: true},
			{content: "<|fim_suffix|>", id: 100260, special: true},
			{content: "<|endofprompt|>", id: 100276, special: true},
		}
	}
	return nil
}

func invalidRanks(format string, args ...any) error {
	return fmt.Errorf("%w: tiktoken rank file: "+format, append([]any{ErrInvalid}, args...)...)
}

// LoadTiktoken reads a tiktoken rank file (lines "<base64 token> <rank>",
// as cl100k_base.tiktoken) and returns a tokenizer in rank mode: token ids
// are ranks, any two adjacent parts whose concatenation is a token may
// merge, lowest rank first, and a pre-token that is a token is that token,
// exactly as tiktoken encodes. enc supplies the pre-tokenizer and the
// special tokens. Every error wraps ErrInvalid and names the line; bad
// input never panics.
func LoadTiktoken(data []byte, enc Encoding) (*Tokenizer, error) {
	specials := enc.specials()
	if specials == nil {
		return nil, invalidRanks("unknown encoding %v", enc)
	}
	if len(data) > MaxFileBytes {
		return nil, invalidRanks("file is %d bytes, over the limit of %d", len(data), MaxFileBytes)
	}
	t := &Tokenizer{rankMode: true, ignoreMerges: true}
	if enc == Cl100kBase {
		t.pre = preCl100k
	}
	byRank := map[int]int{} // rank → line
	byToken := map[string]int{}
	type entry struct {
		b    string
		rank int
	}
	var entries []entry
	maxID := -1
	for line, rest := 1, data; len(rest) > 0; line++ {
		l := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			l, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(l) == 0 {
			continue
		}
		tok64, rankText, ok := bytes.Cut(l, []byte(" "))
		if !ok {
			return nil, invalidRanks("line %d (%q) has no rank: want \"<base64 token> <rank>\"", line, truncate(string(l), 40))
		}
		rank, err := parseRank(rankText)
		if err != nil {
			return nil, invalidRanks("line %d: rank %q: %v", line, truncate(string(rankText), 20), err)
		}
		if len(tok64) > base64.StdEncoding.EncodedLen(MaxTokenBytes) {
			return nil, invalidRanks("line %d: token is %d base64 bytes, over the limit of %d (%d bytes decoded)", line, len(tok64), base64.StdEncoding.EncodedLen(MaxTokenBytes), MaxTokenBytes)
		}
		b := make([]byte, base64.StdEncoding.DecodedLen(len(tok64)))
		n, err := base64.StdEncoding.Strict().Decode(b, tok64)
		switch {
		case err != nil:
			return nil, invalidRanks("line %d: token %q is not base64: %v", line, truncate(string(tok64), 40), err)
		case n == 0:
			return nil, invalidRanks("line %d: token is empty", line)
		case n > MaxTokenBytes:
			return nil, invalidRanks("line %d: token is %d bytes, over the limit of %d", line, n, MaxTokenBytes)
		}
		tok := string(b[:n])
		if prev, dup := byToken[tok]; dup {
			return nil, invalidRanks("line %d: token %q repeats line %d", line, truncate(tok, 40), prev)
		}
		if prev, dup := byRank[rank]; dup {
			return nil, invalidRanks("line %d: rank %d repeats line %d", line, rank, prev)
		}
		byToken[tok], byRank[rank] = line, line
		entries = append(entries, entry{tok, rank})
		maxID = max(maxID, rank)
	}
	if len(entries) == 0 {
		return nil, invalidRanks("no tokens")
	}
	maxRank := maxID
	for _, a := range specials { // at fixed ids, whatever the file's size
		if line, clash := byRank[int(a.id)]; clash {
			return nil, invalidRanks("line %d: rank %d is the id of special token %q in %v", line, a.id, a.content, enc)
		}
		if line, clash := byToken[a.content]; clash {
			return nil, invalidRanks("line %d: token %q is special in %v", line, a.content, enc)
		}
		maxID = max(maxID, int(a.id))
	}
	if maxRank+1 > len(entries)+MaxIDGaps {
		return nil, invalidRanks("largest rank %d leaves more than %d ranks unused (%d tokens)", maxRank, MaxIDGaps, len(entries))
	}
	t.tokens = make([]token, maxID+1)
	for _, e := range entries {
		t.tokens[e.rank] = token{b: e.b, kind: tokNormal}
	}
	for _, a := range specials {
		t.tokens[a.id] = token{b: a.content, kind: tokAdded}
		t.added = append(t.added, a)
	}
	for b := 0; b < 256; b++ {
		if _, ok := byToken[string([]byte{byte(b)})]; !ok {
			return nil, invalidRanks("no token for byte 0x%02x, so not every text can be encoded", b)
		}
	}
	t.index()
	return t, nil
}

// parseRank parses a decimal rank in [0, MaxVocabSize).
func parseRank(s []byte) (int, error) {
	if len(s) == 0 {
		return 0, fmt.Errorf("empty")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a decimal number")
		}
	}
	if len(s) > 9 {
		return 0, fmt.Errorf("over the limit of %d", MaxVocabSize-1)
	}
	n, _ := strconv.Atoi(string(s)) // nine digits always parse
	if n >= MaxVocabSize {
		return 0, fmt.Errorf("over the limit of %d", MaxVocabSize-1)
	}
	return n, nil
}

// MarshalTiktoken writes t's ordinary tokens as a tiktoken rank file, rank
// = id, in id order. Special tokens are not written (a rank file has
// none; LoadTiktoken's Encoding supplies them). A tokenizer with an added
// token that is not special cannot be written: the file has no place for
// it.
func (t *Tokenizer) MarshalTiktoken() ([]byte, error) {
	for _, a := range t.added {
		if !a.special {
			return nil, fmt.Errorf("%w: tiktoken rank file: added token %q (id %d) is not special and has no place in a rank file", ErrInvalid, truncate(a.content, 40), a.id)
		}
	}
	var buf bytes.Buffer
	for id, tk := range t.tokens {
		if tk.kind != tokNormal {
			continue
		}
		if t.vocab[tk.b] != uint32(id) {
			return nil, fmt.Errorf("%w: tiktoken rank file: token %d repeats token %d (%q)", ErrInvalid, id, t.vocab[tk.b], truncate(tk.b, 40))
		}
		buf.WriteString(base64.StdEncoding.EncodeToString([]byte(tk.b)))
		buf.WriteByte(' ')
		buf.WriteString(strconv.Itoa(id))
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

// rankMerges derives a merges list from a rank-mode tokenizer the way
// HuggingFace converts tiktoken files: every split of every token into two
// tokens, ordered by the token's rank, then by the ranks of the left and
// the right piece.
func (t *Tokenizer) rankMerges() [][2]uint32 {
	var out [][2]uint32
	for id, tk := range t.tokens {
		if tk.kind != tokNormal || len(tk.b) < 2 {
			continue
		}
		from := len(out)
		t.eachSplit(uint32(id), func(a, b uint32) { out = append(out, [2]uint32{a, b}) })
		local := out[from:]
		sortPairs(local)
	}
	return out
}

func sortPairs(p [][2]uint32) {
	for i := 1; i < len(p); i++ { // short lists: insertion sort
		for j := i; j > 0 && (p[j][0] < p[j-1][0] || p[j][0] == p[j-1][0] && p[j][1] < p[j-1][1]); j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}
