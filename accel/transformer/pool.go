package transformer

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// task is a unit of parallel work split into n independent pieces.
type task interface{ run(i int) }

// parJob hands a task's pieces out to whichever goroutines join it.
type parJob struct {
	t    task
	n    int64
	next atomic.Int64
	wg   sync.WaitGroup
}

func (j *parJob) work() {
	for {
		i := j.next.Add(1) - 1
		if i >= j.n {
			return
		}
		j.t.run(int(i))
	}
}

// workerPool is a fixed set of goroutines started once; run splits a task
// across them and the caller. Jobs are recycled, so a call does not
// allocate once warm. A call made from inside a task (nested parallelism)
// never blocks on a busy pool: pieces no helper picks up run on the caller.
type workerPool struct {
	helpers int
	ch      chan *parJob
	jobs    sync.Pool
}

var (
	sharedPoolOnce sync.Once
	sharedPool     *workerPool
)

// defaultPool returns the process-wide pool, sized GOMAXPROCS-1 helpers at
// first use.
func defaultPool() *workerPool {
	sharedPoolOnce.Do(func() {
		n := runtime.GOMAXPROCS(0) - 1
		p := &workerPool{helpers: n, ch: make(chan *parJob)}
		p.jobs.New = func() any { return new(parJob) }
		for range n {
			go func() {
				for j := range p.ch {
					j.work()
					j.wg.Done()
				}
			}()
		}
		sharedPool = p
	})
	return sharedPool
}

// run calls t.run(i) for every i in [0, n), in parallel where it pays.
func (p *workerPool) run(t task, n int) {
	if n <= 0 {
		return
	}
	if n == 1 || p.helpers == 0 {
		for i := range n {
			t.run(i)
		}
		return
	}
	j := p.jobs.Get().(*parJob)
	j.t, j.n = t, int64(n)
	j.next.Store(0)
	for h := 0; h < p.helpers && h < n-1; h++ {
		j.wg.Add(1)
		select {
		case p.ch <- j:
		default:
			j.wg.Done()
			h = p.helpers // nobody idle: stop offering
		}
	}
	j.work()
	j.wg.Wait()
	j.t = nil
	p.jobs.Put(j)
}
