package collective

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/llmesh/llmesh/bus/tensor"
)

// Defaults for Config.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultChunkBytes = 512 << 10
	// envelope is room for the Arrow IPC framing and metadata of a piece.
	envelope = 4 << 10
	minChunk = 1 << 10
)

// Errors.
var (
	// ErrTimeout: a peer did not send in time (it died, hangs or is cut
	// off). Errors wrapping it are *TimeoutError values.
	ErrTimeout = errors.New("collective: timeout")
	// ErrClosed: the ring was closed.
	ErrClosed = errors.New("collective: ring closed")
	// ErrInvalid: bad configuration or arguments.
	ErrInvalid = errors.New("collective: invalid argument")
)

// TimeoutError says which peer the ring waited for, and for what.
type TimeoutError struct {
	Rank, Peer int
	Seq        uint64
	Phase      string
	Waited     time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("collective: rank %d waited %s for rank %d (allreduce %d, %s): %v", e.Rank, e.Waited.Round(time.Millisecond), e.Peer, e.Seq, e.Phase, ErrTimeout)
}

// Is makes errors.Is(err, ErrTimeout) true.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// Config configures a Ring.
type Config struct {
	// Conn is the NATS connection the ring publishes and subscribes on.
	Conn *nats.Conn
	// Prefix names this ring's subjects: rank r receives on Prefix.r. It
	// must be unique per job and generation ("trainer.<job>.g<gen>").
	Prefix string
	// Rank and World: this shard's place in the ring.
	Rank, World int
	// Timeout bounds every wait for a peer; 0 means DefaultTimeout.
	Timeout time.Duration
	// ChunkBytes bounds the float32 bytes of one message; 0 means
	// DefaultChunkBytes. It is lowered to fit the connection's maximum
	// payload.
	ChunkBytes int
}

// Stats describes one AllReduce.
type Stats struct {
	// Bytes is what this rank sent (tensor data, not framing).
	Bytes    int64
	Messages int
	Duration time.Duration
	// Duplicates counts messages dropped because their key was seen.
	Duplicates int
}

// key identifies one message of one allreduce.
type key struct {
	seq   uint64
	phase uint8 // 0 reduce-scatter, 1 all-gather
	step  uint16
	piece uint32
}

type arrival struct {
	vals []float32
}

// Ring is one rank of a ring allreduce.
type Ring struct {
	cfg   Config
	next  string
	chunk int // elements per piece
	sub   *nats.Subscription

	// out is the payload buffer send reuses: Publish copies what it sends.
	out []byte

	mu      sync.Mutex
	pending map[key]arrival
	seen    map[key]bool
	minSeq  uint64 // keys below it are stale
	dups    int
	bad     error
	closed  bool
	notify  chan struct{}
}

// New subscribes rank's subject and returns the ring. Peers must have
// subscribed before this rank's first AllReduce sends to them: callers
// hold a barrier (the trainer uses its membership records) in between.
func New(cfg Config) (*Ring, error) {
	switch {
	case cfg.Conn == nil:
		return nil, fmt.Errorf("%w: no NATS connection", ErrInvalid)
	case cfg.Prefix == "":
		return nil, fmt.Errorf("%w: empty subject prefix", ErrInvalid)
	case cfg.World < 1 || cfg.Rank < 0 || cfg.Rank >= cfg.World:
		return nil, fmt.Errorf("%w: rank %d of world %d", ErrInvalid, cfg.Rank, cfg.World)
	case cfg.Timeout < 0 || cfg.ChunkBytes < 0:
		return nil, fmt.Errorf("%w: negative timeout %v or chunk bytes %d", ErrInvalid, cfg.Timeout, cfg.ChunkBytes)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ChunkBytes == 0 {
		cfg.ChunkBytes = DefaultChunkBytes
	}
	if mp := int(cfg.Conn.MaxPayload()); mp > 0 && cfg.ChunkBytes > mp-envelope {
		cfg.ChunkBytes = mp - envelope
	}
	cfg.ChunkBytes = max(cfg.ChunkBytes, minChunk)
	r := &Ring{
		cfg:     cfg,
		next:    subject(cfg.Prefix, (cfg.Rank+1)%cfg.World),
		chunk:   cfg.ChunkBytes / 4,
		pending: map[key]arrival{},
		seen:    map[key]bool{},
		notify:  make(chan struct{}, 1),
	}
	if cfg.World == 1 {
		return r, nil
	}
	sub, err := cfg.Conn.Subscribe(subject(cfg.Prefix, cfg.Rank), r.receive)
	if err != nil {
		return nil, fmt.Errorf("collective: subscribe %s: %w", subject(cfg.Prefix, cfg.Rank), err)
	}
	// Gradients must never be dropped as a slow consumer: the ring bounds
	// what is in flight (at most one allreduce ahead).
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	r.sub = sub
	// The subscription must be registered with the server before peers
	// publish to it.
	if err := cfg.Conn.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("collective: flush subscription: %w", err)
	}
	return r, nil
}

