package servebench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// SwapOptions configures RunSwap: the serving benchmark held at
// saturation while the model's backend is hot-swapped.
type SwapOptions struct {
	Options
	Clients  int           // concurrent clients, each in a closed loop; default 32
	Baseline time.Duration // load before the swap; default 3 s
	After    time.Duration // load after the swap; default 2 s
	Backend  string        // the backend swapped to; default "cpu"
	// BeforeSwap runs after the baseline, right before the swap; a test
	// replaces the plugin binary with a rebuilt one here.
	BeforeSwap func() error
	// AfterSwap runs right after the swap with the new plugin's pid, while
	// it serves.
	AfterSwap func(pid int) error
}

// Latency summarises the requests of one phase.
type Latency struct {
	P50, P99 time.Duration
	N        int
}

// SwapResult is what the clients saw, phase by phase: requests that
// finished before the swap began (Base), that overlapped it (During), and
// that started after it ended (After).
type SwapResult struct {
	Requests, Failed    int
	Errors              []string // the first few failures
	Base, During, After Latency
	SwapTook            time.Duration
	OldPid, NewPid      int
}

type sample struct {
	start, end time.Time
	err        error
}

// RunSwap measures a hot-swap under load. It fails only when the rig
// cannot run; failed requests are counted in the result.
func RunSwap(ctx context.Context, o SwapOptions) (SwapResult, error) {
	if o.Clients <= 0 {
		o.Clients = 32
	}
	if o.Baseline <= 0 {
		o.Baseline = 3 * time.Second
	}
	if o.After <= 0 {
		o.After = 2 * time.Second
	}
	if o.Backend == "" {
		o.Backend = "cpu"
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	r, err := newRig(ctx, o.Options, logf)
	if err != nil {
		return SwapResult{}, err
	}
	defer r.close()
	st, err := r.startStack(ctx, true)
	defer st.close()
	if err != nil {
		return SwapResult{}, err
	}
	b := st.bus

	lctx, stopLoad := context.WithCancel(ctx)
	var mu sync.Mutex
	var samples []sample
	var wg sync.WaitGroup
	for c := range o.Clients {
		wg.Go(func() {
			for i := 0; lctx.Err() == nil; i++ {
				req := &busv1.GenerateRequest{Model: "bench", Prompt: r.prompts[(c+i*o.Clients)%len(r.prompts)], MaxTokens: int32(o.MaxTokens), IgnoreEos: true}
				s := sample{start: time.Now()}
				// A request runs to its end even when the load stops, so
				// that a failure is never mistaken for the test's own cancel.
				s.err = b.Generate(context.WithoutCancel(ctx), req, func(*busv1.GenerateChunk) error { return nil })
				s.end = time.Now()
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
			}
		})
	}
	stop := func() { stopLoad(); wg.Wait() }
	select {
	case <-time.After(o.Baseline):
	case <-ctx.Done():
		stop()
		return SwapResult{}, ctx.Err()
	}
	if o.BeforeSwap != nil {
		if err := o.BeforeSwap(); err != nil {
			stop()
			return SwapResult{}, fmt.Errorf("before the swap: %w", err)
		}
	}
	swapStart := time.Now()
	replies, err := b.SwapBackend(ctx, "bench", o.Backend)
	swapEnd := time.Now()
	if err == nil && (len(replies) != 1 || replies[0].Error != "") {
		err = fmt.Errorf("swap replies %v", replies)
	}
	if err != nil {
		stop()
		return SwapResult{}, fmt.Errorf("swap: %w", err)
	}
	if o.AfterSwap != nil {
		if err := o.AfterSwap(int(replies[0].Pid)); err != nil {
			stop()
			return SwapResult{}, fmt.Errorf("after the swap: %w", err)
		}
	}
	time.Sleep(o.After)
	stop()

	res := SwapResult{SwapTook: swapEnd.Sub(swapStart), OldPid: int(replies[0].OldPid), NewPid: int(replies[0].Pid)}
	var base, during, after []time.Duration
	for _, s := range samples {
		res.Requests++
		if s.err != nil {
			res.Failed++
			if len(res.Errors) < 5 {
				res.Errors = append(res.Errors, s.err.Error())
			}
			continue
		}
		d := s.end.Sub(s.start)
		switch {
		case s.end.Before(swapStart):
			base = append(base, d)
		case s.start.Before(swapEnd):
			during = append(during, d)
		default:
			after = append(after, d)
		}
	}
	res.Base, res.During, res.After = summarize(base), summarize(during), summarize(after)
	if res.Base.N == 0 || res.During.N == 0 {
		return res, errors.New("no requests finished before or overlapped the swap: lengthen the baseline")
	}
	return res, nil
}

func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return Latency{P50: at(0.5), P99: at(0.99), N: len(ds)}
}
