package engine

import (
	"fmt"
	"slices"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/sampling"
	"github.com/llmesh/llmesh/accel/transformer"
)

// cachedSeqs checks a cached request's ids, makes l's decoder on first
// use and pairs the ids with their tokens.
func (e *Engine) cachedSeqs(l *loaded, req accel.DecodeRequest) ([]transformer.DecodeSeq, error) {
	if len(req.CacheIDs) != len(req.Sequences) {
		return nil, invalid("model %q: %d cache ids for %d sequences", req.ModelID, len(req.CacheIDs), len(req.Sequences))
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
	return seqs, nil
}

// cachedDecode runs one KV-cached decode step on l (locked by the caller).
func (e *Engine) cachedDecode(l *loaded, req accel.DecodeRequest) (accel.DecodeResult, error) {
	id := req.ModelID
	seqs, err := e.cachedSeqs(l, req)
	if err != nil {
		return accel.DecodeResult{}, err
	}
	res, err := l.dec.Step(seqs, req.Release, req.ExitThreshold)
	if err != nil {
		return accel.DecodeResult{}, wrapModelErr(id, err)
	}
	return copyResult(res, l.model.Config().VocabSize), nil
}

// multiDecode is multi-step greedy decoding (DecodeRequest.Steps): up to
// Steps decoder steps in one call, each sequence's argmax fed back, so that
// one plugin round trip carries several tokens. A sequence stops at a stop
// token or when the next token would pass its context. An error after the
// first step ends the call with the tokens picked so far (the failed step
// changed nothing, and its input — the last token returned — is fed again
// by the next call, as after any step).
func (e *Engine) multiDecode(l *loaded, req accel.DecodeRequest) (accel.DecodeResult, error) {
	seqs, err := e.cachedSeqs(l, req)
	if err != nil {
		return accel.DecodeResult{}, err
	}
	cfg := l.model.Config()
	limit := cfg.NCtx // learned positions end at the context
	if cfg.RoPE() && cfg.AttnWindow > 0 {
		limit = 0 // a sliding window over rotary positions has no end
	}
	n := len(seqs)
	out := accel.DecodeResult{Tokens: make([][]int32, n), CachedTokens: make([]int, n), ExitLayers: make([]int, n)}
	at := make([]int, n) // seqs[j] is sequence at[j] of the request
	for i := range at {
		at[i] = i
	}
	fed := make([][1]int32, n)
	release := req.Release
	for step := 0; step < req.Steps && len(seqs) > 0; step++ {
		res, err := l.dec.Step(seqs, release, req.ExitThreshold)
		if err != nil {
			if step == 0 {
				return accel.DecodeResult{}, wrapModelErr(req.ModelID, err)
			}
			break
		}
		release = nil
		keep := 0
		for j := range seqs {
			i := at[j]
			tok := sampling.Argmax(res.Logits[j])
			out.Tokens[i] = append(out.Tokens[i], tok)
			out.CachedTokens[i], out.ExitLayers[i] = res.Cached[j], res.ExitLayers[j]
			if slices.Contains(req.StopTokens, tok) || (limit > 0 && res.Cached[j] >= limit) {
				continue
			}
			fed[i][0] = tok
			seqs[keep] = transformer.DecodeSeq{ID: seqs[j].ID, Tokens: fed[i][:]}
			at[keep] = i
			keep++
		}
		seqs, at = seqs[:keep], at[:keep]
	}
	return out, nil
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
