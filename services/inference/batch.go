package inference

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/sampling"
)

// ErrQueueFull: a model's queue of waiting requests is at its bound
// (Config.QueueDepth), or the instance is at Config.Concurrency. The
// request may be retried later (code resource_exhausted, HTTP 429).
var ErrQueueFull = errors.New("inference: queue full")

// Whether a route's backend keeps KV caches (DecodeResult.CachedTokens).
const (
	cacheUnknown = iota // not yet seen: send whole sequences
	cacheYes            // append new tokens to cached sequences
	cacheNo             // send each sequence's whole window every step
)

// sequence is one generation in a route's continuous batch. The request's
// goroutine builds it and reads its events; the route's batch loop owns
// the fields below events.
type sequence struct {
	ctx       context.Context // cancelled on a client cancel, a stop sequence or the deadline
	maxTokens int
	exit      float32
	ignoreEOS bool
	sampler   *sampling.Sampler
	// events carries each generated token, then one event with a finish
	// reason or an error. Its capacity (maxTokens+2) means the loop never
	// blocks on a slow reader.
	events chan event

	ids     []int32 // prompt (or end-of-text when empty), then generated tokens
	cacheID uint64
	pos     int // tokens of ids in the backend's cache
	gen     int
	saved   int64 // layers early exit skipped
	done    bool
}

// event is what a sequence's reader receives.
type event struct {
	tok    int32
	saved  int64
	finish string // "stop" or "length" on the last event
	err    error  // on the last event, when the generation failed
}

func newSequence(ctx context.Context, ids []int32, maxTokens int, exit float32, p sampling.Params) *sequence {
	sm := sampling.New(p)
	sm.Seen(ids...)
	return &sequence{ctx: ctx, ids: ids, maxTokens: maxTokens, exit: exit, sampler: sm, events: make(chan event, maxTokens+2)}
}

// batch is a route's continuous batch: a bounded queue of sequences
// waiting to join, and the loop that decodes the running ones, started
// when work arrives and ended when there is none.
type batch struct {
	mu      sync.Mutex
	queue   []*sequence
	running bool        // the loop is running
	idle    *time.Timer // keep-alive: unloads the model when it fires
	nextID  uint64

	// Owned by the loop (or by an unload while no loop runs).
	release []uint64 // cache ids to free with the next step
	cache   int
}

// submit queues q on r's batch, starting its loop when none runs.
func (s *Service) submit(r *route, q *sequence) error {
	b := &r.batch
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) >= s.queueDepth {
		return fmt.Errorf("%w: model %q has %d requests waiting (the limit); retry later", ErrQueueFull, r.model, len(b.queue))
	}
	b.queue = append(b.queue, q)
	if !b.running {
		b.running = true
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.runBatch(r)
		}()
	}
	return nil
}

