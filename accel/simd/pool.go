package simd

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Task is a unit of parallel work split into independent pieces,
// numbered from 0; Run does piece i.
type Task interface{ Run(i int) }

// parJob hands a task's pieces out to whichever goroutines join it.
//
// state is gen<<32 | revoked<<31 | joined: gen counts the job's reuses, so
// that a helper handed an earlier use never touches a later one; joined
// counts the helpers that came; revoked closes the job to helpers that
// have not come by the time the caller has done the pieces, so that the
// caller never waits for a helper still waking up (a wake-up can cost
// more than the whole task).
type parJob struct {
	t     Task
	n     int64
	next  atomic.Int64
	wg    sync.WaitGroup
	state atomic.Uint64
}

const (
	jobRevoked = 1 << 31
	jobJoined  = jobRevoked - 1
)

// offerMsg is a job handed to a helper, for one use of it.
type offerMsg struct {
	j   *parJob
	gen uint64
}

// join admits a helper to use gen of j; false when the job moved on or
// the caller has revoked it.
func (j *parJob) join(gen uint64) bool {
	for {
		s := j.state.Load()
		if s>>32 != gen || s&jobRevoked != 0 {
			return false
		}
		if j.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

// revoke closes the job to helpers that have not joined and returns how
// many did.
func (j *parJob) revoke() int {
	for {
		s := j.state.Load()
		if j.state.CompareAndSwap(s, s|jobRevoked) {
			return int(s & jobJoined)
		}
	}
}

func (j *parJob) work() {
	for {
		i := j.next.Add(1) - 1
		if i >= j.n {
			return
		}
		j.t.Run(int(i))
	}
}

// Pool is a fixed set of helper goroutines started once; Run splits a
// task across them and the caller. Jobs are recycled, so a call does not
// allocate once warm. A helper busy with another call is not waited for
// (the caller does the pieces nobody takes, so nothing can deadlock), but
// one that is a moment from ready — it just finished the previous call —
// is given a few yields to arrive.
type Pool struct {
	helpers int
	ch      chan offerMsg
	jobs    sync.Pool
}

var (
	poolsMu sync.Mutex
	pools   = map[int]*Pool{}
)

// SharedPool returns the process's pool for a thread count (the caller
// and threads-1 helpers), started on first use: Kernels, models and
// decoders with the same count share helpers, so making them again and
// again starts no more goroutines.
func SharedPool(threads int) *Pool {
	poolsMu.Lock()
	defer poolsMu.Unlock()
	p, ok := pools[threads]
	if !ok {
		p = newPool(threads)
		pools[threads] = p
	}
	return p
}

func newPool(threads int) *Pool {
	p := &Pool{helpers: max(threads-1, 0), ch: make(chan offerMsg)}
	p.jobs.New = func() any { return new(parJob) }
	for range p.helpers {
		go func() {
			for m := range p.ch {
				if m.j.join(m.gen) {
					m.j.work()
					m.j.wg.Done()
				}
			}
		}()
	}
	return p
}

// offer hands j to an idle helper, yielding a little for one that is
// about to be idle; false when none comes.
func (p *Pool) offer(m offerMsg) bool {
	for range offerYields {
		select {
		case p.ch <- m:
			return true
		default:
		}
		runtime.Gosched()
	}
	return false
}

// offerYields bounds the wait for a helper: a few microseconds.
const offerYields = 64

// Helpers is how many goroutines besides the caller work on a Run.
func (p *Pool) Helpers() int { return p.helpers }

// Run calls t.Run(i) for every i in [0, n), in parallel where it can.
func (p *Pool) Run(t Task, n int) {
	if n <= 0 {
		return
	}
	if n == 1 || p.helpers == 0 {
		for i := range n {
			t.Run(i)
		}
		return
	}
	j := p.jobs.Get().(*parJob)
	j.t, j.n = t, int64(n)
	j.next.Store(0)
	gen := j.state.Load()>>32 + 1
	j.state.Store(gen << 32)
	offered := 0
	for h := 0; h < p.helpers && h < n-1; h++ {
		j.wg.Add(1) // before the offer: a helper may be done before it returns
		if !p.offer(offerMsg{j, gen}) {
			j.wg.Done()
			break
		}
		offered++
	}
	j.work()
	// Helpers that have not joined by now will find the job revoked: do
	// their Done here instead of waiting for them to wake up.
	j.wg.Add(-(offered - j.revoke()))
	j.wg.Wait()
	j.t = nil
	p.jobs.Put(j)
}
