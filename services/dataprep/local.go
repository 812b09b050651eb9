package dataprep

import (
	"context"
	"fmt"

	"github.com/llmesh/llmesh/services/internal/corpus"
	"github.com/llmesh/llmesh/services/internal/jobspec"
)

// Process runs a spec's stages over documents in this process, on every
// core, without the bus: the same per-document and global stages a job
// runs, as one shard. Exact dedup across runs is not available here. It is
// what `llmesh bench dataprep` measures and what tests use to check stages.
func Process(ctx context.Context, spec Spec, docs []corpus.Doc) ([]corpus.Doc, Result, error) {
	if spec.Output == "" {
		spec.Output = "local"
	}
	if spec.Input == "" && spec.Builtin == "" {
		spec.Input = "local"
	}
	if err := spec.Validate(); err != nil {
		return nil, Result{}, fmt.Errorf("%w: dataprep: %w", jobspec.ErrInvalid, err)
	}
	p, err := buildPipeline(&spec)
	if err != nil {
		return nil, Result{}, err
	}
	items, st := p.process(docs)
	res := Result{Dataset: spec.Output, Format: spec.Format, Shards: 1, InputDocuments: len(docs)}
	var kept []corpus.Doc
	var feats []feature
	var orders []int
	for i, it := range items {
		res.InvalidUTF8 += it.invalid
		if it.drop != "" {
			continue
		}
		kept = append(kept, it.doc)
		orders = append(orders, i)
		feats = append(feats, feature{order: i, hash: it.hash, sig: it.sig, votes: it.votes, date: it.doc.Date})
	}
	decisions, labels, err := p.global(ctx, feats, nil, st)
	if err != nil {
		return nil, Result{}, err
	}
	out := p.apply(kept, orders, decisions)
	res.Augmented = p.augmentAll(&out)
	res.Documents, res.Stages, res.Labels = len(out), st, labels
	return out, res, nil
}
