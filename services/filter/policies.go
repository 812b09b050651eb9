package filter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/llmesh/llmesh/bus"
)

// DefaultPolicyKey is the key of the policy of models without their own.
const DefaultPolicyKey = "default"

// Policies keeps the compiled policies of the filter_policies bucket up to
// date: Run watches the bucket and recompiles a policy when it changes. A
// policy that does not parse or validate is rejected (logged, and counted
// in Rejected) and the policy it would have replaced stays in force. A
// deleted key falls back to the default. Engine is safe for concurrent use
// with Run.
type Policies struct {
	b        *bus.Bus
	log      *slog.Logger
	builtin  *Engine
	mu       sync.RWMutex
	engines  map[string]*Engine
	rejected map[string]uint64 // key -> revision of the last rejected value
	ready    chan struct{}
	once     sync.Once
}

// NewPolicies makes a policy set over b; log may be nil.
func NewPolicies(b *bus.Bus, log *slog.Logger) (*Policies, error) {
	e, err := Compile(DefaultPolicy(), 0)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Policies{b: b, log: log, builtin: e, engines: map[string]*Engine{}, rejected: map[string]uint64{},
		ready: make(chan struct{})}, nil
}

// Engine returns the engine for model: its own policy, else the bucket's
// default, else the built-in DefaultPolicy.
func (p *Policies) Engine(model string) *Engine {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if e := p.engines[model]; e != nil {
		return e
	}
	if e := p.engines[DefaultPolicyKey]; e != nil {
		return e
	}
	return p.builtin
}

// Rejected returns the revision of the last rejected value of key (0 if
// none).
func (p *Policies) Rejected(key string) uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.rejected[key]
}

// Ready is closed once the bucket's current values are loaded.
func (p *Policies) Ready() <-chan struct{} { return p.ready }

// Run watches the bucket until ctx is done.
func (p *Policies) Run(ctx context.Context) error {
	kv, err := p.b.KeyValue(ctx, bus.BucketFilterPolicies)
	if err != nil {
		return fmt.Errorf("filter: policies: %w", err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("filter: watch policies: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ent, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if ent == nil {
				p.once.Do(func() { close(p.ready) })
				continue
			}
			p.apply(ent)
		}
	}
}

func (p *Policies) apply(ent jetstream.KeyValueEntry) {
	key := ent.Key()
	p.mu.Lock()
	defer p.mu.Unlock()
	if ent.Operation() != jetstream.KeyValuePut {
		delete(p.engines, key)
		p.log.Info("filter policy removed", "key", key, "revision", ent.Revision())
		return
	}
	pol, err := ParsePolicy(ent.Value())
	var e *Engine
	if err == nil {
		e, err = Compile(pol, ent.Revision())
	}
	if err != nil {
		p.rejected[key] = ent.Revision()
		old := uint64(0)
		if o := p.engines[key]; o != nil {
			old = o.Version()
		}
		p.log.Warn("filter policy rejected; the previous one stays", "key", key, "revision", ent.Revision(), "kept", old, "err", err)
		return
	}
	p.engines[key] = e
	p.log.Info("filter policy loaded", "key", key, "revision", ent.Revision())
}

// PutPolicy validates a policy and stores it under key (a model name or
// DefaultPolicyKey); it returns the new revision. A bad policy is refused
// with an error wrapping ErrBadPolicy and the bucket is left alone.
func PutPolicy(ctx context.Context, b *bus.Bus, key string, data []byte) (uint64, error) {
	if err := bus.ValidName(key); err != nil {
		return 0, fmt.Errorf("filter: policy key: %w", err)
	}
	if _, err := ParsePolicy(data); err != nil {
		return 0, err
	}
	kv, err := b.KeyValue(ctx, bus.BucketFilterPolicies)
	if err != nil {
		return 0, err
	}
	rev, err := kv.Put(ctx, key, data)
	if err != nil {
		return 0, fmt.Errorf("filter: put policy %q: %w", key, err)
	}
	return rev, nil
}

// errNotReady: the policies were not loaded in time.
var errNotReady = errors.New("filter: policies not loaded")
