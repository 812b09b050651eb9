package synth

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/llmesh/llmesh/services/dataprep/democorpus"
)

// Tolerance is how far a near duplicate's measured Jaccard may be from its
// target (it is almost always within it; the measured value is recorded).
const Tolerance = 0.02

// Config sizes the corpus. Zero NearJaccard, Shingle and ChineseShare take
// the defaults.
type Config struct {
	Seed uint64
	// Base is the number of distinct base documents.
	Base int
	// ExactDups and NearDups are the numbers of planted copies.
	ExactDups, NearDups int
	// NearJaccard lists target similarities; near duplicate i aims at
	// NearJaccard[i % len]. Default 0.50, 0.55, ..., 0.95.
	NearJaccard []float64
	// PIIPerType is the number of planted instances of each pii type.
	PIIPerType int
	// ChineseShare is the fraction of Chinese base documents (default 0.8).
	ChineseShare float64
	// Shingle is the shingle length of the recorded Jaccard (default 5).
	Shingle int
}

// DefaultConfig is the corpus of the acceptance test: 2000 base documents,
// 300 exact and 600 near duplicates over Jaccard 0.5..0.95, 50 instances of
// each PII type.
func DefaultConfig() Config {
	return Config{Base: 2000, ExactDups: 300, NearDups: 600, PIIPerType: 50}
}

func defaultTargets() []float64 {
	var t []float64
	for j := 50; j <= 95; j += 5 {
		t = append(t, float64(j)/100)
	}
	return t
}

