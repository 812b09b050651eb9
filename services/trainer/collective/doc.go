// Package collective is the gradient AllReduce of trainer shards: a ring
// reduce-scatter followed by a ring all-gather over core NATS, each piece of
// the vector an Arrow-encoded float32 tensor (bus/tensor) no larger than
// the connection's maximum payload.
//
// A Ring belongs to one generation of one training job: World shards with
// ranks 0..World-1 subscribe to their own subject <prefix>.<rank> and send
// only to their successor. Pieces are pipelined: a piece is forwarded as
// soon as it is reduced, without waiting for the rest of its segment.
// Every message carries its key (sequence, sender rank, phase, ring step,
// piece) in the tensor metadata; a key seen twice is counted and dropped,
// never summed twice. Every wait is bounded by Config.Timeout: a dead or
// partitioned peer makes AllReduce fail with a *TimeoutError naming it, so
// the caller can re-form the ring.
//
// Each segment is reduced once along the ring and then copied, so every
// rank ends with bit-identical values (replicas stay in lockstep).
//
// A Ring is used by one goroutine at a time; Close releases its
// subscription. Values passed to AllReduce are only read and written during
// the call.
package collective
