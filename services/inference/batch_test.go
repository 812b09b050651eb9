package inference

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/engine"
	"github.com/llmesh/llmesh/accel/transformer"
	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// longConfig is a model with room for long generations.
const longConfig = `{"vocab_size":%d,"n_ctx":512,"n_embd":32,"n_layer":2,"n_head":2}`

// randomModel registers name as an untrained model of config (a format
// taking the vocabulary size), initialised from seed.
func (e *env) randomModel(t *testing.T, name, config string, seed uint64) int {
	t.Helper()
	cfg := fmt.Appendf(nil, config, e.tok.VocabSize())
	eng := engine.New("cpu", transformer.PortableKernels())
	if _, err := eng.LoadModel(t.Context(), accel.LoadRequest{ModelID: "m", ConfigJSON: cfg, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	res, err := eng.SaveWeights(t.Context(), accel.SaveRequest{ModelID: "m"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.b.PutBytes(t.Context(), res.Safetensors)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.b.PutModel(t.Context(), &busv1.ModelRecord{Name: name, Checkpoint: info.Ref, Tokenizer: e.tokRef, ConfigJson: cfg}); err != nil {
		t.Fatal(err)
	}
	return len(res.Safetensors)
}

var batchPrompts = []string{"the cat", "the dog sat on the", "a", "猫坐在", "café crème. the cat sat on the mat.", "", "the log", "a cat and a dog"}

// Batched generation gives the tokens one-at-a-time generation gives, and
// KV-cached decoding the tokens full recomputation gives.
func TestBatchedMatchesSequential(t *testing.T) {
	e := newEnv(t)
	ckpt := e.checkpoint(t, 1, 60)
	e.register(t, "tiny", ckpt)
	reqs := make([]*busv1.GenerateRequest, len(batchPrompts))
	for i, p := range batchPrompts {
		reqs[i] = &busv1.GenerateRequest{Model: "tiny", Prompt: p, MaxTokens: int32(12 + 3*i), IgnoreEos: i%2 == 0}
	}
	tokens := func(e *env, req *busv1.GenerateRequest) string {
		chunks, err := e.generate(t, req)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int32 // chunks carry one token or several (multi-step)
		for _, c := range chunks {
			ids = append(ids, c.TokenIds...)
		}
		if n := chunks[len(chunks)-1].CompletionTokens; int(n) != len(ids) {
			t.Errorf("prompt %q: %d token ids in the chunks for %d completion tokens", req.Prompt, len(ids), n)
		}
		return fmt.Sprintf("%v %s %d", ids, chunks[len(chunks)-1].FinishReason, chunks[len(chunks)-1].CompletionTokens)
	}
	want := make([]string, len(reqs))
	alone := e.s.Stats()
	for i, r := range reqs {
		want[i] = tokens(e, r)
	}
	// One at a time, greedy and with nothing waiting, decoding is
	// multi-step: several tokens per DecodeStep call.
	if st := e.s.Stats(); st.Steps-alone.Steps >= st.Tokens-alone.Tokens {
		t.Errorf("%d tokens in %d decode calls alone: multi-step decoding was not used", st.Tokens-alone.Tokens, st.Steps-alone.Steps)
	}
	before := e.s.Stats()
	got := make([]string, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() { got[i] = tokens(e, r) })
	}
	wg.Wait()
	for i := range reqs {
		if got[i] != want[i] {
			t.Errorf("prompt %q: batched %s, alone %s", batchPrompts[i], got[i], want[i])
		}
	}
	after := e.s.Stats()
	steps, seqs := after.Steps-before.Steps, after.Sequences-before.Sequences
	if seqs <= steps {
		t.Errorf("%d sequences in %d steps: the concurrent requests were never batched", seqs, steps)
	}
	t.Logf("concurrent: mean batch %.2f over %d steps", float64(seqs)/float64(steps), steps)

	// The same requests without the KV cache, one at a time.
	plain := newEnvConfig(t, accel.HostConfig{}, func(c *Config) { c.DisableKVCache, c.DisableBatching = true, true })
	plain.register(t, "tiny", plain.checkpointLike(t, e, ckpt))
	for i, r := range reqs {
		if g := tokens(plain, r); g != want[i] {
			t.Errorf("prompt %q: recomputed %s, cached %s", batchPrompts[i], g, want[i])
		}
	}
}

// checkpointLike copies checkpoint ref from env src into e's object store.
func (e *env) checkpointLike(t *testing.T, src *env, ref string) string {
	t.Helper()
	data, err := src.b.GetObject(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	e.tokRef = src.tokRef
	if _, err := e.b.PutBytes(t.Context(), mustTokenizer(t, src)); err != nil {
		t.Fatal(err)
	}
	info, err := e.b.PutBytes(t.Context(), data)
	if err != nil {
		t.Fatal(err)
	}
	e.tok, e.config = src.tok, src.config
	return info.Ref
}

func mustTokenizer(t *testing.T, e *env) []byte {
	t.Helper()
	js, err := e.b.GetObject(t.Context(), e.tokRef)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestStopSequences(t *testing.T) {
	e := newEnv(t)
	e.register(t, "tiny", e.checkpoint(t, 1, 60))
	base := e.mustGenerate(t, &busv1.GenerateRequest{Model: "tiny", Prompt: "the", MaxTokens: 24, IgnoreEos: true})
	if len(base.text) < 6 {
		t.Fatalf("generation %q too short to test stops", base.text)
	}
	stop := base.text[3:5]
	want := base.text[:strings.Index(base.text, stop)]
	g := e.mustGenerate(t, &busv1.GenerateRequest{Model: "tiny", Prompt: "the", MaxTokens: 24, IgnoreEos: true, Stop: []string{"never there", stop}})
	if g.text != want || g.last.FinishReason != "stop" {
		t.Errorf("stop %q: %q finish %q, want %q finish stop", stop, g.text, g.last.FinishReason, want)
	}
	if g.last.CompletionTokens >= base.last.CompletionTokens {
		t.Errorf("stopped after %d tokens, no fewer than the %d without a stop", g.last.CompletionTokens, base.last.CompletionTokens)
	}
}

// A full queue refuses requests with resource_exhausted and a retry
// hint; everything it admits completes.
func TestQueueFull(t *testing.T) {
	e := newEnvConfig(t, accel.HostConfig{}, func(c *Config) { c.MaxBatch, c.QueueDepth = 1, 2 })
	e.randomModel(t, "long", longConfig, 3)
	e.mustGenerate(t, &busv1.GenerateRequest{Model: "long", Prompt: "warm", MaxTokens: 1})
	var ok, full atomic.Int64
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			_, err := e.generate(t, &busv1.GenerateRequest{Model: "long", Prompt: "the cat", MaxTokens: 200, IgnoreEos: true})
			var ge *bus.GenerateError
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &ge) && ge.Code == "resource_exhausted":
				full.Add(1)
				if ge.RetryAfter <= 0 || !strings.Contains(ge.Message, `model "long" has 2 requests waiting (the limit)`) {
					t.Errorf("resource_exhausted without a retry hint or a clear message: %+v", ge)
				}
			default:
				t.Errorf("generate: %v", err)
			}
		})
	}
	wg.Wait()
	if full.Load() == 0 || ok.Load() < 3 {
		t.Errorf("%d completed, %d refused; want at least 3 completed and some refused", ok.Load(), full.Load())
	}
}