// Doc is one generated document.
type Doc struct {
	ID    string `json:"id"`
	Lang  string `json:"lang"`
	Kind  string `json:"kind"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

// Pair is a planted duplicate: Docs[A] and Docs[B] (A < B), their exact
// shingle Jaccard, and whether the texts are identical.
type Pair struct {
	A, B    int
	Jaccard float64
	Exact   bool
	// Target is the similarity a near duplicate aimed at (1 for exact).
	Target float64
}

// Planted is one planted PII value: Docs[Doc].Text[Start:End] is a value
// of Type.
type Planted struct {
	Doc        int
	Start, End int
	Type       string
}

// Corpus is the generated documents with their ground truth.
type Corpus struct {
	Docs     []Doc
	DupPairs []Pair
	PII      []Planted
}

// WriteJSONL writes the documents, one JSON object per line, in the shape
// of the shared corpora (id, lang, kind, title, text).
func (c *Corpus) WriteJSONL(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range c.Docs {
		if err := enc.Encode(&c.Docs[i]); err != nil {
			return fmt.Errorf("synth: document %d (%s): %w", i, c.Docs[i].ID, err)
		}
	}
	return nil
}

// WriteTruth writes the ground truth as one JSON object: dup pairs and PII
// spans, with documents named by index and id.
func (c *Corpus) WriteTruth(w io.Writer) error {
	type pair struct {
		A, B    string
		Jaccard float64
		Exact   bool
		IA, IB  int
	}
	type span struct {
		Doc        string
		I          int
		Start, End int
		Type, Text string
	}
	var t struct {
		Pairs []pair
		PII   []span
	}
	for _, p := range c.DupPairs {
		t.Pairs = append(t.Pairs, pair{c.Docs[p.A].ID, c.Docs[p.B].ID, p.Jaccard, p.Exact, p.A, p.B})
	}
	for _, s := range c.PII {
		t.PII = append(t.PII, span{c.Docs[s.Doc].ID, s.Doc, s.Start, s.End, s.Type, c.Docs[s.Doc].Text[s.Start:s.End]})
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&t); err != nil {
		return fmt.Errorf("synth: ground truth: %w", err)
	}
	return nil
}

// Generate builds the corpus for cfg. Negative counts count as zero.
func Generate(cfg Config) *Corpus {
	if len(cfg.NearJaccard) == 0 {
		cfg.NearJaccard = defaultTargets()
	}
	if cfg.ChineseShare == 0 {
		cfg.ChineseShare = democorpus.ChineseShare
	}
	if cfg.Shingle <= 0 {
		cfg.Shingle = 5
	}
	cfg.Base, cfg.ExactDups, cfg.NearDups, cfg.PIIPerType = max(cfg.Base, 0), max(cfg.ExactDups, 0), max(cfg.NearDups, 0), max(cfg.PIIPerType, 0)
	if cfg.Base == 0 {
		cfg.ExactDups, cfg.NearDups = 0, 0
	}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x73796e7468)) // "synth"
	docs := baseDocs(cfg, r)
	nBase := len(docs)

	// Sources: distinct while the base set lasts.
	order := r.Perm(nBase)
	next := 0
	source := func() int {
		if next < len(order) {
			next++
			return order[next-1]
		}
		return r.IntN(nBase)
	}
	used := make([]bool, nBase)
	var pairs []Pair
	for k := range cfg.ExactDups {
		s := source()
		used[s] = true
		d := docs[s]
		d.ID = fmt.Sprintf("%s-exact-%d", d.ID, k)
		docs = append(docs, d)
		pairs = append(pairs, Pair{A: s, B: len(docs) - 1, Jaccard: 1, Exact: true, Target: 1})
	}
	for k := range cfg.NearDups {
		s := source()
		used[s] = true
		target := cfg.NearJaccard[k%len(cfg.NearJaccard)]
		text, j := nearCopy(r, docs[s].Text, target, cfg.Shingle)
		d := docs[s]
		d.ID = fmt.Sprintf("%s-near-%d", d.ID, k)
		d.Text = text
		if d.Lang == democorpus.LangZH && r.IntN(2) == 0 {
			d.Title += fmt.Sprintf("（%d年%d月%d日修订）", 2000+r.IntN(25), 1+r.IntN(12), 1+r.IntN(28))
		}
		docs = append(docs, d)
		pairs = append(pairs, Pair{A: s, B: len(docs) - 1, Jaccard: j, Exact: text == docs[s].Text, Target: target})
	}

	var free []int
	for i := range nBase {
		if !used[i] {
			free = append(free, i)
		}
	}
	planted := plantPII(r, docs, free, cfg.PIIPerType)

	// Shuffle so that sources do not always come first.
	perm := r.Perm(len(docs))
	c := &Corpus{Docs: make([]Doc, len(docs))}
	for old, nu := range perm {
		c.Docs[nu] = docs[old]
	}
	for _, p := range pairs {
		p.A, p.B = perm[p.A], perm[p.B]
		if p.A > p.B {
			p.A, p.B = p.B, p.A
		}
		c.DupPairs = append(c.DupPairs, p)
	}
	for _, s := range planted {
		s.Doc = perm[s.Doc]
		c.PII = append(c.PII, s)
	}
	slices.SortFunc(c.DupPairs, func(x, y Pair) int { return cmp.Or(cmp.Compare(x.A, y.A), cmp.Compare(x.B, y.B)) })
	slices.SortFunc(c.PII, func(x, y Planted) int { return cmp.Or(cmp.Compare(x.Doc, y.Doc), cmp.Compare(x.Start, y.Start)) })
	return c
}

// baseDocs draws cfg.Base demo documents at the configured language share
// and salts each with random paragraphs.
func baseDocs(cfg Config, r *rand.Rand) []Doc {
	if cfg.Base == 0 {
		return nil
	}
	wantZH := int(math.Round(float64(cfg.Base) * min(max(cfg.ChineseShare, 0), 1)))
	wantEN := cfg.Base - wantZH
	var zh, en []democorpus.Document
	for n := cfg.Base + 64; ; n *= 2 {
		zh, en = zh[:0], en[:0]
		for _, d := range democorpus.Generate(cfg.Seed, n) {
			if d.Lang == democorpus.LangZH {
				zh = append(zh, d)
			} else {
				en = append(en, d)
			}
		}
		if len(zh) >= wantZH && len(en) >= wantEN {
			break
		}
	}
	vzh, ven := vocabulary(zh[:min(len(zh), 300)], true), vocabulary(en[:min(len(en), 300)], false)
	picked := append(zh[:wantZH:wantZH], en[:wantEN]...)
	r.Shuffle(len(picked), func(i, j int) { picked[i], picked[j] = picked[j], picked[i] })
	docs := make([]Doc, len(picked))
	for i, d := range picked {
		v := ven
		if d.Lang == democorpus.LangZH {
			v = vzh
		}
		docs[i] = Doc{
			ID:    fmt.Sprintf("synth-%d-%06d", cfg.Seed, i),
			Lang:  d.Lang,
			Kind:  d.Kind,
			Title: d.Title,
			Text:  salt(r, d.Text, v, d.Lang == democorpus.LangZH),
		}
	}
	return docs
}

// vocabulary collects Chinese character pairs or English words from docs.
func vocabulary(docs []democorpus.Document, chinese bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range docs {
		if chinese {
			rs := []rune(d.Text)
			for i := 0; i+1 < len(rs); i += 2 {
				if unicode.Is(unicode.Han, rs[i]) && unicode.Is(unicode.Han, rs[i+1]) {
					w := string(rs[i : i+2])
					if !seen[w] {
						seen[w] = true
						out = append(out, w)
					}
				}
			}
			continue
		}
		for _, w := range strings.Fields(d.Text) {
			w = strings.ToLower(strings.Trim(w, ".,;:()\"'"))
			if len(w) > 1 && !seen[w] {
				seen[w] = true
				out = append(out, w)
			}
		}
	}
	slices.Sort(out) // map order must not leak into the output
	if len(out) == 0 {
		out = []string{"条款", "约定"}
	}
	return out
}

// salt inserts random paragraphs, about as long as text in total, at line
// boundaries after the first line.
func salt(r *rand.Rand, text string, vocab []string, chinese bool) string {
	lines := strings.SplitAfter(text, "\n")
	if lines[len(lines)-1] == "" { // text ended with a newline
		lines = lines[:len(lines)-1]
	}
	for budget := utf8.RuneCountInString(text); budget > 0; {
		p := paragraph(r, vocab, chinese)
		budget -= utf8.RuneCountInString(p)
		at := 1 + r.IntN(len(lines))
		if at == len(lines) && !strings.HasSuffix(lines[at-1], "\n") {
			lines[at-1] += "\n" // the paragraph becomes the last line
		} else {
			p += "\n"
		}
		lines = slices.Insert(lines, at, p)
	}
	return strings.Join(lines, "")
}

func paragraph(r *rand.Rand, vocab []string, chinese bool) string {
	var b strings.Builder
	n := 30 + r.IntN(60)
	for i := range n {
		w := vocab[r.IntN(len(vocab))]
		if chinese {
			b.WriteString(w)
			if i == n-1 {
				b.WriteString("。")
			} else if r.IntN(7) == 0 {
				b.WriteString("，")
			}
			continue
		}
		if i == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		b.WriteString(w)
		switch {
		case i == n-1:
			b.WriteString(".")
		case r.IntN(12) == 0:
			b.WriteString(". ")
		case r.IntN(8) == 0:
			b.WriteString(", ")
		default:
			b.WriteString(" ")
		}
	}
	return b.String()
}
