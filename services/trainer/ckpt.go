package trainer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/llmesh/llmesh/bus"
)

// ErrNoCheckpoint: the job has no loadable checkpoint yet.
var ErrNoCheckpoint = errors.New("trainer: no loadable checkpoint")

// Manifest describes one checkpoint of a data-parallel job. It is stored as
// its own object; the weights (safetensors with the AdamW state) are
// another. Nothing in it depends on how many shards wrote it: every
// replica holds the same weights, and the data position is the step
// (batches are drawn from an RNG seeded by (seed, step), split across
// whatever shards there are).
type Manifest struct {
	Version int    `json:"version"`
	Job     string `json:"job"`
	Step    int    `json:"step"`
	// Weights is the object ref of the safetensors; SHA256 is its
	// content hash, checked before it is loaded.
	Weights string `json:"weights"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
	// Fingerprint is the job's (model config, tokenizer, data, seed):
	// a checkpoint of another job is refused.
	Fingerprint string `json:"fingerprint"`
	// RNG state: batches for step s come from PCG(Seed, s); DataPosition
	// is the next step's index into that stream.
	Seed         uint64 `json:"seed"`
	DataPosition int64  `json:"data_position"`
	// Best validation loss so far and evaluations without improvement
	// (early stopping resumes with them).
	BestValLoss float64 `json:"best_val_loss,omitempty"`
	BadEvals    int     `json:"bad_evals,omitempty"`
	World       int     `json:"world"` // shards when written (informational)
	Created     string  `json:"created"`
}

// pointer is the value of "<job>.ckpt": manifest refs, newest first.
type pointer struct {
	Latest []string `json:"latest"`
}

// ckptStore writes and reads a job's checkpoints. A checkpoint is
// written in order: weights object, manifest object, then the pointer
// (one compare-and-set KV update). A writer that dies anywhere before the
// pointer moves leaves the previous checkpoint as the latest, and a
// checkpoint whose weights do not hash to the manifest's SHA256 is skipped
// for the one before it.
type ckptStore struct {
	b    *bus.Bus
	kv   jetstream.KeyValue
	job  string
	keep int
	log  *slog.Logger
}

func newCkptStore(ctx context.Context, b *bus.Bus, job string, keep int, log *slog.Logger) (*ckptStore, error) {
	kv, err := b.TrainerKV(ctx)
	if err != nil {
		return nil, err
	}
	return &ckptStore{b: b, kv: kv, job: job, keep: max(keep, 1), log: log}, nil
}

func (c *ckptStore) key() string { return c.job + ".ckpt" }

func hashHex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Save stores weights and m and moves the pointer to them; it returns the
// manifest's ref. Checkpoints beyond the newest keep are deleted.
func (c *ckptStore) Save(ctx context.Context, m Manifest, weights []byte) (string, error) {
	w, err := c.b.PutBytes(ctx, weights)
	if err != nil {
		return "", fmt.Errorf("trainer: store checkpoint weights: %w", err)
	}
	m.Version, m.Job = 1, c.job
	m.Weights, m.SHA256, m.Size = w.Ref, hashHex(weights), w.Size
	m.Created = time.Now().UTC().Format(time.RFC3339Nano)
	js, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	mi, err := c.b.PutBytes(ctx, js)
	if err != nil {
		return "", fmt.Errorf("trainer: store checkpoint manifest: %w", err)
	}
	var dropped []string
	for {
		p, rev, err := c.pointer(ctx)
		if err != nil {
			return "", err
		}
		list := append([]string{mi.Ref}, slices.DeleteFunc(p.Latest, func(s string) bool { return s == mi.Ref })...)
		if len(list) > c.keep {
			dropped = list[c.keep:]
			list = list[:c.keep]
		}
		val, _ := json.Marshal(pointer{Latest: list})
		if rev == 0 {
			_, err = c.kv.Create(ctx, c.key(), val)
		} else {
			_, err = c.kv.Update(ctx, c.key(), val, rev)
		}
		if err == nil {
			break
		}
		if !isConflict(err) {
			return "", fmt.Errorf("trainer: move checkpoint pointer: %w", err)
		}
	}
	for _, ref := range dropped {
		c.drop(ctx, ref, mi.Ref)
	}
	return mi.Ref, nil
}

// isConflict: a compare-and-set KV write lost to another writer.
func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// drop deletes an old manifest and its weights (best effort: a leftover
// object wastes space, nothing else), unless keep shares the weights.
func (c *ckptStore) drop(ctx context.Context, ref, keep string) {
	m, err := c.manifest(ctx, ref)
	if err == nil {
		if k, kerr := c.manifest(ctx, keep); kerr != nil || k.Weights != m.Weights {
			_ = c.b.DeleteObject(ctx, m.Weights)
		}
	}
	_ = c.b.DeleteObject(ctx, ref)
}

func (c *ckptStore) pointer(ctx context.Context) (pointer, uint64, error) {
	var p pointer
	e, err := c.kv.Get(ctx, c.key())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return p, 0, nil
	}
	if err != nil {
		return p, 0, fmt.Errorf("trainer: read checkpoint pointer: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return p, 0, fmt.Errorf("trainer: checkpoint pointer of job %s: %w", c.job, err)
	}
	return p, e.Revision(), nil
}

func (c *ckptStore) manifest(ctx context.Context, ref string) (Manifest, error) {
	js, err := c.b.GetObject(ctx, ref)
	if err != nil {
		return Manifest{}, err
	}
	return parseManifest(ref, c.job, js)
}

// parseManifest checks a stored manifest (outside bytes): its content hash
// against ref, its version, job and fields.
func parseManifest(ref, job string, js []byte) (Manifest, error) {
	var m Manifest
	if err := bus.ValidRef(ref); err != nil {
		return m, err
	}
	if hashHex(js) != ref[len(bus.RefPrefix):] {
		return m, fmt.Errorf("manifest %s: content hash %s does not match", ref, hashHex(js))
	}
	if err := json.Unmarshal(js, &m); err != nil {
		return m, fmt.Errorf("manifest %s: %w", ref, err)
	}
	if m.Version != 1 || m.Job != job {
		return m, fmt.Errorf("manifest %s: version %d of job %q, want version 1 of job %q", ref, m.Version, m.Job, job)
	}
	if err := bus.ValidRef(m.Weights); err != nil {
		return m, fmt.Errorf("manifest %s: weights: %w", ref, err)
	}
	if m.Step < 0 || m.DataPosition < 0 || m.Size < 0 || len(m.SHA256) != 64 {
		return m, fmt.Errorf("manifest %s: step %d, data position %d, size %d or sha256 %q out of range", ref, m.Step, m.DataPosition, m.Size, m.SHA256)
	}
	return m, nil
}

// Load reads the checkpoint ref and checks its weights against the
// manifest's hash.
func (c *ckptStore) Load(ctx context.Context, ref string) (Manifest, []byte, error) {
	m, err := c.manifest(ctx, ref)
	if err != nil {
		return m, nil, err
	}
	w, err := c.b.GetObject(ctx, m.Weights)
	if err != nil {
		return m, nil, fmt.Errorf("checkpoint %s (step %d): weights: %w", ref, m.Step, err)
	}
	if got := hashHex(w); got != m.SHA256 {
		return m, nil, fmt.Errorf("checkpoint %s (step %d): weights hash %s, manifest says %s", ref, m.Step, got, m.SHA256)
	}
	return m, w, nil
}

// Latest returns the newest loadable checkpoint, skipping (and logging)
// any that fails its hash check, or ErrNoCheckpoint.
func (c *ckptStore) Latest(ctx context.Context) (string, Manifest, []byte, error) {
	p, _, err := c.pointer(ctx)
	if err != nil {
		return "", Manifest{}, nil, err
	}
	var errs []error
	for _, ref := range p.Latest {
		m, w, err := c.Load(ctx, ref)
		if err == nil {
			return ref, m, w, nil
		}
		if ctx.Err() != nil {
			return "", Manifest{}, nil, ctx.Err()
		}
		c.log.Warn("skipping unloadable checkpoint", "job", c.job, "ref", ref, "err", err)
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return "", Manifest{}, nil, fmt.Errorf("%w of job %s: %w", ErrNoCheckpoint, c.job, errors.Join(errs...))
	}
	return "", Manifest{}, nil, fmt.Errorf("%w of job %s", ErrNoCheckpoint, c.job)
}
