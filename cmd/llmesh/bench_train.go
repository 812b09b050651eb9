package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/tensor"
	"github.com/llmesh/llmesh/services/tokenizer/tokbench"
	"github.com/llmesh/llmesh/services/trainer"
	"github.com/llmesh/llmesh/services/trainer/collective"
)

// benchTrain measures data-parallel training over the bus: tokens/s of N
// shards against one shard at the same global batch (each shard's plugin
// limited to the same threads), and the ring allreduce's bandwidth over
// NATS against raw loopback TCP measured in the same run.
func benchTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	shards := fs.Int("shards", 2, "shards of the data-parallel run")
	threads := fs.Int("threads", 1, "threads of each shard's plugin (GOMAXPROCS)")
	steps := fs.Int("steps", 30, "training steps per run")
	batch := fs.Int("batch", 16, "global batch (rows per step)")
	vocab := fs.Int("vocab", 512, "vocabulary size")
	nctx := fs.Int("ctx", 64, "context length (the sequence length trained)")
	embd := fs.Int("embd", 128, "d_model")
	layers := fs.Int("layers", 2, "layers")
	heads := fs.Int("heads", 4, "attention heads")
	arMiB := fs.Int("allreduce-mib", 16, "MiB of float32 per allreduce in the bandwidth measurement")
	noTrain := fs.Bool("allreduce-only", false, "measure the allreduce bandwidth only")
	repeat := fs.Int("repeat", 2, "runs of each side, alternating; the best counts (noise from other load only slows a run down)")
	pluginDir := fs.String("plugin-dir", "", "directory of llmesh-plugin-<backend> binaries")
	tensor := fs.Bool("tensor", true, "also measure tensor parallelism: 2 shards splitting every layer against 1 shard")
	tensorOnly := fs.Bool("tensor-only", false, "measure tensor parallelism only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: bench train takes no arguments", errUsage)
	}
	if *shards < 2 || *threads < 1 || *steps < 2 || *batch < *shards || *arMiB < 1 || *repeat < 1 {
		return fmt.Errorf("%w: want --shards >= 2, --threads >= 1, --steps >= 2, --batch >= --shards, --allreduce-mib >= 1, --repeat >= 1", errUsage)
	}
	if (*tensor || *tensorOnly) && *heads%2 != 0 {
		return fmt.Errorf("%w: tensor parallelism over 2 shards needs an even --heads (got %d); pass --tensor=false", errUsage, *heads)
	}
	dir, err := os.MkdirTemp("", "llmesh-bench-train-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// A listening server: the shards' connections go through loopback TCP
	// like separate machines' would.
	srv, err := bus.StartServer(bus.ServerConfig{DataDir: dir, Port: -1})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	connect := func(name string) (*bus.Bus, error) {
		return bus.Connect(ctx, bus.Config{URL: srv.ClientURL(), Name: name})
	}
	b, err := connect("bench")
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Setup(ctx); err != nil {
		return err
	}

	var results []tokbench.Result
	if !*tensorOnly {
		fmt.Fprintf(stderr, "allreduce: %d MiB over NATS vs loopback TCP...\n", *arMiB)
		ar, err := allreduceBandwidth(ctx, connect, *arMiB<<20)
		if err != nil {
			return err
		}
		results = append(results, ar...)
		if *noTrain {
			return writeBench(stdout, "train", *asJSON, results)
		}
	}

	cfg := fmt.Sprintf(`{"vocab_size":%d,"n_ctx":%d,"n_embd":%d,"n_layer":%d,"n_head":%d}`, *vocab, *nctx, *embd, *layers, *heads)
	ref, err := benchTokens(ctx, b, *vocab, 200_000)
	if err != nil {
		return err
	}
	host, err := accel.NewHost(accel.HostConfig{PluginDir: *pluginDir, Command: pluginCommand(*pluginDir),
		Env: []string{"GOMAXPROCS=" + strconv.Itoa(*threads)}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer host.Close()
	spec := map[string]any{
		"model": "bench", "train_ref": ref, "val_ref": ref, "config": json.RawMessage(cfg),
		"steps": *steps, "batch": *batch, "warmup": 2, "eval_every": *steps, "eval_batches": 1,
		"checkpoint_every": *steps, "log_every": *steps, "seed": 1, "join_timeout_s": 60, "collective_timeout_s": 60,
	}
	run := func(n int) (trainer.Result, error) {
		spec["shards"] = n
		js, _ := json.Marshal(spec)
		job := fmt.Sprintf("bench-train-%d-%d", n, time.Now().UnixNano())
		return runBenchShards(ctx, connect, "shard", n, job, js, trainer.Config{Host: host, Heartbeat: 200 * time.Millisecond})
	}
	if *tensorOnly {
		tp, err := benchTensorParallel(ctx, connect, host, spec, *batch**nctx, *embd, *threads, *steps, *repeat, stderr)
		if err != nil {
			return err
		}
		return writeBench(stdout, "train", *asJSON, tp)
	}
	var one, many trainer.Result
	for i := range *repeat {
		fmt.Fprintf(stderr, "train %d/%d: 1 shard x %d thread(s), %d steps...\n", i+1, *repeat, *threads, *steps)
		r, err := run(1)
		if err != nil {
			return fmt.Errorf("1 shard: %w", err)
		}
		if r.TokensPerSec > one.TokensPerSec {
			one = r
		}
		fmt.Fprintf(stderr, "train %d/%d: %d shards x %d thread(s), %d steps...\n", i+1, *repeat, *shards, *threads, *steps)
		if r, err = run(*shards); err != nil {
			return fmt.Errorf("%d shards: %w", *shards, err)
		}
		if r.TokensPerSec > many.TokensPerSec {
			many = r
		}
	}
	tps := tokbench.Result{Name: fmt.Sprintf("train/shards=%d/threads=%d", *shards, *threads), Unit: "tokens/s", Value: many.TokensPerSec,
		Note: fmt.Sprintf("model %s, global batch %d x %d, %d steps, best of %d; allreduce %.0f%% of the run, %.0f%% waited for (the rest overlapped the backward pass); final loss %.4f vs %.4f on 1 shard",
			cfg, *batch, *nctx, *steps, *repeat, 100*many.AllReduceSeconds/many.Seconds, 100*many.AllReduceWaitSeconds/many.Seconds, many.FinalLoss, one.FinalLoss)}
	if d := math.Abs(many.FinalLoss-one.FinalLoss) / one.FinalLoss; d > 0.01 {
		// Same seed, same global batch: the runs must train the same model.
		// A plugin that ignores the all-reduced gradients shows up here.
		tps.Note += fmt.Sprintf(" — WARNING: the final losses differ by %.1f%%, so the runs did not train the same model", 100*d)
	}
	tps.Compare(fmt.Sprintf("1 shard, %d thread(s)", *threads), one.TokensPerSec, true)
	results = append(results, tps)
	if *tensor {
		tp, err := benchTensorParallel(ctx, connect, host, spec, *batch**nctx, *embd, *threads, *steps, *repeat, stderr)
		if err != nil {
			return err
		}
		results = append(results, tp...)
	}
	return writeBench(stdout, "train", *asJSON, results)
}

// runBenchShards runs n shards of job, each a trainer service of cfg on its
// own connection (named prefix-<i>), and returns rank 0's result.
func runBenchShards(ctx context.Context, connect func(string) (*bus.Bus, error), prefix string, n int, job string, js []byte, cfg trainer.Config) (trainer.Result, error) {
	res := make([]trainer.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		bi, err := connect(fmt.Sprintf("%s-%d", prefix, i))
		if err != nil {
			return trainer.Result{}, err
		}
		defer bi.Close()
		c := cfg
		c.Bus = bi
		s, err := trainer.New(c)
		if err != nil {
			return trainer.Result{}, err
		}
		wg.Go(func() { res[i], errs[i] = s.RunShard(ctx, job, js) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return trainer.Result{}, err
	}
	for _, r := range res {
		if r.Rank == 0 {
			return r, nil
		}
	}
	return res[0], nil
}

// benchTokens stores n pseudo-random tokens with some structure (a
// repeating motif with noise) as a token shard.
func benchTokens(ctx context.Context, b *bus.Bus, vocab, n int) (string, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]uint16, n)
	for i := range ids {
		ids[i] = uint16((i*7 + i/13) % vocab)
		if rng.IntN(10) == 0 {
			ids[i] = uint16(rng.IntN(vocab))
		}
	}
	payload, err := tensor.Encode([]tensor.Tensor{tensor.FromUint16("tokens", []int{n}, ids)}, nil)
	if err != nil {
		return "", err
	}
	info, err := b.PutBytes(ctx, payload)
	return info.Ref, err
}

// allreduceBandwidth times a 2-rank ring allreduce of size bytes over NATS
// (each rank sends size bytes: half in reduce-scatter, half in
// all-gather) and, as partners, two goroutines exchanging size bytes each
// way over one loopback TCP connection, and two NATS connections
// exchanging size bytes each way as raw messages of the ring's piece size
// (no ring, no Arrow: the bus's own floor). All are MB/s sent per rank.
// It returns the allreduce against TCP (the target), the NATS floor
// against TCP, and the allreduce against the NATS floor.
func allreduceBandwidth(ctx context.Context, connect func(string) (*bus.Bus, error), size int) ([]tokbench.Result, error) {
	n := size / 4
	rings := make([]*collective.Ring, 2)
	conns := make([]*bus.Bus, 2)
	for r := range 2 {
		b, err := connect(fmt.Sprintf("allreduce-%d", r))
		if err != nil {
			return nil, err
		}
		defer b.Close()
		conns[r] = b
		if rings[r], err = collective.New(collective.Config{Conn: b.Conn(), Prefix: "bench.allreduce", Rank: r, World: 2, Timeout: time.Minute}); err != nil {
			return nil, err
		}
		defer rings[r].Close()
	}
	data := [][]float32{make([]float32, n), make([]float32, n)}
	best := time.Duration(1 << 62)
	var sent int64
	for seq := range uint64(4) { // the first is a warmup
		errs := make([]error, 2)
		stats := make([]collective.Stats, 2)
		var wg sync.WaitGroup
		start := time.Now()
		for r := range 2 {
			wg.Go(func() { stats[r], errs[r] = rings[r].AllReduce(ctx, seq, data[r]) })
		}
		wg.Wait()
		el := time.Since(start)
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		if seq > 0 && el < best {
			best, sent = el, stats[0].Bytes
		}
	}
	ours := float64(sent) / best.Seconds() / 1e6
	ar := tokbench.Result{Name: fmt.Sprintf("allreduce/ranks=2/size=%dMiB", size>>20), Unit: "MB/s per rank", Value: ours,
		Note: fmt.Sprintf("ring over NATS (client-server-client), Arrow pieces of %d KiB; %.1f ms per allreduce", collective.DefaultChunkBytes>>10, float64(best.Microseconds())/1000)}
	nats, err := natsExchange(ctx, conns, size, collective.DefaultChunkBytes)
	if err != nil {
		return nil, err
	}
	floor := tokbench.Result{Name: fmt.Sprintf("nats-exchange/size=%dMiB", size>>20), Unit: "MB/s per direction", Value: nats,
		Note: fmt.Sprintf("two connections publishing %d KiB messages to each other at once, no ring, no Arrow: what any allreduce over this bus can reach", collective.DefaultChunkBytes>>10)}
	vsFloor := tokbench.Result{Name: fmt.Sprintf("allreduce/ranks=2/size=%dMiB/vs-bus", size>>20), Unit: "MB/s per rank", Value: ours,
		Note: "the ring's share of the bus's own exchange rate"}
	vsFloor.Compare("raw NATS exchange, both directions at once", nats, true)
	tcp, err := loopbackTCP(size)
	if err != nil {
		ar.Missing("loopback TCP", err.Error())
		floor.Missing("loopback TCP", err.Error())
	} else {
		ar.Compare("raw loopback TCP, both directions at once", tcp, true)
		floor.Compare("raw loopback TCP, both directions at once", tcp, true)
	}
	return []tokbench.Result{ar, floor, vsFloor}, nil
}

// natsExchange is the best of 3 exchanges of size bytes each way between
// two connections, as messages of piece bytes, in MB/s per direction.
func natsExchange(ctx context.Context, conns []*bus.Bus, size, piece int) (float64, error) {
	const prefix = "bench.exchange."
	got := make([]chan int, 2)
	for r, b := range conns {
		got[r] = make(chan int, 1024)
		sub, err := b.Conn().Subscribe(prefix+strconv.Itoa(r), func(m *nats.Msg) { got[r] <- len(m.Data) })
		if err != nil {
			return 0, err
		}
		defer sub.Unsubscribe()
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			return 0, err
		}
		if err := b.Conn().Flush(); err != nil {
			return 0, err
		}
	}
	payload := make([]byte, piece)
	best := time.Duration(1 << 62)
	for range 3 {
		errs := make([]error, 4)
		var wg sync.WaitGroup
		start := time.Now()
		for r, b := range conns {
			wg.Go(func() {
				to := prefix + strconv.Itoa(1-r)
				for left := size; left > 0; left -= piece {
					if errs[r] = b.Conn().Publish(to, payload[:min(piece, left)]); errs[r] != nil {
						return
					}
				}
			})
			wg.Go(func() {
				timeout := time.NewTimer(time.Minute)
				defer timeout.Stop()
				for recv := 0; recv < size; {
					select {
					case k := <-got[r]:
						recv += k
					case <-timeout.C:
						errs[2+r] = fmt.Errorf("nats exchange: connection %d received %d of %d bytes in a minute", r, recv, size)
						return
					case <-ctx.Done():
						errs[2+r] = ctx.Err()
						return
					}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return 0, err
		}
		best = min(best, time.Since(start))
	}
	return float64(size) / best.Seconds() / 1e6, nil
}

// loopbackTCP is the best of 3 exchanges of size bytes each way over one
// loopback TCP connection, in MB/s per direction.
func loopbackTCP(size int) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer a.Close()
	bc, ok := <-accepted
	if !ok {
		return 0, errors.New("loopback accept failed")
	}
	defer bc.Close()
	buf := make([]byte, 256<<10)
	exchange := func(c net.Conn) error {
		errc := make(chan error, 1)
		go func() {
			left := size
			for left > 0 {
				k, err := c.Write(buf[:min(len(buf), left)])
				if err != nil {
					errc <- err
					return
				}
				left -= k
			}
			errc <- nil
		}()
		rbuf := make([]byte, 256<<10)
		for got := 0; got < size; {
			k, err := c.Read(rbuf)
			if err != nil {
				return err
			}
			got += k
		}
		return <-errc
	}
	best := time.Duration(1 << 62)
	for range 3 {
		start := time.Now()
		errs := make([]error, 2)
		var wg sync.WaitGroup
		wg.Go(func() { errs[0] = exchange(a) })
		wg.Go(func() { errs[1] = exchange(bc) })
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return 0, err
		}
		best = min(best, time.Since(start))
	}
	return float64(size) / best.Seconds() / 1e6, nil
}