// A client that goes away stops its generation.
func TestCancel(t *testing.T) {
	e := newEnv(t)
	e.randomModel(t, "long", longConfig, 3)
	errStop := errors.New("client stops")
	n := 0
	err := e.b.Generate(t.Context(), &busv1.GenerateRequest{Model: "long", Prompt: "the", MaxTokens: 500, IgnoreEos: true}, func(*busv1.GenerateChunk) error {
		if n++; n == 2 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("generate: %v", err)
	}
	bustest.WaitFor(t, 20*time.Second, func() error {
		if st := e.s.Stats(); st.Cancelled != 1 || e.status(t, "long").InFlight != 0 {
			return fmt.Errorf("stats %+v, in flight %d", st, e.status(t, "long").InFlight)
		}
		return nil
	})
	if st := e.s.Stats(); st.Tokens >= 500 {
		t.Errorf("%d tokens generated: the cancelled generation ran to its end", st.Tokens)
	}
}

// A request whose deadline passes while it waits never runs.
func TestDeadlineWhileQueued(t *testing.T) {
	e := newEnvConfig(t, accel.HostConfig{}, func(c *Config) { c.MaxBatch = 1 })
	e.randomModel(t, "long", longConfig, 3)
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		once := sync.OnceFunc(func() { close(started) })
		// Sampled, so one token per decode call: it runs far longer than
		// the queued request's deadline.
		done <- e.b.Generate(t.Context(), &busv1.GenerateRequest{Model: "long", Prompt: "the", MaxTokens: 480, IgnoreEos: true, Temperature: 1, Seed: 1}, func(*busv1.GenerateChunk) error {
			once()
			return nil
		})
	}()
	<-started
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := e.b.Generate(ctx, &busv1.GenerateRequest{Model: "long", Prompt: "x", MaxTokens: 4}, func(*busv1.GenerateChunk) error { return nil })
	// The client's deadline or the service's copy of it, whichever fires first.
	var ge *bus.GenerateError
	if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ge) && ge.Code == "deadline_exceeded") {
		t.Errorf("queued request: %v, want its deadline exceeded", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	bustest.WaitFor(t, 20*time.Second, func() error {
		if st := e.s.Stats(); st.NeverRan != 1 {
			return fmt.Errorf("stats %+v, want one request that never ran", st)
		}
		return nil
	})
}

// Models load on their first request (a burst waits, none fails), unload
// after the keep-alive, and share a memory budget, least recently used
// out first.
func TestServerless(t *testing.T) {
	var size int
	e := newEnvConfig(t, accel.HostConfig{}, func(c *Config) { c.KeepAlive = 300 * time.Millisecond })
	size = e.randomModel(t, "a", longConfig, 1)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := e.generate(t, &busv1.GenerateRequest{Model: "a", Prompt: "the", MaxTokens: 4, Seed: uint64(i), Temperature: 1}); err != nil {
				t.Errorf("request during the first load: %v", err)
			}
		})
	}
	wg.Wait()
	if got := e.s.Loaded(); got["a"] != int64(size) {
		t.Fatalf("loaded %v, want a of %d bytes", got, size)
	}
	bustest.WaitFor(t, 20*time.Second, func() error {
		if got := e.s.Loaded(); len(got) != 0 {
			return fmt.Errorf("loaded %v after the keep-alive", got)
		}
		return nil
	})
	e.mustGenerate(t, &busv1.GenerateRequest{Model: "a", Prompt: "the", MaxTokens: 4})

	// Room for one model: each load evicts the other.
	m := newEnvConfig(t, accel.HostConfig{}, func(c *Config) { c.MemoryBudget = int64(size) * 3 / 2 })
	m.randomModel(t, "a", longConfig, 1)
	m.randomModel(t, "b", longConfig, 2)
	for _, name := range []string{"a", "b", "a"} {
		m.mustGenerate(t, &busv1.GenerateRequest{Model: name, Prompt: "the", MaxTokens: 4})
		if got := m.s.Loaded(); len(got) != 1 || got[name] == 0 {
			t.Errorf("after a request for %s: loaded %v, want only %s", name, got, name)
		}
	}
	// A model larger than the whole budget is refused clearly.
	small := newEnvConfig(t, accel.HostConfig{}, func(c *Config) { c.MemoryBudget = int64(size) / 2 })
	small.randomModel(t, "a", longConfig, 1)
	_, err := small.generate(t, &busv1.GenerateRequest{Model: "a", Prompt: "the", MaxTokens: 4})
	var ge *bus.GenerateError
	if !errors.As(err, &ge) || ge.Code != "resource_exhausted" || !strings.Contains(ge.Message, "more than the whole budget") {
		t.Errorf("model over the budget: %v", err)
	}
}

