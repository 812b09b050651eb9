package dataprep

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/llmesh/llmesh/services/dataprep/augment"
	"github.com/llmesh/llmesh/services/dataprep/dedup"
	"github.com/llmesh/llmesh/services/dataprep/label"
	"github.com/llmesh/llmesh/services/dataprep/normalize"
	"github.com/llmesh/llmesh/services/dataprep/quality"
	"github.com/llmesh/llmesh/services/internal/corpus"
	"github.com/llmesh/llmesh/services/internal/pii"
)

// pipeline is a spec's stages, built once and shared by the goroutines
// that run it (every stage is safe for concurrent use).
type pipeline struct {
	simplified bool
	quality    *quality.Filter
	pii        *pii.Scanner
	piiDrop    bool
	exact      bool
	exactSet   string
	near       *dedup.Hasher
	nearCfg    dedup.Config
	keep       dedup.Policy
	label      *label.Config
	augment    *augment.Augmenter
	copies     int
}

// decodeConfig decodes a stage's JSON config strictly.
func decodeConfig(stage string, raw json.RawMessage, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("stage %s config: %v", stage, err)
	}
	return nil
}

func buildPipeline(s *Spec) (*pipeline, error) {
	p := &pipeline{}
	if raw, ok := s.stage(StageNormalize); ok {
		var c struct {
			Simplified bool `json:"simplified"`
		}
		if err := decodeConfig(StageNormalize, raw, &c); err != nil {
			return nil, err
		}
		p.simplified = c.Simplified
	}
	if raw, ok := s.stage(StageQuality); ok {
		cfg := quality.DefaultConfig()
		if s.MinChars > 0 {
			cfg.MinChars = s.MinChars
		}
		if err := decodeConfig(StageQuality, raw, &cfg); err != nil {
			return nil, err
		}
		f, err := quality.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("stage quality: %w", err)
		}
		p.quality = f
	}
	if raw, ok := s.stage(StagePII); ok {
		var c struct {
			Types  []pii.Type `json:"types"`
			Action string     `json:"action"`
		}
		if err := decodeConfig(StagePII, raw, &c); err != nil {
			return nil, err
		}
		switch c.Action {
		case "", "redact":
		case "drop":
			p.piiDrop = true
		default:
			return nil, fmt.Errorf("stage pii: action %q: want redact or drop", c.Action)
		}
		sc, err := pii.New(pii.Config{Types: c.Types})
		if err != nil {
			return nil, fmt.Errorf("stage pii: %w", err)
		}
		p.pii = sc
	}
	if raw, ok := s.stage(StageExactDedup); ok {
		var c struct {
			Set string `json:"set"`
		}
		if err := decodeConfig(StageExactDedup, raw, &c); err != nil {
			return nil, err
		}
		p.exact, p.exactSet = true, c.Set
	}
	if raw, ok := s.stage(StageNearDedup); ok {
		d := dedup.DefaultConfig()
		c := struct {
			Shingle   *int     `json:"shingle"`
			Perms     *int     `json:"perms"`
			Bands     *int     `json:"bands"`
			Rows      *int     `json:"rows"`
			Seed      *uint64  `json:"seed"`
			Threshold *float64 `json:"threshold"`
			Keep      string   `json:"keep"`
		}{}
		if err := decodeConfig(StageNearDedup, raw, &c); err != nil {
			return nil, err
		}
		set := func(dst *int, v *int) {
			if v != nil {
				*dst = *v
			}
		}
		set(&d.Shingle, c.Shingle)
		set(&d.Perms, c.Perms)
		set(&d.Bands, c.Bands)
		set(&d.Rows, c.Rows)
		if c.Seed != nil {
			d.Seed = *c.Seed
		}
		if c.Threshold != nil {
			d.Threshold = *c.Threshold
		}
		h, err := dedup.NewHasher(d)
		if err != nil {
			return nil, fmt.Errorf("stage near_dedup: %w", err)
		}
		if c.Keep == "" {
			c.Keep = "first"
		}
		if p.keep, err = dedup.ParsePolicy(c.Keep); err != nil {
			return nil, fmt.Errorf("stage near_dedup: %w", err)
		}
		p.near, p.nearCfg = h, d
	}
	if raw, ok := s.stage(StageLabel); ok {
		cfg := label.DefaultConfig()
		if len(bytes.TrimSpace(raw)) > 0 {
			var err error
			if cfg, err = label.ParseConfig(raw); err != nil {
				return nil, fmt.Errorf("stage label: %w", err)
			}
		}
		p.label = cfg
	}
	if raw, ok := s.stage(StageAugment); ok {
		c := struct {
			augment.Config
			Copies int `json:"copies"`
		}{Config: augment.Config{Seed: s.Seed}}
		if err := decodeConfig(StageAugment, raw, &c); err != nil {
			return nil, err
		}
		if c.Copies == 0 {
			c.Copies = 1
		}
		if c.Copies < 0 || c.Copies > 16 {
			return nil, fmt.Errorf("stage augment: copies %d out of range [1, 16]", c.Copies)
		}
		a, err := augment.New(c.Config)
		if err != nil {
			return nil, fmt.Errorf("stage augment: %w", err)
		}
		p.augment, p.copies = a, c.Copies
	}
	return p, nil
}

