package collective

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/llmesh/llmesh/bus/bustest"
)

// rings connects world ranks to one embedded server, each over its own
// connection, under prefix.
func rings(t testing.TB, world int, prefix string, chunkBytes int, timeout time.Duration) ([]*Ring, *nats.Conn) {
	t.Helper()
	srv := bustest.NewServer(t)
	rs := make([]*Ring, world)
	for rank := range world {
		b := bustest.Connect(t, srv)
		r, err := New(Config{Conn: b.Conn(), Prefix: prefix, Rank: rank, World: world, Timeout: timeout, ChunkBytes: chunkBytes})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		rs[rank] = r
	}
	return rs, bustest.Connect(t, srv).Conn()
}

// allReduce runs AllReduce on every rank at once.
func allReduce(ctx context.Context, rs []*Ring, seq uint64, data [][]float32) ([]Stats, []error) {
	stats, errs := make([]Stats, len(rs)), make([]error, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() { stats[i], errs[i] = r.AllReduce(ctx, seq, data[i]) })
	}
	wg.Wait()
	return stats, errs
}

func randomVectors(rng *rand.Rand, world, n int) ([][]float32, []float64) {
	data := make([][]float32, world)
	want := make([]float64, n)
	for r := range world {
		data[r] = make([]float32, n)
		for i := range n {
			v := float32(rng.NormFloat64())
			data[r][i] = v
			want[i] += float64(v)
		}
	}
	return data, want
}

func TestAllReduceMatchesFloat64Sum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, world := range []int{1, 2, 3, 4, 5} {
		t.Run(fmt.Sprintf("world=%d", world), func(t *testing.T) {
			// 1 KiB pieces: 256 values, so the longer vectors take many
			// pipelined pieces per segment.
			rs, _ := rings(t, world, "test.ar", 1<<10, 10*time.Second)
			for seq, n := range []int{1, 3, 7, 256, 1000, 12345} {
				data, want := randomVectors(rng, world, n)
				stats, errs := allReduce(t.Context(), rs, uint64(seq), data)
				for rank, err := range errs {
					if err != nil {
						t.Fatalf("n=%d rank %d: %v", n, rank, err)
					}
				}
				for i := range n {
					if d := math.Abs(float64(data[0][i]) - want[i]); d > 1e-5*float64(world) {
						t.Fatalf("n=%d: [%d] = %v, float64 sum %v (diff %g)", n, i, data[0][i], want[i], d)
					}
					for rank := 1; rank < world; rank++ {
						if data[rank][i] != data[0][i] {
							t.Fatalf("n=%d: rank %d has [%d] = %v, rank 0 has %v: ranks must agree bit for bit", n, rank, i, data[rank][i], data[0][i])
						}
					}
				}
				if world > 1 {
					// Each rank sends 2(w-1)/w of the vector.
					var sent int64
					for _, s := range stats {
						sent += s.Bytes
					}
					if want := int64(4 * n * 2 * (world - 1)); sent != want {
						t.Errorf("n=%d: ranks sent %d bytes in all, want 2(w-1)·4n = %d", n, sent, want)
					}
				}
			}
		})
	}
}

