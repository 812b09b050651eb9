package inference

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/transformer"
	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/internal/bpe"
)

// SwapTimeout bounds a swap requested over the bus: launch, load and drain.
const SwapTimeout = 5 * time.Minute

// errInvalidBackend: a backend name that is not a plugin name.
var errInvalidBackend = errors.New("invalid backend name")

var backendName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func validBackend(name string) error {
	if !backendName.MatchString(name) {
		return fmt.Errorf("%w: backend %q must match %s", errInvalidBackend, name, backendName)
	}
	return nil
}

func defaultInstance() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "inference"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// plugin is a launched plugin process, shared by the models routed to it.
type plugin struct {
	p       *accel.Plugin
	backend string
	users   int // routes on it, serving or draining; guarded by Service.mu
}

// served is how one model is routed.
type served struct {
	swapMu sync.Mutex // serializes the model's swaps

	mu       sync.Mutex // guards route and draining
	route    *route     // where new requests go; nil until the first one
	draining map[*route]struct{}
}

// route binds a model to a plugin. A request acquires the model's current
// route and runs on it to the end; a swap publishes a new route and waits
// for the old one's requests before unloading the model from its plugin.
type route struct {
	model    string
	id       string // model id in the backend, unique per route
	pl       *plugin
	inflight sync.WaitGroup
	n        atomic.Int64 // requests in flight, for status

	mu  sync.Mutex // held while loading
	cur *resident  // nil until loaded and after an unload; replaced on reload, never modified

	batch batch        // the continuous batch decoding the route's requests
	used  atomic.Int64 // when a request last acquired the route (unix ns), for LRU eviction
}

// release ends a request that acquired r.
func (r *route) release() {
	r.n.Add(-1)
	r.inflight.Done()
}

// resident is one loaded checkpoint of a model. It is immutable once
// published in route.cur, so requests read it without a lock while another
// request reloads the model.
type resident struct {
	ref    string // checkpoint ref
	tokRef string
	tok    *bpe.Tokenizer
	cfg    transformer.Config
	eot    uint32
}

func (s *Service) servedModel(name string) *served {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.models[name]
	if m == nil {
		m = &served{draining: map[*route]struct{}{}}
		s.models[name] = m
	}
	return m
}

func (s *Service) newRoute(model string, pl *plugin) *route {
	s.mu.Lock()
	s.nextID++
	id := fmt.Sprintf("serve-%s-%d", model, s.nextID)
	s.mu.Unlock()
	return &route{model: model, id: id, pl: pl}
}

// acquire returns the model's current route with the request counted in
// flight on it, routing the model to the default backend on first use.
// The caller calls release.
func (s *Service) acquire(ctx context.Context, name string) (*route, error) {
	m := s.servedModel(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.route == nil {
		pl, err := s.claim(ctx, s.backend, nil)
		if err != nil {
			return nil, err
		}
		m.route = s.newRoute(name, pl)
	}
	r := m.route
	r.inflight.Add(1)
	r.n.Add(1)
	r.used.Store(time.Now().UnixNano())
	return r, nil
}

// claim returns a plugin of backend with one more user: the backend's
// newest plugin unless that is avoid, else a freshly launched one that
// becomes the newest.
func (s *Service) claim(ctx context.Context, backend string, avoid *plugin) (*plugin, error) {
	s.launchMu.Lock()
	defer s.launchMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: inference service", accel.ErrClosed)
	}
	if pl := s.newest[backend]; pl != nil && pl != avoid {
		pl.users++
		s.mu.Unlock()
		return pl, nil
	}
	s.mu.Unlock()
	p, err := s.host.Launch(ctx, backend)
	if err != nil {
		return nil, fmt.Errorf("inference: launch %s backend: %w", backend, err)
	}
	pl := &plugin{p: p, backend: backend, users: 1}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		p.Close()
		return nil, fmt.Errorf("%w: inference service", accel.ErrClosed)
	}
	s.plugins[pl] = struct{}{}
	s.newest[backend] = pl
	s.mu.Unlock()
	s.log.Info("launched plugin", "backend", backend, "pid", p.Pid())
	return pl, nil
}

// unclaim drops a user of pl and closes pl when it was the last.
func (s *Service) unclaim(pl *plugin) {
	s.mu.Lock()
	pl.users--
	last := pl.users == 0
	if last {
		delete(s.plugins, pl)
		if s.newest[pl.backend] == pl {
			delete(s.newest, pl.backend)
		}
	}
	s.mu.Unlock()
	if last {
		pid := pl.p.Pid()
		pl.p.Close()
		s.log.Info("closed plugin", "backend", pl.backend, "pid", pid)
	}
}

