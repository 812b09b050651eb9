package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// BucketTrainer holds the coordination state of data-parallel train jobs
// that must outlive heartbeats: the plan of each generation
// ("<job>.plan") and the latest-checkpoint pointer ("<job>.ckpt"). Unlike
// BucketShards it has no TTL.
const BucketTrainer = "trainer"

// TrainerSubject is the subject prefix of the collectives of one generation
// of a train job: trainer.<job>.g<gen>; rank r receives on <prefix>.<r>.
func TrainerSubject(jobID string, gen int) string { return fmt.Sprintf("trainer.%s.g%d", jobID, gen) }

// TrainerKV returns BucketTrainer, creating it on first use (it is not
// part of Setup so that older deployments gain it without a migration).
func (b *Bus) TrainerKV(ctx context.Context) (jetstream.KeyValue, error) {
	b.mu.Lock()
	kv := b.kvs[BucketTrainer]
	b.mu.Unlock()
	if kv != nil {
		return kv, nil
	}
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BucketTrainer, History: 1, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", BucketTrainer, err)
	}
	b.mu.Lock()
	b.kvs[BucketTrainer] = kv
	b.mu.Unlock()
	return kv, nil
}

// DeleteObject removes the object ref from the store; a missing object is
// not an error.
func (b *Bus) DeleteObject(ctx context.Context, ref string) error {
	if err := ValidRef(ref); err != nil {
		return err
	}
	obs, err := b.objectStore(ctx)
	if err != nil {
		return err
	}
	if err := obs.Delete(ctx, ref); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("delete object %s: %w", ref, err)
	}
	return nil
}
