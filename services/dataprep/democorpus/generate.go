package democorpus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
)

// Document is one generated document, one JSON object per line in JSONL.
type Document struct {
	ID    string `json:"id"`
	Lang  string `json:"lang"`
	Kind  string `json:"kind"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

// Languages and kinds that Generate produces.
const (
	LangZH = "zh"
	LangEN = "en"

	KindSale       = "sale"
	KindLease      = "lease"
	KindEmployment = "employment"
	KindLoan       = "loan"
	KindJudgment   = "judgment"
)

// Kinds lists every kind, contracts first.
var Kinds = []string{KindSale, KindLease, KindEmployment, KindLoan, KindJudgment}

// ChineseShare is the fraction of documents written in Chinese.
const ChineseShare = 0.8

// Generate returns n documents for seed. Document i depends only on seed
// and i. n below zero is treated as zero.
func Generate(seed uint64, n int) []Document {
	docs := make([]Document, 0, max(n, 0))
	for i := range max(n, 0) {
		docs = append(docs, generateOne(seed, i))
	}
	return docs
}

func generateOne(seed uint64, i int) Document {
	r := rand.New(rand.NewPCG(seed, uint64(i)*0x9E3779B97F4A7C15+1))
	g := &gen{r: r}
	lang := LangEN
	if r.Float64() < ChineseShare {
		lang = LangZH
	}
	kind := Kinds[r.IntN(len(Kinds))]
	var title, text string
	if lang == LangZH {
		title, text = g.zhDocument(kind)
	} else {
		title, text = g.enDocument(kind)
	}
	return Document{
		ID:    fmt.Sprintf("demo-%d-%06d", seed, i),
		Lang:  lang,
		Kind:  kind,
		Title: title,
		Text:  text,
	}
}

// WriteJSONL writes docs to w, one JSON object per line.
func WriteJSONL(w io.Writer, docs []Document) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range docs {
		if err := enc.Encode(&docs[i]); err != nil {
			return fmt.Errorf("democorpus: document %d (%s): %w", i, docs[i].ID, err)
		}
	}
	return nil
}

// Bytes returns Generate(seed, n) as JSONL.
func Bytes(seed uint64, n int) []byte {
	var buf bytes.Buffer
	_ = WriteJSONL(&buf, Generate(seed, n)) // a bytes.Buffer never fails
	return buf.Bytes()
}

// gen draws slot values from one document's random stream.
type gen struct {
	r *rand.Rand
}

func (g *gen) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

// between returns an integer in [lo, hi].
func (g *gen) between(lo, hi int) int { return lo + g.r.IntN(hi-lo+1) }

// chance reports true with probability p.
func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

// subset returns a random subset of xs of size k, in the original order.
func subsetIdx(r *rand.Rand, n, k int) []int {
	perm := r.Perm(n)[:k]
	out := make([]bool, n)
	for _, p := range perm {
		out[p] = true
	}
	var idx []int
	for i, ok := range out {
		if ok {
			idx = append(idx, i)
		}
	}
	return idx
}