// A message delivered twice (a redelivery, a retransmit) is summed once.
func TestAllReduceDropsDuplicates(t *testing.T) {
	const world = 3
	rs, tap := rings(t, world, "test.dup", 1<<10, 10*time.Second)
	// The tap republishes every ring message once more, marked so that it
	// does not republish its own copies.
	var copies atomic.Int64
	sub, err := tap.Subscribe("test.dup.*", func(m *nats.Msg) {
		if m.Header.Get("copy") != "" {
			return
		}
		dup := nats.NewMsg(m.Subject)
		dup.Data = m.Data
		dup.Header.Set("copy", "1")
		if err := tap.PublishMsg(dup); err == nil {
			copies.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tap.Flush(); err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	rng := rand.New(rand.NewPCG(3, 4))
	var dups int
	for seq := range uint64(5) {
		data, want := randomVectors(rng, world, 2000)
		stats, errs := allReduce(t.Context(), rs, seq, data)
		for rank, err := range errs {
			if err != nil {
				t.Fatalf("seq %d rank %d: %v", seq, rank, err)
			}
		}
		for rank := range world {
			for i, w := range want {
				if d := math.Abs(float64(data[rank][i]) - w); d > 1e-4 {
					t.Fatalf("seq %d rank %d: [%d] = %v, want %v: a duplicate was summed", seq, rank, i, data[rank][i], w)
				}
			}
			dups += stats[rank].Duplicates
		}
	}
	if copies.Load() == 0 || dups == 0 {
		t.Errorf("tap republished %d messages, ranks counted %d duplicates; want both above 0", copies.Load(), dups)
	}
}

// A peer that never sends is noticed within the timeout, and the error
// names it.
func TestAllReduceDeadPeerTimesOut(t *testing.T) {
	const world = 3
	rs, _ := rings(t, world, "test.dead", 0, 300*time.Millisecond)
	data, _ := randomVectors(rand.New(rand.NewPCG(5, 6)), world, 100)
	// Rank 2 is dead: only ranks 0 and 1 call.
	stats, errs := allReduce(t.Context(), rs[:2], 7, data[:2])
	_ = stats
	for rank, err := range errs {
		var te *TimeoutError
		if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) {
			t.Fatalf("rank %d: err = %v, want a *TimeoutError", rank, err)
		}
		if te.Rank != rank || te.Seq != 7 {
			t.Errorf("rank %d: timeout error %+v", rank, te)
		}
	}
	// Rank 0 waits on rank 2 (its predecessor), which never sent.
	var te *TimeoutError
	errors.As(errs[0], &te)
	if te.Peer != 2 || !strings.Contains(errs[0].Error(), "for rank 2") {
		t.Errorf("rank 0: %v, want it to name rank 2", errs[0])
	}
}

func TestAllReduceCancelled(t *testing.T) {
	rs, _ := rings(t, 2, "test.cancel", 0, time.Minute)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := rs[0].AllReduce(ctx, 1, make([]float32, 10))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestAllReduceBadInput(t *testing.T) {
	t.Run("config", func(t *testing.T) {
		b := bustest.Connect(t, bustest.NewServer(t))
		for name, cfg := range map[string]Config{
			"no conn":        {Prefix: "p", World: 1},
			"no prefix":      {Conn: b.Conn(), World: 1},
			"rank too large": {Conn: b.Conn(), Prefix: "p", Rank: 2, World: 2},
			"zero world":     {Conn: b.Conn(), Prefix: "p"},
		} {
			if _, err := New(cfg); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: err = %v, want ErrInvalid", name, err)
			}
		}
	})
	t.Run("length mismatch", func(t *testing.T) {
		rs, _ := rings(t, 2, "test.len", 0, 2*time.Second)
		_, errs := allReduce(t.Context(), rs, 1, [][]float32{make([]float32, 10), make([]float32, 12)})
		if errs[0] == nil && errs[1] == nil {
			t.Fatal("ranks with vectors of 10 and 12 values both succeeded")
		}
		for _, err := range errs {
			if err != nil && !strings.Contains(err.Error(), "disagree on the vector length") && !errors.Is(err, ErrTimeout) {
				t.Errorf("err = %v", err)
			}
		}
	})
	t.Run("garbage message", func(t *testing.T) {
		rs, tap := rings(t, 2, "test.garbage", 0, 5*time.Second)
		if err := tap.Publish("test.garbage.0", []byte("not arrow")); err != nil {
			t.Fatal(err)
		}
		if err := tap.Flush(); err != nil {
			t.Fatal(err)
		}
		_, err := rs[0].AllReduce(t.Context(), 1, make([]float32, 4))
		if err == nil || !strings.Contains(err.Error(), "bad message on test.garbage.0") {
			t.Errorf("err = %v, want a bad-message error", err)
		}
	})
}

// FuzzReceive feeds outside bytes to the ring's decoder: never a panic,
// and a message that is kept has a key and values.
func FuzzReceive(f *testing.F) {
	valid, err := appendMessage(nil, 3, 0, 1, 2, 5, []float32{1, 2, 3})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte("garbage"))
	f.Add(valid[:len(valid)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &Ring{cfg: Config{Rank: 1, World: 2}, pending: map[key]arrival{}, seen: map[key]bool{}, notify: make(chan struct{}, 1)}
		r.receive(&nats.Msg{Subject: "x.1", Data: b})
		if len(r.pending) == 0 && r.bad == nil {
			t.Fatal("message neither kept nor reported bad")
		}
	})
}