func subject(prefix string, rank int) string { return prefix + "." + strconv.Itoa(rank) }

// Rank and World return the ring's shape.
func (r *Ring) Rank() int  { return r.cfg.Rank }
func (r *Ring) World() int { return r.cfg.World }

// Close unsubscribes. Pending and later AllReduce calls fail with ErrClosed.
func (r *Ring) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.mu.Unlock()
	if r.sub != nil {
		_ = r.sub.Unsubscribe()
	}
	r.wake()
}

func (r *Ring) wake() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// receive runs on the subscription's goroutine: decode, check, file by key.
func (r *Ring) receive(m *nats.Msg) {
	set, err := tensor.Decode(m.Data, tensor.Limits{MaxTensors: 1, MaxRank: 1})
	var k key
	var vals []float32
	if err == nil {
		k, vals, err = r.parse(set)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil:
		// A malformed message is somebody else's bug; remember it so the
		// waiting call reports it instead of timing out silently.
		if r.bad == nil {
			r.bad = fmt.Errorf("collective: rank %d: bad message on %s: %w", r.cfg.Rank, m.Subject, err)
		}
	case k.seq < r.minSeq || r.seen[k]:
		r.dups++
		return
	default:
		if _, dup := r.pending[k]; dup {
			r.dups++
			return
		}
		r.pending[k] = arrival{vals: vals}
	}
	r.wake()
}

func (r *Ring) parse(set *tensor.Set) (key, []float32, error) {
	if len(set.Tensors) != 1 {
		return key{}, nil, fmt.Errorf("%d tensors, want 1", len(set.Tensors))
	}
	vals, err := tensor.Float32s(set.Tensors[0])
	if err != nil {
		return key{}, nil, err
	}
	num := func(name string, bits int) (uint64, error) {
		v, err := strconv.ParseUint(set.Meta[name], 10, bits)
		if err != nil {
			return 0, fmt.Errorf("metadata %q: %w", name, err)
		}
		return v, nil
	}
	var k key
	seq, err := num("seq", 64)
	if err != nil {
		return k, nil, err
	}
	sender, err := num("rank", 31)
	if err != nil {
		return k, nil, err
	}
	phase, err := num("phase", 1)
	if err != nil {
		return k, nil, err
	}
	step, err := num("step", 16)
	if err != nil {
		return k, nil, err
	}
	piece, err := num("piece", 32)
	if err != nil {
		return k, nil, err
	}
	if want := (r.cfg.Rank + r.cfg.World - 1) % r.cfg.World; int(sender) != want {
		return k, nil, fmt.Errorf("message from rank %d, but rank %d is the predecessor", sender, want)
	}
	return key{seq: seq, phase: uint8(phase), step: uint16(step), piece: uint32(piece)}, vals, nil
}

// segment returns the bounds of segment s of a vector of n values.
func (r *Ring) segment(n, s int) (lo, hi int) {
	w := r.cfg.World
	return s * n / w, (s + 1) * n / w
}

// pieces is how many messages carry [lo, hi): none for an empty segment
// (a vector shorter than the world).
func (r *Ring) pieces(lo, hi int) int { return (hi - lo + r.chunk - 1) / r.chunk }

func (r *Ring) piece(lo, hi, p int) (int, int) {
	a := lo + p*r.chunk
	return a, min(a+r.chunk, hi)
}

// appendMessage appends one message to dst: the values as a float32
// tensor, its key as metadata.
func appendMessage(dst []byte, seq uint64, rank int, phase uint8, step, piece int, vals []float32) ([]byte, error) {
	meta := map[string]string{
		"seq": strconv.FormatUint(seq, 10), "rank": strconv.Itoa(rank),
		"phase": strconv.Itoa(int(phase)), "step": strconv.Itoa(step), "piece": strconv.Itoa(piece),
	}
	return tensor.AppendEncode(dst, []tensor.Tensor{tensor.FromFloat32("g", []int{len(vals)}, vals)}, meta)
}