// load makes sure the registry's current checkpoint of the model (rec, or
// read from the registry when nil) is loaded on r's plugin. A resident
// equal to stale failed on the plugin and is loaded again.
func (s *Service) load(ctx context.Context, r *route, rec *busv1.ModelRecord, stale *resident) (*resident, error) {
	name := r.model
	if rec == nil {
		var err error
		if rec, err = s.bus.GetModel(ctx, name); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil && r.cur != stale && r.cur.ref == rec.Checkpoint {
		return r.cur, nil
	}
	prev := r.cur
	if prev == nil {
		prev = stale
	}
	r.cur = nil
	cfg, err := transformer.ParseConfig(rec.ConfigJson)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", name, err)
	}
	if rec.Tokenizer == "" {
		return nil, fmt.Errorf("model %q has no tokenizer in the registry", name)
	}
	var tok *bpe.Tokenizer
	var eot uint32
	if prev != nil && prev.tokRef == rec.Tokenizer {
		tok, eot = prev.tok, prev.eot
	} else {
		tj, err := s.bus.GetObject(ctx, rec.Tokenizer)
		if err != nil {
			return nil, fmt.Errorf("model %q: read tokenizer: %w", name, err)
		}
		if tok, err = bpe.Load(tj); err != nil {
			return nil, fmt.Errorf("model %q: load tokenizer: %w", name, err)
		}
		var ok bool
		if eot, ok = tok.TokenID(EndOfText); !ok {
			return nil, fmt.Errorf("model %q: tokenizer has no %s token", name, EndOfText)
		}
	}
	w, err := s.bus.GetObject(ctx, rec.Checkpoint)
	if err != nil {
		return nil, fmt.Errorf("model %q: read checkpoint: %w", name, err)
	}
	if err := s.reserve(r, int64(len(w))); err != nil {
		return nil, err
	}
	if _, err := r.pl.p.LoadModel(ctx, accel.LoadRequest{ModelID: r.id, ConfigJSON: rec.ConfigJson, Weights: w}); err != nil {
		s.forget(r)
		return nil, fmt.Errorf("model %q: load: %w", name, err)
	}
	r.cur = &resident{ref: rec.Checkpoint, tokRef: rec.Tokenizer, tok: tok, cfg: cfg, eot: eot}
	s.log.Info("loaded model", "name", name, "checkpoint", rec.Checkpoint, "backend", r.pl.backend, "pid", r.pl.p.Pid())
	return r.cur, nil
}

// SwapResult reports a swap.
type SwapResult struct {
	Model      string
	Backend    string
	OldBackend string // empty when the model was not loaded here
	Pid        int    // the plugin now serving the model
	OldPid     int    // the plugin swapped away from; 0 when none
	// Duration covers launch, load, switch and drain.
	Duration time.Duration
	// Drained is false when ctx ended before the old plugin's requests
	// did; the drain then finishes in the background.
	Drained bool
}

// Swap moves model to a plugin of backend: the backend's newest plugin,
// or a freshly launched one when that is the plugin already serving the
// model (so that swapping to the same backend picks up a rebuilt binary).
// The new plugin loads the model's current checkpoint; then new requests
// go to it while requests running on the old plugin finish there, after
// which the model is unloaded from the old plugin and the old plugin is
// closed if no model uses it any more. A swap whose plugin fails to launch
// or load leaves the model where it was. Swaps of one model run one at a
// time.
func (s *Service) Swap(ctx context.Context, model, backend string) (SwapResult, error) {
	start := time.Now()
	res := SwapResult{Model: model, Backend: backend}
	if err := bus.ValidName(model); err != nil {
		return res, fmt.Errorf("inference: swap: model: %w", err)
	}
	if err := validBackend(backend); err != nil {
		return res, fmt.Errorf("inference: swap %q: %w", model, err)
	}
	rec, err := s.bus.GetModel(ctx, model)
	if err != nil {
		return res, fmt.Errorf("inference: swap: %w", err)
	}
	m := s.servedModel(model)
	m.swapMu.Lock()
	defer m.swapMu.Unlock()
	m.mu.Lock()
	cur := m.route
	m.mu.Unlock()
	var avoid *plugin
	stays := "is not loaded here"
	if cur != nil {
		avoid = cur.pl
		stays = fmt.Sprintf("stays on %s (pid %d)", cur.pl.backend, cur.pl.p.Pid())
	}
	pl, err := s.claim(ctx, backend, avoid)
	if err != nil {
		return res, fmt.Errorf("inference: swap %q to %s: %w; the model %s", model, backend, err, stays)
	}
	nr := s.newRoute(model, pl)
	if _, err := s.load(ctx, nr, rec, nil); err != nil {
		s.unclaim(pl)
		return res, fmt.Errorf("inference: swap %q to %s: %w; the model %s", model, backend, err, stays)
	}
	res.Pid = pl.p.Pid()

	m.mu.Lock()
	old := m.route
	m.route = nr
	if old != nil {
		m.draining[old] = struct{}{}
	}
	m.mu.Unlock()
	res.Drained = true
	if old != nil {
		res.OldBackend, res.OldPid = old.pl.backend, old.pl.p.Pid()
		s.log.Info("swapped model", "name", model, "backend", backend, "pid", res.Pid,
			"old_backend", res.OldBackend, "old_pid", res.OldPid, "draining", old.n.Load())
		done := make(chan struct{})
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			defer close(done)
			s.retire(m, old)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			res.Drained = false
			s.log.Warn("swap: old plugin still draining, finishing in the background", "name", model, "old_pid", res.OldPid)
		}
	} else {
		s.log.Info("swapped model", "name", model, "backend", backend, "pid", res.Pid)
	}
	res.Duration = time.Since(start)
	return res, nil
}