// At saturation the service returns nothing but results and deliberate
// resource_exhausted refusals, and its heap stays flat. LLMESH_SOAK sets
// the duration (default 4s).
func TestSoak(t *testing.T) {
	d := 4 * time.Second
	if v := os.Getenv("LLMESH_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("LLMESH_SOAK=%q: %v", v, err)
		}
	}
	e := newEnvConfig(t, accel.HostConfig{}, func(c *Config) { c.MaxBatch, c.QueueDepth = 8, 8 })
	e.register(t, "tiny", e.checkpoint(t, 1, 0))
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var ok, refused atomic.Int64
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	// The plugin's resident memory (its KV cache lives there).
	rss := func() uint64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.status(t, "tiny").Pid))
		if err != nil {
			return 0
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				var kb uint64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
				return kb << 10
			}
		}
		return 0
	}
	// Samples at each quarter of the run; the first is the baseline.
	var mid, midRSS atomic.Uint64
	var samples []string
	var smu sync.Mutex
	go func() {
		for q := 1; q < 4; q++ {
			select {
			case <-time.After(d / 4):
				h, r := heap(), rss()
				if q == 1 {
					mid.Store(h)
					midRSS.Store(r)
				}
				smu.Lock()
				samples = append(samples, fmt.Sprintf("%d/4: heap %d, plugin RSS %d", q, h, r))
				smu.Unlock()
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for c := range 24 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				req := &busv1.GenerateRequest{Model: "tiny", Prompt: batchPrompts[(c+i)%len(batchPrompts)], MaxTokens: int32(4 + i%20), Temperature: 1, TopP: 0.9, Seed: uint64(i)}
				_, err := e.generate(t, req)
				var ge *bus.GenerateError
				switch {
				case err == nil:
					ok.Add(1)
				case errors.As(err, &ge) && ge.Code == "resource_exhausted":
					refused.Add(1)
					time.Sleep(ge.RetryAfter / 50) // a polite client waits; this one only briefly, to keep the pressure on
				case ctx.Err() != nil:
				default:
					t.Errorf("soak: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	end, endRSS := heap(), rss()
	smu.Lock()
	t.Logf("soak %v: %d completed, %d refused (429); %s; end: heap %d, plugin RSS %d; stats %+v",
		d, ok.Load(), refused.Load(), strings.Join(samples, "; "), end, endRSS, e.s.Stats())
	smu.Unlock()
	if m := midRSS.Load(); m > 0 && endRSS > m+64<<20 {
		t.Errorf("the plugin's RSS grew from %d to %d bytes under a steady load", m, endRSS)
	}
	if ok.Load() == 0 {
		t.Errorf("nothing completed")
	}
	if m := mid.Load(); m > 0 && end > m+32<<20 {
		t.Errorf("heap grew from %d to %d bytes under a steady load", m, end)
	}
}

// The request's exit threshold reaches the backend, and the layers early
// exit saved come back in the chunks.
func TestEarlyExitLayersSaved(t *testing.T) {
	e := newEnv(t)
	e.randomModel(t, "exit", `{"vocab_size":%d,"n_ctx":64,"n_embd":16,"n_layer":3,"n_head":2,"exit_layers":[1,2]}`, 5)
	req := &busv1.GenerateRequest{Model: "exit", Prompt: "the cat", MaxTokens: 10, IgnoreEos: true}
	if g := e.mustGenerate(t, req); g.last.LayersSaved != 0 {
		t.Errorf("without a threshold: %d layers saved", g.last.LayersSaved)
	}
	// A threshold every head passes: each token exits after layer 1 and
	// saves 2 of the 3 layers.
	req.ExitThreshold = 1e-6
	g := e.mustGenerate(t, req)
	if want := int64(2 * g.last.CompletionTokens); g.last.CompletionTokens != 10 || g.last.LayersSaved != want {
		t.Errorf("threshold 1e-6: %d tokens, %d layers saved; want 10 tokens and %d", g.last.CompletionTokens, g.last.LayersSaved, want)
	}
}
