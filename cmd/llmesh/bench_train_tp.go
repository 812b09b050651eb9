package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/services/tokenizer/tokbench"
	"github.com/llmesh/llmesh/services/trainer"
	"github.com/llmesh/llmesh/services/trainer/collective"
)

// benchTensorParallel measures tensor-parallel training ("parallel":
// "tensor"): 2 shards, each computing half of every layer on threads
// threads and all-reducing activations over NATS, against 1 shard running
// the same in-process code on the same threads (no allreduce), at the
// same batch. Both run in this process (the trainer computes
// tensor-parallel steps itself, not in a plugin). It returns the tokens/s
// row and the allreduce-cost row.
func benchTensorParallel(ctx context.Context, connect func(string) (*bus.Bus, error), host trainer.Launcher, base map[string]any,
	rows, embd, threads, steps, repeat int, stderr io.Writer) ([]tokbench.Result, error) {
	load0 := loadAverage()
	run := func(n int) (trainer.Result, error) {
		spec := maps.Clone(base)
		spec["shards"] = n
		spec["parallel"] = trainer.ParallelTensor
		js, _ := json.Marshal(spec)
		job := fmt.Sprintf("bench-train-tp-%d-%d", n, time.Now().UnixNano())
		return runBenchShards(ctx, connect, "tp-shard", n, job, js, trainer.Config{Host: host, Heartbeat: 200 * time.Millisecond, TensorThreads: threads})
	}
	var one, two trainer.Result
	for i := range repeat {
		fmt.Fprintf(stderr, "tensor parallel %d/%d: 1 shard x %d thread(s), %d steps...\n", i+1, repeat, threads, steps)
		r, err := run(1)
		if err != nil {
			return nil, fmt.Errorf("tensor parallel, 1 shard: %w", err)
		}
		if r.TokensPerSec > one.TokensPerSec {
			one = r
		}
		fmt.Fprintf(stderr, "tensor parallel %d/%d: 2 shards x %d thread(s), %d steps...\n", i+1, repeat, threads, steps)
		if r, err = run(2); err != nil {
			return nil, fmt.Errorf("tensor parallel, 2 shards: %w", err)
		}
		if r.TokensPerSec > two.TokensPerSec {
			two = r
		}
	}
	idle, err := activationAllReduce(ctx, connect, rows*embd)
	if err != nil {
		return nil, err
	}
	load := fmt.Sprintf("load average %s before, %s after", load0, loadAverage())
	tps := tokbench.Result{Name: fmt.Sprintf("train/tensor-parallel/shards=2/threads=%d", threads), Unit: "tokens/s", Value: two.TokensPerSec,
		Note: fmt.Sprintf("each shard holds half the heads and MLP columns; best of %d; final loss %.4f vs %.4f on 1 shard; %s",
			repeat, two.FinalLoss, one.FinalLoss, load)}
	tps.Compare(fmt.Sprintf("1 shard, %d thread(s), same in-process code", threads), one.TokensPerSec, true)
	done := float64(max(two.Steps, 1))
	ar := tokbench.Result{Name: "train/tensor-parallel/allreduce-wait", Unit: "ms per step", Value: two.AllReduceWaitSeconds / done * 1000,
		Note: fmt.Sprintf("the time the 2-shard computation waited for allreduces, %.0f%% of the run; the ring took %.1f ms per step (the backward pass's allreduces overlap its weight gradients); "+
			"%d allreduces per step (4 per layer of %d x %d float32 = %d KiB, 1 of the gradient norm) over NATS; one with both ranks ready takes %.2f ms (median of 20), "+
			"the rest of the waiting is for the other shard; %s",
			100*two.AllReduceWaitSeconds/two.Seconds, two.AllReduceSeconds/done*1000, two.AllReduces/int64(done), rows, embd, rows*embd*4>>10,
			float64(idle.Microseconds())/1000, load)}
	return []tokbench.Result{tps, ar}, nil
}

// activationAllReduce is the median time of 20 two-rank ring allreduces
// of n float32 over NATS (after a warmup), both ranks calling at once: what
// one activation allreduce costs without waiting for a slower peer.
func activationAllReduce(ctx context.Context, connect func(string) (*bus.Bus, error), n int) (time.Duration, error) {
	rings := make([]*collective.Ring, 2)
	for r := range 2 {
		b, err := connect(fmt.Sprintf("tp-allreduce-%d", r))
		if err != nil {
			return 0, err
		}
		defer b.Close()
		if rings[r], err = collective.New(collective.Config{Conn: b.Conn(), Prefix: "bench.tp.allreduce", Rank: r, World: 2, Timeout: time.Minute}); err != nil {
			return 0, err
		}
		defer rings[r].Close()
	}
	data := [][]float32{make([]float32, n), make([]float32, n)}
	var times []time.Duration
	for seq := range uint64(21) {
		errs := make([]error, 2)
		var wg sync.WaitGroup
		start := time.Now()
		for r := range 2 {
			wg.Go(func() { _, errs[r] = rings[r].AllReduce(ctx, seq, data[r]) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return 0, err
		}
		if seq > 0 {
			times = append(times, time.Since(start))
		}
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}

// loadAverage is the 1-, 5- and 15-minute load average, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
