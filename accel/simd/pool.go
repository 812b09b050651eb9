package simd

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Task is a unit of parallel work split into independent pieces,
// numbered from 0; Run does piece i.
type Task interface{ Run(i int) }

// parJob hands a task's pieces out to whichever goroutines join it.
//
// state is gen<<32 | revoked<<31 | sleeping<<30 | finished<<15 | joined:
// gen counts the job's reuses, so that a helper handed an earlier use
// never touches a later one; joined counts the helpers that came (at most
// max) and finished those that have no more pieces to take; revoked closes
// the job to helpers that have not come by the time the caller has done
// the pieces, so that the caller never waits for a helper still waking up
// (a wake-up can cost more than the whole task); sleeping says that the
// caller, tired of spinning, blocks on done, where the last helper to
// finish sends one value.
type parJob struct {
	t     Task
	n     int64
	max   atomic.Uint64 // helpers it takes; atomic, as a stale helper may read it
	next  atomic.Int64
	state atomic.Uint64
	done  chan struct{}
}

const (
	jobRevoked   = 1 << 31
	jobSleeping  = 1 << 30
	jobFinished1 = 1 << 15 // one finished helper
	jobCount     = jobFinished1 - 1
	maxHelpers   = jobCount
)

// offerMsg is a job handed to a parked helper, for one use of it.
type offerMsg struct {
	j   *parJob
	gen uint64
}

