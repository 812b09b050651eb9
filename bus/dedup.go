package bus

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// claimBatch bounds the publishes in flight while claiming hashes.
const claimBatch = 4096

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
			f, err := b.js.PublishAsync("$KV."+BucketDedup+"."+key(hashes[i]), []byte(owner),
				jetstream.WithExpectLastSequencePerSubject(0))
			if err != nil {
				return nil, fmt.Errorf("claim hash: %w", err)
			}
			futures[i-start] = f
		}
		for j, f := range futures {
			select {
			case <-f.Ok():
				fresh[start+j] = true
			case err := <-f.Err():
				var apiErr *jetstream.APIError
				if !errors.As(err, &apiErr) || (apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence &&
					apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
					return nil, fmt.Errorf("claim hash: %w", err)
				}
				// Taken: fresh only if this owner took it before.
				e, err := kv.Get(ctx, key(hashes[start+j]))
				if err != nil {
					return nil, fmt.Errorf("claim hash: %w", err)
				}
				fresh[start+j] = string(e.Value()) == owner
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return fresh, nil
}
