// Package servebench measures the inference service the way clients see
// it: an embedded NATS server, the inference service and a real plugin,
// driven over the bus by 1, 8 and 32 concurrent clients with continuous
// batching off and on in the same run, and single-stream decoding beside
// PyTorch on the same model. `llmesh bench serve` prints its results.
package servebench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/dataprep/democorpus"
	"github.com/llmesh/llmesh/services/inference"
	"github.com/llmesh/llmesh/services/internal/benchfmt"
	"github.com/llmesh/llmesh/services/internal/bpe"
)

// Options configures a run.
type Options struct {
	// Model shape: the reference config is vocab 4096, context 256,
	// d_model 256, 4 layers, 4 heads.
	Vocab, Ctx, Embd, Layers, Heads int
	Clients                         []int // concurrent clients per measurement
	PromptTokens, MaxTokens         int   // per request
	Requests                        int   // per client count: at least this many requests (4 per client at least)
	Rounds                          int   // alternating off/on rounds per client count; the best counts
	// PluginCommand launches the cpu backend (accel.HostConfig.Command);
	// nil finds llmesh-plugin-<name> in PluginDir (or beside the binary).
	PluginCommand func(name string) (*exec.Cmd, error)
	PluginDir     string
	// Torch is the PyTorch partner script (bench/torch/decode.py) and
	// Python the interpreter that has torch; empty Torch skips it.
	Torch, Python string
	Threads       int // for the PyTorch partner
	// DecodeSteps is inference.Config.DecodeSteps for both stacks (0: the
	// service's default).
	DecodeSteps int
	Log         io.Writer
}

// Reference is the reference configuration.
func Reference() Options {
	return Options{Vocab: 4096, Ctx: 256, Embd: 256, Layers: 4, Heads: 4, Clients: []int{1, 8, 32},
		PromptTokens: 32, MaxTokens: 64, Requests: 8, Rounds: 2, Threads: 2}
}

type measurement struct {
	tokensPerS float64
	p50, p99   time.Duration
	requests   int
	meanBatch  float64
}

// rig is what a serving benchmark needs: a plugin host, the reference
// tokenizer and model (seeded random weights), prompts, and a bus with the
// model registered as "bench". close frees it all.
type rig struct {
	dir                   string
	host                  *accel.Host
	tokJSON, weights, cfg []byte
	vocab                 int
	prompts               []string
	srv                   *bus.Server
	bus                   *bus.Bus
	decodeSteps           int
}