// send is called by AllReduce only, one call at a time: r.out is its own.
func (r *Ring) send(seq uint64, phase uint8, step, piece int, vals []float32, st *Stats) error {
	payload, err := appendMessage(r.out[:0], seq, r.cfg.Rank, phase, step, piece, vals)
	if err != nil {
		return fmt.Errorf("collective: encode: %w", err)
	}
	r.out = payload
	if err := r.cfg.Conn.Publish(r.next, payload); err != nil {
		return fmt.Errorf("collective: publish to %s: %w", r.next, err)
	}
	st.Bytes += int64(4 * len(vals))
	st.Messages++
	return nil
}

var phaseNames = [2]string{"reduce-scatter", "all-gather"}

// wait returns the values of message k, waiting at most the timeout.
func (r *Ring) wait(ctx context.Context, k key, n int) ([]float32, error) {
	start := time.Now()
	timer := time.NewTimer(r.cfg.Timeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		a, ok := r.pending[k]
		if ok {
			delete(r.pending, k)
			r.seen[k] = true
		}
		closed, bad := r.closed, r.bad
		r.mu.Unlock()
		switch {
		case ok && len(a.vals) != n:
			return nil, fmt.Errorf("collective: rank %d: allreduce %d %s step %d piece %d has %d values, want %d (peers disagree on the vector length)",
				r.cfg.Rank, k.seq, phaseNames[k.phase], k.step, k.piece, len(a.vals), n)
		case ok:
			return a.vals, nil
		case bad != nil:
			return nil, bad
		case closed:
			return nil, ErrClosed
		}
		select {
		case <-r.notify:
		case <-timer.C:
			return nil, &TimeoutError{Rank: r.cfg.Rank, Peer: (r.cfg.Rank + r.cfg.World - 1) % r.cfg.World,
				Seq: k.seq, Phase: fmt.Sprintf("%s step %d piece %d", phaseNames[k.phase], k.step, k.piece), Waited: time.Since(start)}
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// AllReduce replaces data, on every rank, by the element-wise sum of all
// ranks' data. seq must increase from call to call and be the same on every
// rank for the same call; all ranks must pass vectors of the same length.
// Calls on one Ring must not overlap.
func (r *Ring) AllReduce(ctx context.Context, seq uint64, data []float32) (st Stats, err error) {
	start := time.Now()
	if r.cfg.World == 1 {
		return st, nil
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return st, ErrClosed
	}
	// Forget keys of earlier calls: their duplicates are now stale.
	for k := range r.seen {
		if k.seq < seq {
			delete(r.seen, k)
		}
	}
	for k := range r.pending {
		if k.seq < seq {
			delete(r.pending, k)
		}
	}
	r.minSeq = seq
	dups0 := r.dups
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		st.Duplicates = r.dups - dups0
		r.mu.Unlock()
		st.Duration = time.Since(start)
	}()

	n, w, rank := len(data), r.cfg.World, r.cfg.Rank
	mod := func(i int) int { return ((i % w) + w) % w }
	// Reduce-scatter: send segment rank; at ring step s receive segment
	// rank-s-1 from the predecessor, add, and forward it piece by piece.
	lo, hi := r.segment(n, rank)
	for p := range r.pieces(lo, hi) {
		a, b := r.piece(lo, hi, p)
		if err := r.send(seq, 0, 0, p, data[a:b], &st); err != nil {
			return st, err
		}
	}
	for s := 0; s < w-1; s++ {
		lo, hi := r.segment(n, mod(rank-s-1))
		for p := range r.pieces(lo, hi) {
			a, b := r.piece(lo, hi, p)
			in, err := r.wait(ctx, key{seq: seq, phase: 0, step: uint16(s), piece: uint32(p)}, b-a)
			if err != nil {
				return st, err
			}
			dst := data[a:b]
			for i, v := range in {
				dst[i] += v
			}
			// The last reduce-scatter step completes segment rank+1: it
			// starts the all-gather.
			if s < w-2 {
				err = r.send(seq, 0, s+1, p, dst, &st)
			} else {
				err = r.send(seq, 1, 0, p, dst, &st)
			}
			if err != nil {
				return st, err
			}
		}
	}
	// All-gather: at ring step s receive the finished segment rank-s and
	// forward it.
	for s := 0; s < w-1; s++ {
		lo, hi := r.segment(n, mod(rank-s))
		for p := range r.pieces(lo, hi) {
			a, b := r.piece(lo, hi, p)
			in, err := r.wait(ctx, key{seq: seq, phase: 1, step: uint16(s), piece: uint32(p)}, b-a)
			if err != nil {
				return st, err
			}
			copy(data[a:b], in)
			if s < w-2 {
				if err := r.send(seq, 1, s+1, p, data[a:b], &st); err != nil {
					return st, err
				}
			}
		}
	}
	return st, nil
}