// retire waits for old's requests, unloads the model from old's plugin
// and drops the route's claim on the plugin.
func (s *Service) retire(m *served, old *route) {
	old.inflight.Wait()
	s.mu.Lock()
	shared := old.pl.users > 1
	s.mu.Unlock()
	if shared { // others stay on the plugin: free the model's memory there
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := old.pl.p.Unload(ctx, old.id); err != nil && !errors.Is(err, accel.ErrUnknownModel) {
			s.log.Warn("unload swapped-out model", "name", old.model, "backend", old.pl.backend, "err", err)
		}
		cancel()
	}
	old.batch.mu.Lock()
	if old.batch.idle != nil {
		old.batch.idle.Stop()
	}
	old.batch.mu.Unlock()
	old.mu.Lock()
	old.cur = nil
	old.mu.Unlock()
	s.forget(old)
	m.mu.Lock()
	delete(m.draining, old)
	m.mu.Unlock()
	s.unclaim(old.pl)
}

// ModelStatus is one model's routing in this instance.
type ModelStatus struct {
	Model      string
	Backend    string
	Checkpoint string // empty until loaded
	Pid        int    // of the plugin serving new requests
	Restarts   int    // of that plugin
	InFlight   int    // requests running, draining ones included
	Draining   int    // requests running on plugins swapped away from
}

// Status reports the models this instance routes, by name.
func (s *Service) Status() []ModelStatus {
	s.mu.Lock()
	names := make([]string, 0, len(s.models))
	ms := make([]*served, 0, len(s.models))
	for name, m := range s.models {
		names, ms = append(names, name), append(ms, m)
	}
	s.mu.Unlock()
	out := make([]ModelStatus, 0, len(ms))
	for i, m := range ms {
		m.mu.Lock()
		r := m.route
		draining := 0
		for d := range m.draining {
			draining += int(d.n.Load())
		}
		m.mu.Unlock()
		if r == nil {
			continue
		}
		st := ModelStatus{Model: names[i], Backend: r.pl.backend, Pid: r.pl.p.Pid(), Restarts: r.pl.p.Restarts(),
			InFlight: int(r.n.Load()) + draining, Draining: draining}
		r.mu.Lock()
		if r.cur != nil {
			st.Checkpoint = r.cur.ref
		}
		r.mu.Unlock()
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Model < out[j].Model })
	return out
}

// swapErrorCode classifies a swap error with a Connect code name.
func swapErrorCode(err error) string {
	switch {
	case errors.Is(err, accel.ErrPluginNotFound):
		return "not_found"
	case errors.Is(err, accel.ErrNotImplemented):
		return "unimplemented"
	case errors.Is(err, accel.ErrIncompatiblePlugin):
		return "failed_precondition"
	case errors.Is(err, bus.ErrInvalidName), errors.Is(err, errInvalidBackend):
		return "invalid_argument"
	}
	return errorCode(err)
}

func (s *Service) serveSwap(ctx context.Context, m *nats.Msg) {
	var req busv1.SwapBackendRequest
	reply := &busv1.SwapBackendReply{Instance: s.instance}
	if len(m.Data) > MaxRequestBytes {
		reply.Error, reply.ErrorCode = fmt.Sprintf("swap request of %d bytes exceeds %d", len(m.Data), MaxRequestBytes), "invalid_argument"
	} else if err := proto.Unmarshal(m.Data, &req); err != nil {
		reply.Error, reply.ErrorCode = fmt.Sprintf("malformed swap request: %v", err), "invalid_argument"
	} else {
		ctx, cancel := context.WithTimeout(ctx, SwapTimeout)
		res, err := s.Swap(ctx, req.Model, req.Backend)
		cancel()
		reply.Model, reply.Backend, reply.OldBackend = req.Model, req.Backend, res.OldBackend
		reply.Pid, reply.OldPid, reply.Millis = int32(res.Pid), int32(res.OldPid), res.Duration.Milliseconds()
		if err != nil {
			s.log.Warn("swap failed", "model", req.Model, "backend", req.Backend, "err", err)
			reply.Error, reply.ErrorCode = err.Error(), swapErrorCode(err)
		}
	}
	s.respond(m, reply)
}

func (s *Service) serveStatus(m *nats.Msg) {
	st := &busv1.InferenceStatus{Instance: s.instance}
	for _, ms := range s.Status() {
		st.Models = append(st.Models, &busv1.ServedModel{
			Model: ms.Model, Backend: ms.Backend, Pid: int32(ms.Pid), Restarts: int32(ms.Restarts),
			InFlight: int32(ms.InFlight), Draining: int32(ms.Draining), Checkpoint: ms.Checkpoint,
		})
	}
	s.respond(m, st)
}

func (s *Service) respond(m *nats.Msg, reply proto.Message) {
	if err := bus.Respond(m, reply); err != nil {
		s.log.Warn("reply", "subject", m.Subject, "err", err)
	}
}
