package collective

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/llmesh/llmesh/bus/bustest"
)

// BenchmarkAllReduce is a 2-rank ring allreduce over an embedded server's
// loopback TCP; b.SetBytes counts what each rank sends.
func BenchmarkAllReduce(b *testing.B) {
	for _, c := range []struct{ mib, chunkKiB int }{{1, 64}, {1, 512}, {16, 512}, {16, 4096}} {
		mib := c.mib
		b.Run(fmt.Sprintf("ranks=2/size=%dMiB/chunk=%dKiB", mib, c.chunkKiB), func(b *testing.B) {
			rs, _ := rings(b, 2, "bench.ar", c.chunkKiB<<10, time.Minute)
			n := mib << 20 / 4
			data := [][]float32{make([]float32, n), make([]float32, n)}
			b.SetBytes(int64(4 * n))
			b.ResetTimer()
			for i := range b.N {
				_, errs := allReduce(b.Context(), rs, uint64(i), data)
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkNATSStream is the ring's floor: a one-way stream of 512 KiB
// messages between two connections of one embedded server, no ring, no
// Arrow.
func BenchmarkNATSStream(b *testing.B) {
	srv := bustest.NewServer(b)
	pub := bustest.Connect(b, srv).Conn()
	sub := bustest.Connect(b, srv).Conn()
	got := make(chan struct{}, 1024)
	s, err := sub.Subscribe("stream", func(*nats.Msg) { got <- struct{}{} })
	if err != nil {
		b.Fatal(err)
	}
	if err := s.SetPendingLimits(-1, -1); err != nil {
		b.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 512<<10)
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	go func() {
		for range b.N {
			if err := pub.Publish("stream", payload); err != nil {
				panic(err)
			}
		}
	}()
	for range b.N {
		<-got
	}
}