// runBatch is a route's batch loop: each step it admits waiting sequences
// (up to Config.MaxBatch running, new prompts under Config.StepTokens),
// issues one DecodeStep for all running sequences, samples each and
// retires the finished, cancelled and expired ones.
func (s *Service) runBatch(r *route) {
	b := &r.batch
	var active []*sequence
	var lm *resident
	for {
		b.mu.Lock()
		budget := s.stepTokens
		for _, q := range active {
			budget -= max(1, len(q.ids)-q.pos)
		}
		for len(b.queue) > 0 && len(active) < s.maxBatch {
			q := b.queue[0]
			if err := q.ctx.Err(); err != nil { // an expired request never runs
				b.queue = b.queue[1:]
				s.count(err, true)
				q.events <- event{err: fmt.Errorf("model %q: %w before the request ran", r.model, err)}
				continue
			}
			if budget <= 0 && len(active) > 0 {
				break
			}
			b.queue = b.queue[1:]
			b.nextID++
			q.cacheID, q.pos = b.nextID, 0
			active = append(active, q)
			budget -= len(q.ids)
		}
		if len(active) == 0 && len(b.queue) == 0 {
			b.running = false
			if s.keepAlive > 0 {
				if b.idle == nil {
					b.idle = time.AfterFunc(s.keepAlive, func() { s.unloadIdle(r, "keep-alive") })
				} else {
					b.idle.Reset(s.keepAlive)
				}
			}
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		active, lm = s.step(r, active, lm)
	}
}

// retire ends q with its last event and frees its cache.
func (b *batch) retire(q *sequence, ev event) {
	q.done = true
	q.events <- ev
	if b.cache != cacheNo {
		b.release = append(b.release, q.cacheID)
	}
}

// restart makes every sequence prefill again under a fresh cache id
// (after the plugin lost its caches or the model was reloaded).
func (b *batch) restart(active []*sequence) {
	for _, q := range active {
		if b.cache != cacheNo {
			b.release = append(b.release, q.cacheID)
		}
		b.nextID++
		q.cacheID, q.pos = b.nextID, 0
	}
}

// step runs one decode step over active and returns the sequences still
// running and the resident model they ran on.
func (s *Service) step(r *route, active []*sequence, lm *resident) ([]*sequence, *resident) {
	ctx := s.runCtx
	b := &r.batch
	failAll := func(err error) ([]*sequence, *resident) {
		for _, q := range active {
			b.retire(q, event{err: err})
		}
		return nil, lm
	}
	keep := active[:0]
	for _, q := range active {
		if err := q.ctx.Err(); err != nil {
			s.count(err, false)
			b.retire(q, event{err: err})
		} else {
			keep = append(keep, q)
		}
	}
	active = keep
	if len(active) == 0 {
		return active, lm
	}
	r.mu.Lock()
	cur := r.cur
	r.mu.Unlock()
	if cur == nil { // unloaded (keep-alive or memory budget) under queued requests
		var err error
		if cur, err = s.load(ctx, r, nil, nil); err != nil && retryable(err) {
			cur, err = s.recover(ctx, r, nil, err)
		}
		if err != nil {
			return failAll(err)
		}
	}
	if cur != lm {
		if lm != nil {
			b.restart(active)
		}
		lm = cur
	}
	if s.noCache {
		b.cache = cacheNo
	}
	nctx := lm.cfg.NCtx

	// One DecodeStep per early-exit threshold (one in the usual case).
	budget := s.stepTokens
	type part struct {
		seqs [][]int32
		ids  []uint64
		qs   []*sequence
	}
	var parts []*part
	byExit := map[float32]*part{}
	for _, q := range active {
		if q.pos == 0 && len(q.ids) > nctx {
			b.retire(q, event{err: fmt.Errorf("%w: model %q: the prompt of %d tokens exceeds its context of %d tokens", errInvalidRequest, r.model, len(q.ids), nctx)})
			continue
		}
		var toks []int32
		switch b.cache {
		case cacheNo:
			toks = q.ids[max(0, len(q.ids)-nctx):]
		case cacheUnknown:
			toks = q.ids[q.pos:]
		default:
			n := len(q.ids) - q.pos
			if n > 1 { // a prefill, in chunks under the step's budget
				if n = min(n, budget); n <= 0 {
					continue
				}
			}
			toks = q.ids[q.pos : q.pos+n]
		}
		budget -= len(toks)
		p := byExit[q.exit]
		if p == nil {
			p = &part{}
			byExit[q.exit] = p
			parts = append(parts, p)
		}
		p.seqs, p.ids, p.qs = append(p.seqs, toks), append(p.ids, q.cacheID), append(p.qs, q)
	}
	for _, p := range parts {
		req := accel.DecodeRequest{ModelID: r.id, Sequences: p.seqs, ExitThreshold: p.qs[0].exit}
		if b.cache != cacheNo {
			req.CacheIDs, req.Release = p.ids, b.release
		}
		if len(parts) == 1 {
			req.Steps, req.StopTokens = s.multiSteps(b, p.qs, p.seqs, lm)
		}
		res, err := r.pl.p.DecodeStep(ctx, req)
		if err != nil {
			if ctx.Err() != nil || !retryable(err) {
				return failAll(fmt.Errorf("model %q: decode: %w", r.model, err))
			}
			// The plugin died (and was restarted) or lost the model: load
			// it again and prefill every sequence again.
			nlm, err := s.recover(ctx, r, lm, err)
			if err != nil {
				return failAll(err)
			}
			b.restart(active)
			return stillRunning(active), nlm
		}
		b.release = nil
		s.stats.steps.Add(1)
		s.stats.sequences.Add(int64(len(p.seqs)))
		if b.cache == cacheUnknown {
			if len(res.CachedTokens) == len(p.seqs) {
				b.cache = cacheYes
			} else {
				b.cache = cacheNo
			}
		}
		if req.Steps > 1 && len(res.Tokens) == len(p.seqs) {
			for i, q := range p.qs {
				toks := res.Tokens[i]
				q.pos += len(p.seqs[i]) + len(toks) - 1 // the cache holds all but the last
				for _, next := range toks {
					if !s.accept(b, q, next, lm.eot, nctx) {
						break
					}
				}
			}
			continue
		}
		if len(res.Logits) != len(p.seqs) {
			return failAll(fmt.Errorf("model %q: decode: %d rows of logits for %d sequences", r.model, len(res.Logits), len(p.seqs)))
		}
		for i, q := range p.qs {
			if b.cache == cacheYes {
				if q.pos += len(p.seqs[i]); q.pos < len(q.ids) {
					continue // more of the prompt to prefill
				}
			}
			if i < len(res.ExitLayers) && res.ExitLayers[i] > 0 {
				q.saved += int64(max(0, lm.cfg.NLayer-res.ExitLayers[i]))
			}
			s.accept(b, q, q.sampler.Next(res.Logits[i]), lm.eot, nctx)
		}
	}
	return stillRunning(active), lm
}

// accept takes the token picked for q: it ends q at end-of-text (unless
// ignored) or an empty pick, else appends and streams it and ends q at its
// token limit or its context (a token past the context cannot be fed
// back). It reports whether q goes on.
func (s *Service) accept(b *batch, q *sequence, next int32, eot uint32, nctx int) bool {
	if next < 0 || (uint32(next) == eot && !q.ignoreEOS) {
		b.retire(q, event{finish: "stop", saved: q.saved})
		return false
	}
	q.ids = append(q.ids, next)
	q.gen++
	s.stats.tokens.Add(1)
	q.events <- event{tok: next, saved: q.saved}
	if q.gen >= q.maxTokens || len(q.ids) > nctx {
		b.retire(q, event{finish: "length", saved: q.saved})
		return false
	}
	return true
}

func stillRunning(active []*sequence) []*sequence {
	keep := active[:0]
	for _, q := range active {
		if !q.done {
			keep = append(keep, q)
		}
	}
	return keep
}

// Stats counts the work of an instance's batches since it started.
type Stats struct {
	Steps     int64 // DecodeStep calls
	Sequences int64 // sequences in them, summed (Sequences/Steps is the mean batch)
	Tokens    int64 // tokens generated
	Cancelled int64 // generations stopped early: client cancel or stop sequence
	Expired   int64 // generations whose deadline passed
	NeverRan  int64 // of Cancelled and Expired, those that ended while queued
}

type stats struct {
	steps, sequences, tokens, cancelled, expired, neverRan atomic.Int64
}

func (s *Service) count(err error, queued bool) {
	if errors.Is(err, context.DeadlineExceeded) {
		s.stats.expired.Add(1)
	} else {
		s.stats.cancelled.Add(1)
	}
	if queued {
		s.stats.neverRan.Add(1)
	}
}

// Stats reports the instance's counters.
func (s *Service) Stats() Stats {
	return Stats{Steps: s.stats.steps.Load(), Sequences: s.stats.sequences.Load(), Tokens: s.stats.tokens.Load(),
		Cancelled: s.stats.cancelled.Load(), Expired: s.stats.expired.Load(), NeverRan: s.stats.neverRan.Load()}
}

// multiSteps returns how many tokens the next DecodeStep may decode for
// qs (and the stop tokens): more than one only when every sequence is a
// greedy decode (one token fed, argmax picks, no early exit), the KV cache
// is in use, and no waiting request could join the batch at the next step
// — it would otherwise wait several tokens for its turn. (A full batch, or
// batching off, leaves waiting requests waiting either way.)
func (s *Service) multiSteps(b *batch, qs []*sequence, seqs [][]int32, lm *resident) (int, []int32) {
	if s.decodeSteps <= 1 || b.cache != cacheYes {
		return 0, nil
	}
	steps := s.decodeSteps
	for i, q := range qs {
		if len(seqs[i]) != 1 || q.pos+1 != len(q.ids) || !q.sampler.Greedy() || q.exit != 0 || q.ignoreEOS != qs[0].ignoreEOS {
			return 0, nil
		}
		steps = min(steps, q.maxTokens-q.gen)
	}
	b.mu.Lock()
	waiting := len(b.queue)
	b.mu.Unlock()
	if (waiting > 0 && len(qs) < s.maxBatch) || steps <= 1 {
		return 0, nil
	}
	if qs[0].ignoreEOS {
		return steps, nil
	}
	return steps, []int32{int32(lm.eot)}
}
