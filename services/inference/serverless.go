package inference

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/llmesh/llmesh/accel"
)

// ErrMemoryBudget: loading a model would exceed Config.MemoryBudget and no
// idle model can be unloaded to make room (code resource_exhausted).
var ErrMemoryBudget = errors.New("inference: memory budget exceeded")

// DefaultKeepAlive is how long a model stays loaded without requests.
const DefaultKeepAlive = 5 * time.Minute

// DefaultDecodeSteps is Config.DecodeSteps's default: up to 8 tokens per
// plugin round trip for greedy sequences while nothing waits.
const DefaultDecodeSteps = 8

// unloadIdle unloads r's model when no request uses it: nothing queued,
// running or in flight. It reports whether it unloaded the model.
func (s *Service) unloadIdle(r *route, reason string) bool {
	b := &r.batch
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running || len(b.queue) > 0 || r.n.Load() > 0 {
		return false
	}
	// A route that is loading is not idle; never wait for it (an eviction
	// runs inside another route's load).
	if !r.mu.TryLock() {
		return false
	}
	defer r.mu.Unlock()
	if r.cur == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.pl.p.Unload(ctx, r.id); err != nil && !errors.Is(err, accel.ErrUnknownModel) {
		s.log.Warn("unload idle model", "name", r.model, "backend", r.pl.backend, "err", err)
	}
	r.cur = nil
	b.release = nil // the caches went with the model
	s.forget(r)
	s.log.Info("unloaded model", "name", r.model, "reason", reason, "backend", r.pl.backend)
	return true
}

// reserve accounts size bytes for r's model under the memory budget,
// unloading idle models, least recently used first, to make room.
func (s *Service) reserve(r *route, size int64) error {
	if s.budget > 0 && size > s.budget {
		return fmt.Errorf("%w: model %q needs %d bytes, more than the whole budget of %d", ErrMemoryBudget, r.model, size, s.budget)
	}
	for {
		s.memMu.Lock()
		used := s.memUsed - s.mem[r]
		if s.budget <= 0 || used+size <= s.budget {
			s.mem[r] = size
			s.memUsed = used + size
			s.memMu.Unlock()
			return nil
		}
		victims := make([]*route, 0, len(s.mem))
		for v := range s.mem {
			if v != r {
				victims = append(victims, v)
			}
		}
		s.memMu.Unlock()
		sort.Slice(victims, func(i, j int) bool { return victims[i].used.Load() < victims[j].used.Load() })
		evicted := false
		for _, v := range victims {
			if s.unloadIdle(v, "memory budget") {
				evicted = true
				break
			}
		}
		if !evicted {
			return fmt.Errorf("%w: model %q needs %d bytes, %d of %d are held by models in use; retry later",
				ErrMemoryBudget, r.model, size, used, s.budget)
		}
	}
}

// forget drops r's model from the memory accounting.
func (s *Service) forget(r *route) {
	s.memMu.Lock()
	s.memUsed -= s.mem[r]
	delete(s.mem, r)
	s.memMu.Unlock()
}

// Loaded lists the models loaded in this instance's plugins and the bytes
// their weights take, by name.
func (s *Service) Loaded() map[string]int64 {
	s.memMu.Lock()
	defer s.memMu.Unlock()
	out := map[string]int64{}
	for r, n := range s.mem {
		out[r.model] += n
	}
	return out
}

// stopKeepAlives stops every route's keep-alive timer (the service is
// closing its plugins anyway).
func (s *Service) stopKeepAlives() {
	s.mu.Lock()
	models := make([]*served, 0, len(s.models))
	for _, m := range s.models {
		models = append(models, m)
	}
	s.mu.Unlock()
	var routes []*route
	for _, m := range models { // m.mu after s.mu is released: acquire takes them the other way
		m.mu.Lock()
		if m.route != nil {
			routes = append(routes, m.route)
		}
		for d := range m.draining {
			routes = append(routes, d)
		}
		m.mu.Unlock()
	}
	for _, r := range routes {
		r.batch.mu.Lock()
		if r.batch.idle != nil {
			r.batch.idle.Stop()
		}
		r.batch.mu.Unlock()
	}
}