func newRig(ctx context.Context, o Options, logf func(string, ...any)) (r *rig, err error) {
	r = &rig{decodeSteps: o.DecodeSteps}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.dir, err = os.MkdirTemp("", "llmesh-bench-serve-"); err != nil {
		return r, err
	}
	if r.host, err = accel.NewHost(accel.HostConfig{Command: o.PluginCommand, PluginDir: o.PluginDir, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		return r, err
	}
	logf("training a %d-token BPE tokenizer on the demo corpus ...", o.Vocab)
	var texts []string
	for _, d := range democorpus.Generate(1, 400) {
		texts = append(texts, d.Text)
	}
	tok, err := bpe.Train(ctx, texts, bpe.TrainOptions{VocabSize: o.Vocab})
	if err != nil {
		return r, err
	}
	if r.tokJSON, err = tok.MarshalJSON(); err != nil {
		return r, err
	}
	r.vocab = tok.VocabSize()
	r.cfg = fmt.Appendf(nil, `{"vocab_size":%d,"n_ctx":%d,"n_embd":%d,"n_layer":%d,"n_head":%d}`, r.vocab, o.Ctx, o.Embd, o.Layers, o.Heads)
	if r.weights, err = initWeights(ctx, r.host, r.cfg); err != nil {
		return r, err
	}
	r.prompts = makePrompts(tok, texts, o.PromptTokens, 64)
	r.srv, r.bus, err = r.startBus(ctx, "main")
	return r, err
}

// startBus starts another embedded bus, in-process, with the model
// registered.
func (r *rig) startBus(ctx context.Context, name string) (*bus.Server, *bus.Bus, error) {
	quiet := slog.New(slog.DiscardHandler)
	srv, err := bus.StartServer(bus.ServerConfig{DataDir: filepath.Join(r.dir, name), InProcess: true, Logger: quiet})
	if err != nil {
		return nil, nil, err
	}
	b, err := bus.Connect(ctx, bus.Config{Server: srv, Name: "bench-serve", Logger: quiet})
	if err == nil {
		err = b.Setup(ctx)
	}
	var ti, wi bus.ObjectInfo
	if err == nil {
		ti, err = b.PutBytes(ctx, r.tokJSON)
	}
	if err == nil {
		wi, err = b.PutBytes(ctx, r.weights)
	}
	if err == nil {
		err = b.PutModel(ctx, &busv1.ModelRecord{Name: "bench", Checkpoint: wi.Ref, Tokenizer: ti.Ref, ConfigJson: r.cfg})
	}
	if err != nil {
		if b != nil {
			b.Close()
		}
		srv.Shutdown()
		return nil, nil, err
	}
	return srv, b, nil
}

func (r *rig) close() {
	if r.bus != nil {
		r.bus.Close()
	}
	if r.srv != nil {
		r.srv.Shutdown()
	}
	if r.host != nil {
		r.host.Close()
	}
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
}

// stack is an inference service on its own bus.
type stack struct {
	srv  *bus.Server
	bus  *bus.Bus
	svc  *inference.Service
	stop context.CancelFunc
	done chan error
}

func (st *stack) close() error {
	var err error
	if st.stop != nil {
		st.stop()
		err = <-st.done
	}
	if st.bus != nil {
		st.bus.Close()
	}
	if st.srv != nil {
		st.srv.Shutdown()
	}
	return err
}

// startStack starts an inference service with batching on or off on a
// bus of its own.
func (r *rig) startStack(ctx context.Context, batching bool) (*stack, error) {
	st := &stack{}
	var err error
	if st.srv, st.bus, err = r.startBus(ctx, onOff(batching)); err != nil {
		return st, err
	}
	if st.svc, err = inference.New(inference.Config{Bus: st.bus, Host: r.host, Logger: slog.New(slog.DiscardHandler),
		DisableBatching: !batching, QueueDepth: 4096, DecodeSteps: r.decodeSteps}); err != nil {
		return st, err
	}
	sctx, stop := context.WithCancel(ctx)
	st.stop, st.done = stop, make(chan error, 1)
	go func() { st.done <- st.svc.Run(sctx) }()
	return st, waitReady(ctx, st.bus)
}

// Run measures and returns the results. Batching off and on run on two
// stacks side by side, measured alternately for each client count, Rounds
// times; each keeps its best round (the machine is noisy and slow drift
// would otherwise favour whichever ran at a quiet moment).
func Run(ctx context.Context, o Options) (results []benchfmt.Result, err error) {
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	rg, err := newRig(ctx, o, logf)
	if err != nil {
		return nil, err
	}
	defer rg.close()
	prompts := rg.prompts

	stacks := map[bool]*stack{}
	defer func() {
		for _, st := range stacks {
			if cerr := st.close(); err == nil && cerr != nil {
				err = cerr
			}
		}
	}()
	for _, batching := range []bool{false, true} {
		st, err := rg.startStack(ctx, batching)
		stacks[batching] = st
		if err != nil {
			return nil, err
		}
	}
	best := map[bool]map[int]measurement{false: {}, true: {}}
	for _, c := range o.Clients {
		for round := range max(1, o.Rounds) {
			for _, batching := range []bool{false, true} {
				st := stacks[batching]
				before := st.svc.Stats()
				m, err := drive(ctx, st.bus, o, prompts, c)
				if err != nil {
					return nil, err
				}
				after := st.svc.Stats()
				if steps := after.Steps - before.Steps; steps > 0 {
					m.meanBatch = float64(after.Sequences-before.Sequences) / float64(steps)
				}
				logf("round %d batching %-3s clients %2d: %7.1f tokens/s, p50 %v, p99 %v, %d requests, mean batch %.1f", round+1,
					onOff(batching), c, m.tokensPerS, m.p50.Round(time.Millisecond), m.p99.Round(time.Millisecond), m.requests, m.meanBatch)
				if b, ok := best[batching][c]; !ok || m.tokensPerS > b.tokensPerS {
					best[batching][c] = m
				}
			}
		}
	}
	on, off := best[true], best[false]
	rounds := fmt.Sprintf("best of %d alternating rounds", max(1, o.Rounds))
	for _, c := range o.Clients {
		n, f := on[c], off[c]
		note := fmt.Sprintf("%d requests of %d prompt + %d generated tokens, %s; mean batch %.1f (off: %.1f)", n.requests, o.PromptTokens, o.MaxTokens, rounds, n.meanBatch, f.meanBatch)
		if o.DecodeSteps > 0 {
			note += fmt.Sprintf("; decode steps %d", o.DecodeSteps)
		}
		r := benchfmt.Result{Name: fmt.Sprintf("serve/clients=%d/throughput", c), Unit: "tokens/s", Value: n.tokensPerS, Note: note}
		r.Compare("batching off", f.tokensPerS, true)
		results = append(results, r)
		for _, q := range []struct {
			name    string
			on, off time.Duration
		}{{"p50", n.p50, f.p50}, {"p99", n.p99, f.p99}} {
			r := benchfmt.Result{Name: fmt.Sprintf("serve/clients=%d/latency-%s", c, q.name), Unit: "ms", Value: ms(q.on)}
			r.Compare("batching off", ms(q.off), false)
			results = append(results, r)
		}
	}

	// Single stream: one client, batching on (the same path), beside
	// PyTorch's greedy KV-cached decoding of the same model shape.
	if one, ok := on[1]; ok {
		r := benchfmt.Result{Name: "serve/single-stream", Unit: "tokens/s", Value: one.tokensPerS,
			Note: fmt.Sprintf("ours through the service (bus + plugin), %s; PyTorch decodes in-process, %d prompt + %d generated tokens", rounds, o.PromptTokens, o.MaxTokens)}
		if v, note, err := torchDecode(ctx, o, rg.vocab); err != nil {
			r.Missing("pytorch", err.Error())
		} else {
			r.Compare("pytorch", v, true)
			r.AddNote(note)
		}
		results = append(results, r)
	}
	return results, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// initWeights has the plugin initialise a model of cfg with seeded random
// weights and returns them as safetensors.
func initWeights(ctx context.Context, host *accel.Host, cfg []byte) ([]byte, error) {
	p, err := host.Launch(ctx, "cpu")
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if _, err := p.LoadModel(ctx, accel.LoadRequest{ModelID: "init", ConfigJSON: cfg, Seed: 1}); err != nil {
		return nil, err
	}
	w, err := p.SaveWeights(ctx, accel.SaveRequest{ModelID: "init"})
	if err != nil {
		return nil, err
	}
	return w.Safetensors, nil
}

// makePrompts cuts n prompts of about tokens tokens from texts.
func makePrompts(tok *bpe.Tokenizer, texts []string, tokens, n int) []string {
	var out []string
	for _, t := range texts {
		ids := tok.Encode(t)
		if len(ids) < tokens {
			continue
		}
		s, err := tok.Decode(ids[:tokens])
		if err != nil || !utf8Valid(s) || len(tok.Encode(s)) > tokens {
			continue
		}
		out = append(out, s)
		if len(out) == n {
			break
		}
	}
	return out
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func waitReady(ctx context.Context, b *bus.Bus) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := b.Generate(ctx, &busv1.GenerateRequest{Model: "bench", Prompt: "warm", MaxTokens: 2}, func(*busv1.GenerateChunk) error { return nil })
		if err == nil {
			return nil
		}
		if !errors.Is(err, bus.ErrNoResponders) || time.Now().After(deadline) {
			return fmt.Errorf("warm-up request: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// drive runs clients concurrent clients, each sending its share of the
// requests one after another, and measures tokens/s and request latency.
// Every client sends at least 4 requests, so that the batch's filling at
// the start and draining at the end (when batching on runs fewer
// sequences than there are clients) is a small part of the measurement.
func drive(ctx context.Context, b *bus.Bus, o Options, prompts []string, clients int) (measurement, error) {
	per := max(4, (o.Requests+clients-1)/clients)
	var mu sync.Mutex
	var lat []time.Duration
	var tokens int64
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			for i := range per {
				req := &busv1.GenerateRequest{Model: "bench", Prompt: prompts[(c*per+i)%len(prompts)], MaxTokens: int32(o.MaxTokens), IgnoreEos: true}
				t0 := time.Now()
				var n int32
				err := b.Generate(ctx, req, func(ch *busv1.GenerateChunk) error {
					n = ch.CompletionTokens
					return nil
				})
				d := time.Since(t0)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				lat = append(lat, d)
				tokens += int64(n)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	if firstErr != nil {
		return measurement{}, firstErr
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	return measurement{tokensPerS: float64(tokens) / wall.Seconds(), p50: pct(0.50), p99: pct(0.99), requests: len(lat)}, nil
}

// torchDecode runs the PyTorch partner and returns its tokens/s.
func torchDecode(ctx context.Context, o Options, vocab int) (float64, string, error) {
	if o.Torch == "" {
		return 0, "", errors.New("no PyTorch script given")
	}
	if _, err := os.Stat(o.Torch); err != nil {
		return 0, "", fmt.Errorf("PyTorch script %s not found", filepath.Base(o.Torch))
	}
	py := o.Python
	if py == "" {
		py = "python3"
	}
	cmd := exec.CommandContext(ctx, py, o.Torch, fmt.Sprintf("--vocab=%d", vocab), fmt.Sprintf("--ctx=%d", o.Ctx),
		fmt.Sprintf("--embd=%d", o.Embd), fmt.Sprintf("--layers=%d", o.Layers), fmt.Sprintf("--heads=%d", o.Heads),
		fmt.Sprintf("--prompt=%d", o.PromptTokens), fmt.Sprintf("--tokens=%d", o.MaxTokens), fmt.Sprintf("--threads=%d", o.Threads), "--repeat=3")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			msg := strings.TrimSpace(string(ee.Stderr))
			if strings.Contains(msg, "No module named 'torch'") {
				return 0, "", errors.New("torch is not installed (apt-get install python3-torch; run with /usr/bin/python3)")
			}
			return 0, "", fmt.Errorf("PyTorch partner failed: %s", lastLine(msg))
		}
		return 0, "", fmt.Errorf("PyTorch partner: %v", err)
	}
	var r struct {
		TokensPerS float64 `json:"tokens_per_s"`
		Best       struct {
			Threads     int `json:"set_num_threads"`
			BlasThreads int `json:"blas_threads"`
		} `json:"best"`
		Torch string `json:"torch"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(lastLine(string(out))), &r); err != nil || r.TokensPerS <= 0 {
		return 0, "", fmt.Errorf("PyTorch partner printed %q", lastLine(string(out)))
	}
	return r.TokensPerS, fmt.Sprintf("PyTorch at its fastest thread setting (set_num_threads %d, BLAS threads %d)", r.Best.Threads, r.Best.BlasThreads), nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
