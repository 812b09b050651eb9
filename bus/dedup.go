package bus

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// claimBatch bounds the publishes in flight while claiming hashes; it stays
// below nats.go's limit of async publishes awaiting an ack (4000), past
// which PublishAsync stalls and fails under load.
const claimBatch = 1024

// ClaimHashes records content hashes in the named set of the dedup bucket,
// so that exact deduplication spans runs. fresh[i] is true when hashes[i]
// was not in the set before, or was claimed by the same owner (a job that
// is redone after a crash sees its own claims as fresh, so redoing it
// changes nothing). It publishes with "expected last subject sequence 0" in
// pipelined batches, so a large corpus costs a few round trips, not one per
// document.
func (b *Bus) ClaimHashes(ctx context.Context, set, owner string, hashes [][32]byte) ([]bool, error) {
	if err := ValidJobID(set); err != nil {
		return nil, fmt.Errorf("dedup set: %w", err)
	}
	kv, err := b.kv(ctx, BucketDedup)
	if err != nil {
		return nil, err
	}
	fresh := make([]bool, len(hashes))
	key := func(h [32]byte) string { return set + "." + hex.EncodeToString(h[:]) }
	for start := 0; start < len(hashes); start += claimBatch {
		end := min(start+claimBatch, len(hashes))
		futures := make([]jetstream.PubAckFuture, end-start)
		for i := start; i < end; i++ {
			// A publish that cannot be queued is claimed synchronously below.
			futures[i-start], _ = b.js.PublishAsync("$KV."+BucketDedup+"."+key(hashes[i]), []byte(owner),
				jetstream.WithExpectLastSequencePerSubject(0))
		}
		for j, f := range futures {
			k := key(hashes[start+j])
			if f == nil {
				if fresh[start+j], err = claimOne(ctx, kv, k, owner); err != nil {
					return nil, err
				}
				continue
			}
			select {
			case <-f.Ok():
				fresh[start+j] = true
			case err := <-f.Err():
				if !isConflict(err) {
					// A timeout or a lost ack: try once more synchronously
					// (Create tells a conflict from a fresh claim).
					if fresh[start+j], err = claimOne(ctx, kv, k, owner); err != nil {
						return nil, err
					}
					continue
				}
				if fresh[start+j], err = ownedBy(ctx, kv, k, owner); err != nil {
					return nil, err
				}
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return fresh, nil
}

// isConflict reports whether a publish failed because the key exists.
func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// claimOne claims one key synchronously.
func claimOne(ctx context.Context, kv jetstream.KeyValue, key, owner string) (bool, error) {
	_, err := kv.Create(ctx, key, []byte(owner))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists) || isConflict(err):
		return ownedBy(ctx, kv, key, owner)
	}
	return false, fmt.Errorf("claim hash: %w", err)
}

// ownedBy reports whether a taken key was claimed by owner.
func ownedBy(ctx context.Context, kv jetstream.KeyValue, key, owner string) (bool, error) {
	e, err := kv.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("claim hash: %w", err)
	}
	return string(e.Value()) == owner, nil
}
