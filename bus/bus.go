package bus

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultMaxObjectSize bounds PutObject and GetObject when
// Config.MaxObjectSize is 0.
const DefaultMaxObjectSize = 8 << 30

// Config configures a client connection to the bus.
type Config struct {
	// URL of a NATS server or cluster ("nats://host:4222,nats://...").
	// Ignored when Server is set.
	URL string
	// Server, when set, is reached through an in-process connection (no
	// sockets); it works whether or not the server listens.
	Server *Server
	// Name identifies the connection in server monitoring.
	Name string
	// Logger receives connection and worker logs; nil discards them.
	Logger *slog.Logger
	// MaxObjectSize bounds objects put and read; 0 means
	// DefaultMaxObjectSize.
	MaxObjectSize int64
}

// Validate checks the config, wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	switch {
	case c.URL == "" && c.Server == nil:
		return fmt.Errorf("bus config needs a URL or a Server: %w", ErrInvalidConfig)
	case c.MaxObjectSize < 0:
		return fmt.Errorf("bus max object size %d is negative: %w", c.MaxObjectSize, ErrInvalidConfig)
	}
	return nil
}

// Bus is a connection to the llmesh bus. It is safe for concurrent use.
type Bus struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger
	maxObj  int64
	mu      sync.Mutex
	kvs     map[string]jetstream.KeyValue
	objects jetstream.ObjectStore
}

// Connect connects to the bus. It does not create streams or buckets; call
// Setup once per deployment (it is idempotent) or rely on someone else
// having done so.
func Connect(ctx context.Context, cfg Config) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := orDiscard(cfg.Logger)
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("nats async error", "subject", subject, "err", err)
		}),
	}
	if d, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(d)))
	}
	url := cfg.URL
	if cfg.Server != nil {
		opts = append(opts, nats.InProcessServer(cfg.Server.ns))
		url = ""
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %q: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	maxObj := cfg.MaxObjectSize
	if maxObj == 0 {
		maxObj = DefaultMaxObjectSize
	}
	return &Bus{nc: nc, js: js, log: log, maxObj: maxObj, kvs: map[string]jetstream.KeyValue{}}, nil
}

// Conn returns the underlying NATS connection (for request-reply
// services). Do not close it; Close the Bus.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream returns the JetStream context of the connection.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Logger returns the bus's logger (never nil).
func (b *Bus) Logger() *slog.Logger { return b.log }

// Close drains nothing and closes the connection. Stop workers and
// watchers (cancel their contexts) first.
func (b *Bus) Close() { b.nc.Close() }

// kvBuckets are the KV buckets Setup creates, with their TTLs.
var kvBuckets = []struct {
	name    string
	ttl     time.Duration
	history uint8
}{
	{BucketJobs, 0, 1},
	{BucketModels, 0, 5},
	{BucketDatasets, 0, 5},
	{BucketTokenizers, 0, 5},
	{BucketPlugins, 0, 1},
	{BucketShards, ShardsTTL, 1},
	{BucketDedup, 0, 1},
	{BucketFilterPolicies, 0, 10},
}

// Setup creates or updates the streams, KV buckets and object store. It is
// idempotent and safe to run from several processes.
func (b *Bus) Setup(ctx context.Context) error {
	streams := []jetstream.StreamConfig{{
		Name:       StreamJobs,
		Subjects:   []string{"jobs.>"},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Duplicates: JobsDuplicateWindow,
	}, {
		Name:      StreamEvents,
		Subjects:  []string{"events.>"},
		Retention: jetstream.LimitsPolicy,
		Storage:   jetstream.FileStorage,
		MaxAge:    EventsMaxAge,
	}}
	for _, sc := range streams {
		if _, err := b.js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("setup stream %s: %w", sc.Name, err)
		}
	}
	for _, kc := range kvBuckets {
		kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:  kc.name,
			History: kc.history,
			TTL:     kc.ttl,
			Storage: jetstream.FileStorage,
		})
		if err != nil {
			return fmt.Errorf("setup kv bucket %s: %w", kc.name, err)
		}
		b.mu.Lock()
		b.kvs[kc.name] = kv
		b.mu.Unlock()
	}
	obs, err := b.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:  ObjectStoreArtifacts,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("setup object store %s: %w", ObjectStoreArtifacts, err)
	}
	b.mu.Lock()
	b.objects = obs
	b.mu.Unlock()
	return nil
}

// kv returns the bucket, binding to it on first use.
func (b *Bus) kv(ctx context.Context, name string) (jetstream.KeyValue, error) {
	b.mu.Lock()
	kv := b.kvs[name]
	b.mu.Unlock()
	if kv != nil {
		return kv, nil
	}
	kv, err := b.js.KeyValue(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s (was Setup run?): %w", name, err)
	}
	b.mu.Lock()
	b.kvs[name] = kv
	b.mu.Unlock()
	return kv, nil
}

// KeyValue returns one of the buckets (BucketPlugins, BucketShards,
// BucketTokenizers, ...) for the services that keep their own records.
func (b *Bus) KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	return b.kv(ctx, bucket)
}

func (b *Bus) objectStore(ctx context.Context) (jetstream.ObjectStore, error) {
	b.mu.Lock()
	obs := b.objects
	b.mu.Unlock()
	if obs != nil {
		return obs, nil
	}
	obs, err := b.js.ObjectStore(ctx, ObjectStoreArtifacts)
	if err != nil {
		return nil, fmt.Errorf("object store %s (was Setup run?): %w", ObjectStoreArtifacts, err)
	}
	b.mu.Lock()
	b.objects = obs
	b.mu.Unlock()
	return obs, nil
}