// item is one document on its way through a shard.
type item struct {
	doc     corpus.Doc
	drop    string // "stage:rule" when dropped
	invalid int    // invalid UTF-8 sequences replaced
	hash    [32]byte
	sig     []uint32
	votes   []int8
}

// StageStats is what one stage did.
type StageStats struct {
	In      int            `json:"in"`
	Out     int            `json:"out"`
	Dropped map[string]int `json:"dropped,omitempty"`
	Millis  float64        `json:"millis"`
}

// stats accumulates per-stage counts and times.
type stats map[string]*StageStats

func (s stats) get(name string) *StageStats {
	st := s[name]
	if st == nil {
		st = &StageStats{Dropped: map[string]int{}}
		s[name] = st
	}
	return st
}

func (s stats) merge(o map[string]*StageStats) {
	for name, st := range o {
		m := s.get(name)
		m.In += st.In
		m.Out += st.Out
		m.Millis += st.Millis
		for r, n := range st.Dropped {
			m.Dropped[r] += n
		}
	}
}

// process runs the per-document stages over docs on every core, in order:
// each document is read once by every scanner while it is in cache.
func (p *pipeline) process(docs []corpus.Doc) ([]item, stats) {
	items := make([]item, len(docs))
	workers := runtime.GOMAXPROCS(0)
	per := make([]stats, workers)
	var wg sync.WaitGroup
	next := make(chan int, 64)
	for w := range workers {
		per[w] = stats{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sigBuf []uint32
			for i := range next {
				items[i].doc = docs[i]
				sigBuf = p.one(&items[i], per[w], sigBuf)
			}
		}()
	}
	go func() {
		for i := range docs {
			next <- i
		}
		close(next)
	}()
	wg.Wait()
	total := stats{}
	for _, s := range per {
		total.merge(s)
	}
	return items, total
}

// one runs the per-document stages on one item.
func (p *pipeline) one(it *item, st stats, sigBuf []uint32) []uint32 {
	timed := func(name string, f func() string) bool {
		start := time.Now()
		s := st.get(name)
		s.In++
		reason := f()
		s.Millis += float64(time.Since(start).Microseconds()) / 1000
		if reason != "" {
			s.Dropped[reason]++
			it.drop = name + ":" + reason
			return false
		}
		s.Out++
		return true
	}
	d := &it.doc
	var key string
	if !timed(StageNormalize, func() string {
		d.Text, it.invalid = normalize.TextCount(d.Text)
		if d.Text == "" {
			return "empty"
		}
		key = normalize.KeyWith(d.Text, normalize.KeyOptions{Simplified: p.simplified})
		return ""
	}) {
		return sigBuf
	}
	if p.quality != nil && !timed(StageQuality, func() string {
		rule, ok := p.quality.Check(d.Text)
		if !ok {
			return rule
		}
		return ""
	}) {
		return sigBuf
	}
	if p.pii != nil && !timed(StagePII, func() string {
		text, matches := p.pii.Scrub(d.Text)
		if len(matches) == 0 {
			return ""
		}
		if p.piiDrop {
			return "contains_" + string(matches[0].Type)
		}
		d.Text = text
		for _, m := range matches {
			d.Redactions = append(d.Redactions, corpus.Span{Start: m.Start, End: m.End, Type: string(m.Type)})
		}
		// The key follows the scrubbed text, so that two documents
		// differing only in a phone number are duplicates.
		key = normalize.KeyWith(d.Text, normalize.KeyOptions{Simplified: p.simplified})
		return ""
	}) {
		return sigBuf
	}
	// The dedup and label stages decide across all shards: here they only
	// compute each document's features (counted in the global phase).
	featured := func(name string, f func()) {
		start := time.Now()
		f()
		st.get(name).Millis += float64(time.Since(start).Microseconds()) / 1000
	}
	if p.exact {
		featured(StageExactDedup, func() { it.hash = dedup.ContentHash(key) })
	}
	if p.near != nil {
		featured(StageNearDedup, func() {
			sigBuf = p.near.Signature(key, sigBuf[:0])
			it.sig = append([]uint32(nil), sigBuf...)
			d.Date = dedup.DateOf(d.Title)
		})
	}
	if p.label != nil {
		featured(StageLabel, func() {
			// A document's type shows in its title and opening; the
			// labeling functions see the first labelPrefix bytes.
			m := label.Apply(p.label, []label.Doc{{Title: d.Title, Text: prefix(d.Text, labelPrefix)}})
			it.votes = append([]int8(nil), m.Row(0)...)
		})
	}
	if !utf8.ValidString(d.Text) {
		it.drop = "normalize:invalid_utf8"
	}
	return sigBuf
}

// labelPrefix is how much of a document the labeling functions read.
const labelPrefix = 8 << 10

// prefix cuts s to at most n bytes at a character boundary.
func prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
