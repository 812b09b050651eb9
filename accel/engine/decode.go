package engine

import (
	"fmt"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/transformer"
)

// cachedDecode runs one KV-cached decode step on l (locked by the caller).
func (e *Engine) cachedDecode(l *loaded, req accel.DecodeRequest) (accel.DecodeResult, error) {
	id := req.ModelID
	if len(req.CacheIDs) != len(req.Sequences) {
		return accel.DecodeResult{}, invalid("model %q: %d cache ids for %d sequences", id, len(req.CacheIDs), len(req.Sequences))
	}
	if l.dec == nil {
		cfg := l.model.Config()
		blocks := max(1, int(e.kvBytes/int64(transformer.KVBlockBytes(cfg))))
		l.dec = transformer.NewDecoder(l.model, blocks)
	}
	seqs := make([]transformer.DecodeSeq, len(req.Sequences))
	for i, s := range req.Sequences {
		seqs[i] = transformer.DecodeSeq{ID: req.CacheIDs[i], Tokens: s}
	}
	res, err := l.dec.Step(seqs, req.Release, req.ExitThreshold)
	if err != nil {
		return accel.DecodeResult{}, wrapModelErr(id, err)
	}
	return copyResult(res, l.model.Config().VocabSize), nil
}

// exitDecode runs a step without cache ids but with early exit: each
// sequence (its last n_ctx tokens, as without the cache) is prefilled whole
// in a scratch decoder, whose sequences are released afterwards.
func (e *Engine) exitDecode(l *loaded, req accel.DecodeRequest) (accel.DecodeResult, error) {
	cfg := l.model.Config()
	seqs := make([]transformer.DecodeSeq, len(req.Sequences))
	ids := make([]uint64, len(req.Sequences))
	need := 0
	for i, s := range req.Sequences {
		if len(s) > cfg.NCtx {
			s = s[len(s)-cfg.NCtx:]
		}
		ids[i] = uint64(i)
		seqs[i] = transformer.DecodeSeq{ID: ids[i], Tokens: s}
		need += (len(s) + transformer.KVBlockTokens - 1) / transformer.KVBlockTokens
	}
	if l.scratch == nil || l.scratch.Stats().Budget < need {
		l.scratch = transformer.NewDecoder(l.model, max(need, 1))
	}
	defer l.scratch.Release(ids...)
	res, err := l.scratch.Step(seqs, nil, req.ExitThreshold)
	if err != nil {
		return accel.DecodeResult{}, wrapModelErr(req.ModelID, err)
	}
	out := copyResult(res, cfg.VocabSize)
	out.CachedTokens = nil
	return out, nil
}

// copyResult copies a decoder's step result, whose buffers the next step
// reuses.
func copyResult(res transformer.StepResult, V int) accel.DecodeResult {
	n := len(res.Logits)
	flat := make([]float32, n*V)
	out := accel.DecodeResult{
		Logits:       make([][]float32, n),
		CachedTokens: append([]int(nil), res.Cached...),
		ExitLayers:   append([]int(nil), res.ExitLayers...),
	}
	for i, row := range res.Logits {
		out.Logits[i] = flat[i*V : (i+1)*V : (i+1)*V]
		copy(out.Logits[i], row)
	}
	return out
}

// KVStats describes the KV cache of a loaded model (zero before its first
// cached decode step).
func (e *Engine) KVStats(modelID string) (transformer.KVStats, error) {
	e.mu.RLock()
	l, ok := e.models[modelID]
	e.mu.RUnlock()
	if !ok {
		return transformer.KVStats{}, fmt.Errorf("%w: %q", accel.ErrUnknownModel, modelID)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dec == nil {
		return transformer.KVStats{}, nil
	}
	return l.dec.Stats(), nil
}
