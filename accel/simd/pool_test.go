package simd

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countTask counts the calls of each piece and records a value per piece
// that the caller reads after Run (the race detector checks that the
// helpers' writes happen before Run returns).
type countTask struct {
	calls []atomic.Int32
	out   []int
}

func newCountTask(n int) *countTask {
	return &countTask{calls: make([]atomic.Int32, n), out: make([]int, n)}
}

func (t *countTask) Run(i int) {
	t.calls[i].Add(1)
	t.out[i] = i + 1
}

func (t *countTask) check(n int) error {
	for i := range n {
		if c := t.calls[i].Load(); c != 1 {
			return fmt.Errorf("piece %d of %d ran %d times", i, n, c)
		}
		if t.out[i] != i+1 {
			return fmt.Errorf("piece %d of %d: caller reads %d, want %d", i, n, t.out[i], i+1)
		}
		t.calls[i].Store(0)
		t.out[i] = 0
	}
	return nil
}

// Pools with helpers that always spin (the short-job hand-off), that
// park at once (every job wakes them through the channel) and the
// default: every piece runs exactly once, for any piece count, and its
// writes are seen by the caller.
func TestPoolRunsEveryPieceOnce(t *testing.T) {
	spins := map[string]time.Duration{"spinning": time.Hour, "parking": 0, "default": spinFor}
	for name, spin := range spins {
		for _, threads := range []int{1, 2, 3, 5} {
			t.Run(fmt.Sprintf("%s/threads=%d", name, threads), func(t *testing.T) {
				p := newPool(threads, spin)
				defer p.close()
				r := rand.New(rand.NewPCG(uint64(threads), 7))
				task := newCountTask(300)
				for range 400 {
					n := r.IntN(300) + 1
					if r.IntN(4) == 0 {
						n = r.IntN(4) + 1 // fewer pieces than threads
					}
					p.Run(task, n)
					if err := task.check(n); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

// Several goroutines share one pool (as decoders of different models do
// in one plugin); each of their calls is complete when it returns.
func TestPoolConcurrentCallers(t *testing.T) {
	for name, spin := range map[string]time.Duration{"spinning": time.Hour, "parking": 0, "default": spinFor} {
		t.Run(name, func(t *testing.T) {
			p := newPool(3, spin)
			defer p.close()
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for c := range 4 {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(c), 9))
					task := newCountTask(64)
					for range 300 {
						n := r.IntN(64) + 1
						p.Run(task, n)
						if err := task.check(n); err != nil {
							errs <- fmt.Errorf("caller %d: %w", c, err)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// nestedTask runs an inner task on the same pool from each of its pieces.
type nestedTask struct {
	p     *Pool
	inner []*countTask
	errs  []error
}

func (t *nestedTask) Run(i int) {
	t.p.Run(t.inner[i], 17)
	t.errs[i] = t.inner[i].check(17)
}

// A piece may itself call Run on the pool (helpers busy with the outer
// call are not waited for): no deadlock, every inner piece once.
func TestPoolNestedRun(t *testing.T) {
	for name, spin := range map[string]time.Duration{"spinning": time.Hour, "parking": 0} {
		t.Run(name, func(t *testing.T) {
			p := newPool(2, spin)
			defer p.close()
			const n = 9
			task := &nestedTask{p: p, errs: make([]error, n)}
			for range n {
				task.inner = append(task.inner, newCountTask(17))
			}
			for range 100 {
				p.Run(task, n)
				for i, err := range task.errs {
					if err != nil {
						t.Fatalf("outer piece %d: %v", i, err)
					}
				}
			}
		})
	}
}

// A spinning helper takes part in short jobs: in some of many two-piece
// calls the second piece starts while the first still runs, which only
// another goroutine can do. (With helpers that park at once the caller may
// do every piece itself, which is allowed, so only a spinning pool is
// checked.)
func TestPoolSpinningHelperJoins(t *testing.T) {
	p := newPool(2, time.Hour)
	defer p.close()
	task := &overlapTask{}
	for range 2000 {
		task.started.Store(0)
		p.Run(task, 2)
		if task.overlapped.Load() {
			return
		}
	}
	t.Fatal("no helper joined any of 2000 two-piece jobs")
}

// overlapTask's first piece to start waits a few thousand yields for the
// other piece to start.
type overlapTask struct {
	started    atomic.Int32
	overlapped atomic.Bool
}

func (t *overlapTask) Run(int) {
	if t.started.Add(1) != 1 {
		return
	}
	for range 5000 {
		if t.started.Load() == 2 {
			t.overlapped.Store(true)
			return
		}
		runtime.Gosched()
	}
}

// spinTask does about work multiply-adds per piece.
type spinTask struct {
	x    []float32
	sink []float32
}

func (t *spinTask) Run(i int) {
	s := float32(0)
	for _, v := range t.x {
		s += v * v
	}
	t.sink[i] = s
}

// BenchmarkPoolShortJob: a two-piece job of a few microseconds a piece,
// split across the shared pool (2 threads) against run on the caller.
func BenchmarkPoolShortJob(b *testing.B) {
	for _, n := range []int{1024, 8192} {
		task := &spinTask{x: make([]float32, n), sink: make([]float32, 2)}
		b.Run(fmt.Sprintf("floats=%d/serial", n), func(b *testing.B) {
			for b.Loop() {
				task.Run(0)
				task.Run(1)
			}
		})
		b.Run(fmt.Sprintf("floats=%d/pool", n), func(b *testing.B) {
			p := SharedPool(2)
			for b.Loop() {
				p.Run(task, 2)
			}
		})
	}
}
