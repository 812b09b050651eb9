package dataprep

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/llmesh/llmesh/services/dataprep/dedup"
	"github.com/llmesh/llmesh/services/dataprep/label"
)

// feature is what the global phase needs of a document that survived the
// per-document stages: its position in the input and its dedup and label
// features. Texts stay in the shards' outputs.
type feature struct {
	order int
	hash  [32]byte
	sig   []uint32
	votes []int8
	date  string
}

// decision is the global phase's verdict on one document.
type decision struct {
	drop  string // "stage:rule" when dropped
	label string
}

// LabelReport summarises weak supervision.
type LabelReport struct {
	Model     string         `json:"model"` // label_model or majority_vote
	Counts    map[string]int `json:"counts"`
	Functions any            `json:"functions,omitempty"`
}

// claimFunc records content hashes across runs; nil means within the job.
type claimFunc func(ctx context.Context, hashes [][32]byte) ([]bool, error)

// global runs the stages that decide across all documents: exact dedup
// (first occurrence kept, optionally across runs), near dedup (MinHash LSH
// clusters, keep first or newest) and the label model. feats must be in
// input order.
func (p *pipeline) global(ctx context.Context, feats []feature, claim claimFunc, st stats) (map[int]decision, *LabelReport, error) {
	sort.Slice(feats, func(i, j int) bool { return feats[i].order < feats[j].order })
	out := make(map[int]decision, len(feats))
	alive := feats
	if p.exact {
		start := time.Now()
		s := st.get(StageExactDedup)
		s.In += len(alive)
		seen := make(map[[32]byte]bool, len(alive))
		var next []feature
		for _, f := range alive {
			if seen[f.hash] {
				out[f.order] = decision{drop: StageExactDedup + ":duplicate"}
				s.Dropped["duplicate"]++
				continue
			}
			seen[f.hash] = true
			next = append(next, f)
		}
		if claim != nil && len(next) > 0 {
			hashes := make([][32]byte, len(next))
			for i, f := range next {
				hashes[i] = f.hash
			}
			fresh, err := claim(ctx, hashes)
			if err != nil {
				return nil, nil, fmt.Errorf("exact dedup across runs: %w", err)
			}
			kept := next[:0]
			for i, f := range next {
				if !fresh[i] {
					out[f.order] = decision{drop: StageExactDedup + ":seen_in_earlier_run"}
					s.Dropped["seen_in_earlier_run"]++
					continue
				}
				kept = append(kept, f)
			}
			next = kept
		}
		s.Out += len(next)
		s.Millis += float64(time.Since(start).Microseconds()) / 1000
		alive = next
	}
	if p.near != nil {
		start := time.Now()
		s := st.get(StageNearDedup)
		s.In += len(alive)
		ix, err := dedup.NewIndex(p.nearCfg)
		if err != nil {
			return nil, nil, err
		}
		for i, f := range alive {
			if err := ix.Add(i, f.sig); err != nil {
				return nil, nil, fmt.Errorf("near dedup: %w", err)
			}
		}
		var confirm func(a, b int) bool
		if p.nearCfg.Threshold > 0 {
			confirm = ix.ConfirmEstimated()
		}
		clusters := ix.Clusters(confirm)
		keep := dedup.Keep(clusters, p.keep, func(id int) (string, int) { return alive[id].date, alive[id].order })
		var next []feature
		for i, f := range alive {
			if k, inCluster := keep[i]; inCluster && !k {
				out[f.order] = decision{drop: StageNearDedup + ":near_duplicate"}
				s.Dropped["near_duplicate"]++
				continue
			}
			next = append(next, f)
		}
		s.Out += len(next)
		s.Millis += float64(time.Since(start).Microseconds()) / 1000
		alive = next
	}
	var rep *LabelReport
	if p.label != nil && len(alive) > 0 {
		start := time.Now()
		s := st.get(StageLabel)
		s.In += len(alive)
		names := p.label.Names()
		m := label.NewMatrix(len(alive), len(names))
		for i, f := range alive {
			copy(m.Row(i), f.votes)
		}
		m.Names, m.Labels = names, p.label.LabelNames()
		rep = &LabelReport{Model: "label_model", Counts: map[string]int{}}
		var labels []int
		// The one-accuracy-per-function model: the full confusion model can
		// swap classes on a corpus where some labels never occur (the demo
		// corpus has no statutes), the accuracy model stays anchored.
		if lm, err := label.FitLabelModel(m, len(m.Labels), label.FitOptions{Model: label.ModelAccuracy}); err == nil {
			labels, _ = lm.Predict(m)
		} else {
			rep.Model = "majority_vote"
			labels = label.MajorityVote(m)
		}
		rep.Functions = label.Analyze(m)
		for i, f := range alive {
			name := "other"
			if l := labels[i]; l >= 0 && l < len(m.Labels) {
				name = m.Labels[l]
			}
			out[f.order] = decision{label: name}
			rep.Counts[name]++
		}
		s.Out += len(alive)
		s.Millis += float64(time.Since(start).Microseconds()) / 1000
	}
	return out, rep, nil
}
