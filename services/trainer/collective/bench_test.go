package collective

import (
	"fmt"
	"testing"
	"time"
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