// join admits a helper to use gen of j; false when the job moved on, the
// caller has revoked it, or enough helpers came.
func (j *parJob) join(gen uint64) bool {
	for {
		s := j.state.Load()
		if s>>32 != gen || s&jobRevoked != 0 || s&jobCount >= j.max.Load() {
			return false
		}
		if j.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

// finish is a joined helper's last touch of the job.
func (j *parJob) finish() {
	s := j.state.Add(jobFinished1)
	if s&jobSleeping != 0 && s>>15&jobCount == s&jobCount {
		j.done <- struct{}{}
	}
}

// revoke closes the job to helpers that have not joined.
func (j *parJob) revoke() {
	for {
		s := j.state.Load()
		if j.state.CompareAndSwap(s, s|jobRevoked) {
			return
		}
	}
}

// wait returns when every helper that joined has finished: it spins a
// little (they are doing their last pieces), then sleeps. It reports
// whether it slept.
func (j *parJob) wait() bool {
	for i := 0; ; i++ {
		s := j.state.Load()
		if s>>15&jobCount == s&jobCount {
			return false
		}
		if i < waitSpins {
			if i%16 == 15 {
				runtime.Gosched()
			}
			continue
		}
		if j.state.CompareAndSwap(s, s|jobSleeping) {
			<-j.done
			return true
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
// allocate once warm.
//
// A helper that has just finished a piece of work spins for a moment
// (spinFor) watching for the next job before it parks, so that the short
// products of a decode step, microseconds apart, are split across cores
// without a wake-up between them: joining a posted job costs a few atomic
// operations. A parked helper is woken by the next Run but not waited for:
// the caller starts on the pieces at once, does those nobody takes
// (nothing can deadlock), and revokes the job when it runs out, so a
// helper still waking up never delays it.
type Pool struct {
	helpers int
	spin    time.Duration // spinFor, but in tests
	ch      chan offerMsg
	slot    atomic.Pointer[parJob] // the job spinning helpers may join
	parked  atomic.Int32           // helpers blocked on ch
	idle    atomic.Int32           // helpers spinning, watching slot
	stopped atomic.Bool            // tests only: see close
	jobs    sync.Pool
	// slowUntil (nanoseconds since start) backs RunShort off: a joined
	// helper kept the caller waiting, as when other processes take the
	// cores and preempt it mid-piece.
	slowUntil atomic.Int64
	start     time.Time
}

// backOff is how long RunShort runs on the caller alone, and idle
// helpers park instead of spinning, after a helper kept a caller waiting.
// Short: on a 2-vCPU machine an occasional late helper is normal, and 20 ms
// kept single-stream decoding on one core nearly all the time (measured:
// 2 ms decodes 30% faster quiet and 8% slower beside a process that keeps
// one core busy).
const backOff = 2 * time.Millisecond

// spinFor is how long an idle helper watches for the next job before it
// parks: longer than the gaps between the products of one decode step,
// short enough that an idle process gives its cores back at once.
const spinFor = 50 * time.Microsecond

// waitSpins bounds the polls a caller spends waiting for joined helpers
// to finish their last pieces before it blocks.
const waitSpins = 4096

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
		p = newPool(threads, spinFor)
		pools[threads] = p
	}
	return p
}

func newPool(threads int, spin time.Duration) *Pool {
	p := &Pool{helpers: min(max(threads-1, 0), maxHelpers), spin: spin, ch: make(chan offerMsg), start: time.Now()}
	p.jobs.New = func() any { return &parJob{done: make(chan struct{}, 1)} }
	for range p.helpers {
		go p.helper()
	}
	return p
}

// helper joins posted jobs while they come, spinning between them, and
// parks when none has come for spinFor.
func (p *Pool) helper() {
	var lastJ *parJob
	var lastGen uint64
	take := func(j *parJob, gen uint64) bool {
		if j == nil || (j == lastJ && gen == lastGen) || !j.join(gen) {
			return false
		}
		lastJ, lastGen = j, gen
		j.work()
		j.finish()
		return true
	}
	for {
		idleSince := time.Now()
		p.idle.Add(1)
		for i := 1; ; i++ {
			if j := p.slot.Load(); j != nil {
				p.idle.Add(-1)
				took := take(j, j.state.Load()>>32)
				p.idle.Add(1)
				if took {
					idleSince, i = time.Now(), 0
					continue
				}
			}
			if i%64 == 0 {
				if time.Since(idleSince) >= p.spin || p.stopped.Load() || p.slow() {
					break
				}
				runtime.Gosched()
			}
		}
		p.idle.Add(-1)
		p.parked.Add(1)
		m, ok := <-p.ch
		p.parked.Add(-1)
		if !ok {
			return
		}
		take(m.j, m.gen)
	}
}

// close ends the helpers of a pool that no Run uses any more (tests).
func (p *Pool) close() {
	p.stopped.Store(true)
	close(p.ch)
}

// slow reports whether the pool is backed off (see slowUntil).
func (p *Pool) slow() bool {
	u := p.slowUntil.Load()
	return u != 0 && int64(time.Since(p.start)) < u
}

// RunShort is Run for jobs of a few microseconds a piece (a decode step's
// few-row products): too short to wait for a wake-up, so it splits them
// only across helpers that are spinning, idle, right now, and otherwise
// runs them on the caller, waking a parked helper to spin for the next
// call. While the pool is backed off it runs them on the caller.
func (p *Pool) RunShort(t Task, n int) {
	if n > 1 && p.helpers > 0 && !p.slow() {
		if p.idle.Load() > 0 {
			p.run(t, n, true)
			return
		}
		if p.parked.Load() > 0 {
			select {
			case p.ch <- offerMsg{}:
			default:
			}
		}
	}
	for i := range n {
		t.Run(i)
	}
}

// Helpers is how many goroutines besides the caller work on a Run.
func (p *Pool) Helpers() int { return p.helpers }

// Run calls t.Run(i) for every i in [0, n), in parallel where it can.
func (p *Pool) Run(t Task, n int) { p.run(t, n, false) }

func (p *Pool) run(t Task, n int, short bool) {
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
	want := min(p.helpers, n-1)
	j.t, j.n = t, int64(n)
	j.max.Store(uint64(want))
	j.next.Store(0)
	gen := j.state.Load()>>32 + 1
	j.state.Store(gen << 32) // open: the fields above are set
	p.slot.Store(j)
	// Wake parked helpers (those spinning see the slot), without waiting
	// for one to be ready to receive.
wake:
	for range min(want, int(p.parked.Load())) {
		select {
		case p.ch <- offerMsg{j, gen}:
		default:
			break wake
		}
	}
	var t0 time.Duration
	if short {
		t0 = time.Since(p.start)
	}
	j.work()
	p.slot.CompareAndSwap(j, nil)
	// Helpers that have not joined by now will find the job revoked; wait
	// only for those that did (they are finishing their last pieces).
	j.revoke()
	if !short {
		j.wait()
	} else {
		// Back off when waiting for the helpers took more than half as
		// long as the caller's own share: the split did not pay.
		t1 := time.Since(p.start)
		slept := j.wait()
		if t2 := time.Since(p.start); slept || t2-t1 > (t1-t0)/2 {
			p.slowUntil.Store(int64(t2 + backOff))
		}
	}
	j.t = nil
	p.jobs.Put(j)
}
