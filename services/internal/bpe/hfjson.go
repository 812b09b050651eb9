package bpe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// MaxFileBytes is the largest tokenizer.json Load accepts.
const MaxFileBytes = 256 << 20

// MaxIDGaps is how many ids below the largest may name no token in a file
// Load accepts.
const MaxIDGaps = 1024

// MarshalJSON writes t as a HuggingFace tokenizer.json: a BPE model with the
// vocabulary (byte-level spelling) and merges ("a b" strings), the
// ByteLevel decoder, and added_tokens for the special tokens. The
// pre-tokenizer is a Split on PreTokenizerPattern followed by ByteLevel
// without its own regex, so HuggingFace cuts Chinese as this package does;
// a tokenizer loaded from a foreign file writes its pre-tokenizer back
// unchanged. One loaded by LoadTiktoken is written the way HuggingFace
// converts tiktoken files: its pre-tokenizer (Cl100kPattern in a Split, or
// GPT-2's ByteLevel), ignore_merges, and as merges every split of every
// token into two, by rank (see the package documentation for where merges
// then differ from ranks).
func (t *Tokenizer) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(`{"version":"1.0","truncation":null,"padding":null,"added_tokens":[`)
	for i, a := range t.added {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"id":%d,"content":%s,"single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":%t}`,
			a.id, jsonString(a.content), a.special)
	}
	buf.WriteString(`],"normalizer":null,"pre_tokenizer":`)
	buf.Write(t.preTokenizerJSON())
	buf.WriteString(`,"post_processor":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":true}`)
	buf.WriteString(`,"decoder":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}`)
	fmt.Fprintf(&buf, `,"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":%t,"vocab":{`, t.ignoreMerges)
	first := true
	for id, tk := range t.tokens {
		if tk.kind == tokAbsent {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		s := tk.b
		if tk.kind == tokNormal {
			s = toByteLevel(tk.b)
		}
		fmt.Fprintf(&buf, "%s:%d", jsonString(s), id)
	}
	buf.WriteString(`},"merges":[`)
	merges := t.merges
	if t.rankMode {
		merges = t.rankMerges()
	}
	for i, m := range merges {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(jsonString(toByteLevel(t.tokens[m[0]].b) + " " + toByteLevel(t.tokens[m[1]].b)))
	}
	buf.WriteString("]}}")
	return buf.Bytes(), nil
}

func jsonString(s string) string {
	b, _ := json.Marshal(s) // strings always marshal
	return string(b)
}

func (t *Tokenizer) preTokenizerJSON() []byte {
	if t.preTokRaw != nil {
		return t.preTokRaw
	}
	if t.pre == preCl100k {
		return []byte(`{"type":"Sequence","pretokenizers":[` +
			`{"type":"Split","pattern":{"Regex":` + jsonString(Cl100kPattern) + `},"behavior":"Isolated","invert":false},` +
			`{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`)
	}
	if t.chunk == 0 {
		return []byte(`{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}`)
	}
	return []byte(`{"type":"Sequence","pretokenizers":[` +
		`{"type":"Split","pattern":{"Regex":` + jsonString(PreTokenizerPattern) + `},"behavior":"Isolated","invert":false},` +
		`{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`)
}

// hfFile is the part of tokenizer.json that Load reads.
type hfFile struct {
	AddedTokens []struct {
		ID      *int64 `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Model        *struct {
		Type                    string            `json:"type"`
		Vocab                   map[string]int64  `json:"vocab"`
		Merges                  []json.RawMessage `json:"merges"`
		ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
		ByteFallback            bool              `json:"byte_fallback"`
		IgnoreMerges            bool              `json:"ignore_merges"`
	} `json:"model"`
}

type hfPreTok struct {
	Type           string          `json:"type"`
	AddPrefixSpace bool            `json:"add_prefix_space"`
	UseRegex       *bool           `json:"use_regex"`
	Pattern        json.RawMessage `json:"pattern"`
	Behavior       string          `json:"behavior"`
	Invert         bool            `json:"invert"`
	Pretokenizers  []hfPreTok      `json:"pretokenizers"`
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: tokenizer.json: "+format, append([]any{ErrInvalid}, args...)...)
}

// Load reads a tokenizer.json: one written by MarshalJSON, or a HuggingFace
// byte-level BPE file (GPT-2 style; merges as "a b" strings or [a, b]
// pairs). Every error wraps ErrInvalid and says what is wrong; Load never
// panics on bad input.
func Load(data []byte) (*Tokenizer, error) {
	if len(data) > MaxFileBytes {
		return nil, invalid("file is %d bytes, over the limit of %d", len(data), MaxFileBytes)
	}
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, invalid("%v", err)
	}
	m := f.Model
	switch {
	case m == nil:
		return nil, invalid("no model")
	case m.Type != "BPE":
		return nil, invalid("model type %q is not supported (only BPE)", m.Type)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return nil, invalid("continuing_subword_prefix %q is not supported", *m.ContinuingSubwordPrefix)
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, invalid("end_of_word_suffix %q is not supported", *m.EndOfWordSuffix)
	case m.ByteFallback:
		return nil, invalid("byte_fallback is not supported (byte-level BPE only)")
	case len(m.Vocab) == 0:
		return nil, invalid("model has no vocab")
	case len(m.Vocab) > MaxVocabSize:
		return nil, invalid("vocab has %d tokens, over the limit of %d", len(m.Vocab), MaxVocabSize)
	case len(m.Merges) > MaxVocabSize:
		return nil, invalid("%d merges, over the limit of %d", len(m.Merges), MaxVocabSize)
	case len(f.AddedTokens) > MaxVocabSize:
		return nil, invalid("%d added tokens, over the limit of %d", len(f.AddedTokens), MaxVocabSize)
	}
	if n := bytes.TrimSpace(f.Normalizer); len(n) > 0 && string(n) != "null" {
		return nil, invalid("normalizer %s is not supported", truncate(string(n), 60))
	}
	t := &Tokenizer{ignoreMerges: m.IgnoreMerges}
	pre, chunk, raw, err := parsePreTokenizer(f.PreTokenizer)
	if err != nil {
		return nil, err
	}
	t.pre, t.chunk, t.preTokRaw = pre, chunk, raw

	// Ids: vocab entries and added tokens, dense or not, each used once.
	maxID := int64(-1)
	for s, id := range m.Vocab {
		if id < 0 || id >= MaxVocabSize {
			return nil, invalid("vocab token %q has id %d, outside [0, %d)", truncate(s, 40), id, MaxVocabSize)
		}
		maxID = max(maxID, id)
	}
	for _, a := range f.AddedTokens {
		if a.ID == nil {
			return nil, invalid("added token %q has no id", truncate(a.Content, 40))
		}
		if *a.ID < 0 || *a.ID >= MaxVocabSize {
			return nil, invalid("added token %q has id %d, outside [0, %d)", truncate(a.Content, 40), *a.ID, MaxVocabSize)
		}
		maxID = max(maxID, *a.ID)
	}
	if n := int64(len(m.Vocab) + len(f.AddedTokens)); maxID+1 > n+MaxIDGaps {
		return nil, invalid("largest id %d leaves more than %d ids unused (%d tokens)", maxID, MaxIDGaps, n)
	}
	t.tokens = make([]token, maxID+1)
	vocabName := make([]string, maxID+1) // the byte-level key, for messages
	for _, a := range f.AddedTokens {
		switch {
		case a.Content == "":
			return nil, invalid("added token id %d has empty content", *a.ID)
		case len(a.Content) > MaxTokenBytes:
			return nil, invalid("added token id %d is %d bytes, over the limit of %d", *a.ID, len(a.Content), MaxTokenBytes)
		case t.tokens[*a.ID].kind != tokAbsent:
			return nil, invalid("duplicate id %d: added tokens %q and %q", *a.ID, truncate(t.tokens[*a.ID].b, 40), truncate(a.Content, 40))
		}
		t.tokens[*a.ID] = token{b: a.Content, kind: tokAdded}
		t.added = append(t.added, addedToken{content: a.Content, id: uint32(*a.ID), special: a.Special})
	}
	for s, id := range m.Vocab {
		if tk := t.tokens[id]; tk.kind == tokAdded {
			if tk.b != s {
				return nil, invalid("duplicate id %d: vocab token %q and added token %q", id, truncate(s, 40), truncate(tk.b, 40))
			}
			continue
		} else if tk.kind == tokNormal {
			return nil, invalid("duplicate id %d: vocab tokens %q and %q", id, truncate(vocabName[id], 40), truncate(s, 40))
		}
		b, ok := fromByteLevel(s)
		switch {
		case !ok:
			return nil, invalid("vocab token %q (id %d) is not in byte-level form", truncate(s, 40), id)
		case b == "":
			return nil, invalid("vocab token id %d is empty", id)
		case len(b) > MaxTokenBytes:
			return nil, invalid("vocab token id %d is %d bytes, over the limit of %d", id, len(b), MaxTokenBytes)
		}
		t.tokens[id] = token{b: b, kind: tokNormal}
		vocabName[id] = s
	}
	sortAdded(t.added)
	t.index()
	for b := 0; b < 256; b++ {
		if _, ok := t.vocab[string([]byte{byte(b)})]; !ok {
			return nil, invalid("vocab lacks the token for byte 0x%02x (%q), so not every text can be encoded", b, string(byteToRune[b]))
		}
	}

	// Merges: both sides and their concatenation must be ordinary tokens.
	t.merges = make([][2]uint32, 0, len(m.Merges))
	seen := make(map[uint64]int, len(m.Merges))
	for r, raw := range m.Merges {
		l, rt, err := parseMerge(raw)
		if err != nil {
			return nil, invalid("merge %d: %v", r, err)
		}
		a, okA := t.lookupByteLevel(l)
		bID, okB := t.lookupByteLevel(rt)
		switch {
		case !okA:
			return nil, invalid("merge %d (%q %q): %q is not in the vocab", r, truncate(l, 40), truncate(rt, 40), truncate(l, 40))
		case !okB:
			return nil, invalid("merge %d (%q %q): %q is not in the vocab", r, truncate(l, 40), truncate(rt, 40), truncate(rt, 40))
		}
		if _, ok := t.vocab[t.tokens[a].b+t.tokens[bID].b]; !ok {
			return nil, invalid("merge %d (%q %q): result %q is not in the vocab", r, truncate(l, 40), truncate(rt, 40), truncate(l+rt, 40))
		}
		k := pairKey(a, bID)
		if prev, dup := seen[k]; dup {
			return nil, invalid("merge %d (%q %q) repeats merge %d", r, truncate(l, 40), truncate(rt, 40), prev)
		}
		seen[k] = r
		t.merges = append(t.merges, [2]uint32{a, bID})
	}
	t.index()
	return t, nil
}

func (t *Tokenizer) lookupByteLevel(s string) (uint32, bool) {
	b, ok := fromByteLevel(s)
	if !ok {
		return 0, false
	}
	id, ok := t.vocab[b]
	return id, ok
}

func parseMerge(raw json.RawMessage) (string, string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		l, r, ok := strings.Cut(s, " ")
		if !ok || l == "" || r == "" || strings.Contains(r, " ") {
			return "", "", fmt.Errorf("%q is not two tokens separated by one space", truncate(s, 60))
		}
		return l, r, nil
	}
	var p []string
	if err := json.Unmarshal(raw, &p); err != nil || len(p) != 2 {
		return "", "", fmt.Errorf("%s is neither \"a b\" nor [\"a\", \"b\"]", truncate(string(raw), 60))
	}
	if p[0] == "" || p[1] == "" {
		return "", "", fmt.Errorf("%s has an empty side", truncate(string(raw), 60))
	}
	return p[0], p[1], nil
}

// parsePreTokenizer maps the pre_tokenizer to a pre-tokenizer and Han chunk
// length. Ours (Split on PreTokenizerPattern, then ByteLevel without regex)
// is GPT-2 with ChunkRunes; a Split on Cl100kPattern or GPT2Pattern (kept
// isolated, or inverted and removed: the same, as the patterns match every
// rune) then ByteLevel without regex is that pattern; anything else that is
// byte-level is encoded with GPT-2's rule. What MarshalJSON would not write
// the same is kept verbatim for it.
func parsePreTokenizer(raw json.RawMessage) (preKind, int, []byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return preGPT2, 0, []byte("null"), nil
	}
	var p hfPreTok
	if err := json.Unmarshal(raw, &p); err != nil {
		return 0, 0, nil, invalid("pre_tokenizer: %v", err)
	}
	if err := checkPreTok(p, 0); err != nil {
		return 0, 0, nil, err
	}
	kept := append([]byte(nil), raw...)
	if p.Type == "Sequence" && len(p.Pretokenizers) == 2 {
		s, bl := p.Pretokenizers[0], p.Pretokenizers[1]
		var pat struct{ Regex string }
		isolated := s.Behavior == "Isolated" && !s.Invert || s.Behavior == "Removed" && s.Invert
		if s.Type == "Split" && json.Unmarshal(s.Pattern, &pat) == nil && isolated &&
			bl.Type == "ByteLevel" && bl.UseRegex != nil && !*bl.UseRegex {
			switch pat.Regex {
			case PreTokenizerPattern:
				if s.Behavior == "Isolated" {
					return preGPT2, ChunkRunes, nil, nil
				}
				return preGPT2, ChunkRunes, kept, nil
			case Cl100kPattern:
				t := &Tokenizer{pre: preCl100k}
				if string(t.preTokenizerJSON()) == string(raw) {
					kept = nil
				}
				return preCl100k, 0, kept, nil
			case GPT2Pattern:
				return preGPT2, 0, kept, nil
			}
		}
	}
	if p.Type == "ByteLevel" && (p.UseRegex == nil || *p.UseRegex) {
		return preGPT2, 0, nil, nil
	}
	return preGPT2, 0, kept, nil
}

func checkPreTok(p hfPreTok, depth int) error {
	if depth > 4 {
		return invalid("pre_tokenizer nests deeper than 4")
	}
	switch p.Type {
	case "ByteLevel":
		if p.AddPrefixSpace {
			return invalid("pre_tokenizer ByteLevel add_prefix_space is not supported (it breaks decode(encode(s)) == s)")
		}
	case "Sequence":
		for _, q := range p.Pretokenizers {
			if err := checkPreTok(q, depth+1); err != nil {
				return err
			}
		}
	case "Split", "Digits":
	default:
		return invalid("pre_tokenizer type %q is not supported", p.Type)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func sortAdded(a []addedToken) {
	sort.Slice(a, func(i, j int) bool { return a[i].id < a[j].id })
}
