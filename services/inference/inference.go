package inference

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/sampling"
	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// Limits on requests.
const (
	DefaultMaxTokens = 64
	MaxTokens        = 2048
	MaxPromptBytes   = 64 << 10
	MaxRequestBytes  = 256 << 10
)

// EndOfText ends generation.
const EndOfText = "<|endoftext|>"

// Launcher starts accelerator plugins; *accel.Host is one.
type Launcher interface {
	Launch(ctx context.Context, backend string) (*accel.Plugin, error)
}

// DefaultRetryWindow is how long a generation whose plugin died keeps
// reloading its model and retrying before it fails with a retryable
// (unavailable) error.
const DefaultRetryWindow = 750 * time.Millisecond

// Config configures the service.
type Config struct {
	Bus  *bus.Bus
	Host Launcher
	// Backend is where a model is loaded until it is swapped; default "cpu".
	Backend string
	Logger  *slog.Logger
	// Concurrency bounds the requests this instance accepts at once,
	// queued or running, over all models; beyond it requests fail with
	// ErrQueueFull. Default 1024.
	Concurrency int
	// MaxBatch bounds the sequences a model decodes together in one step
	// (continuous batching: new requests join at the next step, finished
	// ones leave). Default 32.
	MaxBatch int
	// DisableBatching decodes one request at a time per model (MaxBatch
	// 1), the baseline `llmesh bench serve` compares batching with.
	DisableBatching bool
	// StepTokens is the per-step token budget: prompts of new requests are
	// prefilled, in chunks, within what the step's decodes leave of it.
	// Default 512.
	StepTokens int
	// DecodeSteps is how many tokens one DecodeStep may decode for greedy
	// sequences while no request waits (multi-step decoding: one plugin
	// round trip for several tokens; a waiting request joins at the next
	// call). 0 means DefaultDecodeSteps; 1 turns it off.
	DecodeSteps int
	// QueueDepth bounds the requests waiting per model to join its batch;
	// beyond it requests fail with ErrQueueFull. Default 256.
	QueueDepth int
	// DisableKVCache sends every sequence's whole window each step instead
	// of appending to the backend's KV cache (for tests and benchmarks;
	// backends without a cache get this anyway).
	DisableKVCache bool
	// KeepAlive unloads a model after this long without requests; the
	// next request loads it again. 0 means DefaultKeepAlive, negative
	// never.
	KeepAlive time.Duration
	// MemoryBudget bounds the bytes of model weights loaded at once in
	// this instance; loading past it unloads idle models, least recently
	// used first. 0 means no bound.
	MemoryBudget int64
	// Instance names this instance in swap and status replies; default
	// host-pid-random.
	Instance string
	// RetryWindow bounds how long a generation retries after its plugin
	// died (each death starts a new window); 0 means DefaultRetryWindow.
	RetryWindow time.Duration
	// Filter checks every prompt and the streamed output; nil means no
	// filter. Only the text it releases reaches the client, and a chunk
	// carries no token ids when a filter is set (they would show what the
	// filter held back or redacted).
	Filter Filter
}

// Service serves generation requests.
type Service struct {
	bus         *bus.Bus
	host        Launcher
	backend     string
	instance    string
	retryWindow time.Duration
	filter      Filter
	log         *slog.Logger
	sem         chan struct{}
	bg          sync.WaitGroup // drains of swapped-out plugins, batch loops
	runCtx      context.Context

	maxBatch, stepTokens, queueDepth int
	decodeSteps                      int
	noCache                          bool
	keepAlive                        time.Duration

	cancelMu sync.Mutex
	cancels  map[string]context.CancelFunc // by stream subject

	stats stats

	memMu   sync.Mutex
	budget  int64
	memUsed int64
	mem     map[*route]int64

	launchMu sync.Mutex // serializes launches of a backend's first plugin

	mu      sync.Mutex
	plugins map[*plugin]struct{}
	newest  map[string]*plugin // backend -> plugin new models go to
	models  map[string]*served
	nextID  int
	closed  bool
}

// New validates cfg and builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Bus == nil || cfg.Host == nil {
		return nil, errors.New("inference: config needs a bus and a plugin host")
	}
	if cfg.Backend == "" {
		cfg.Backend = "cpu"
	}
	if err := validBackend(cfg.Backend); err != nil {
		return nil, fmt.Errorf("inference: config: %w", err)
	}
	if cfg.Concurrency < 0 || cfg.MaxBatch < 0 || cfg.StepTokens < 0 || cfg.QueueDepth < 0 || cfg.MemoryBudget < 0 {
		return nil, fmt.Errorf("inference: config: negative limit (concurrency %d, max batch %d, step tokens %d, queue depth %d, memory budget %d)",
			cfg.Concurrency, cfg.MaxBatch, cfg.StepTokens, cfg.QueueDepth, cfg.MemoryBudget)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 1024
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 32
	}
	if cfg.DisableBatching {
		cfg.MaxBatch = 1
	}
	switch {
	case cfg.DecodeSteps < 0 || cfg.DecodeSteps > accel.MaxDecodeSteps:
		return nil, fmt.Errorf("inference: decode steps %d out of range [0, %d]", cfg.DecodeSteps, accel.MaxDecodeSteps)
	case cfg.DecodeSteps == 0:
		cfg.DecodeSteps = DefaultDecodeSteps
	}
	if cfg.StepTokens == 0 {
		cfg.StepTokens = 512
	}
	if cfg.QueueDepth == 0 {
		cfg.QueueDepth = 256
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.RetryWindow < 0 {
		return nil, fmt.Errorf("inference: config: retry window %v is negative", cfg.RetryWindow)
	}
	if cfg.RetryWindow == 0 {
		cfg.RetryWindow = DefaultRetryWindow
	}
	if cfg.Instance == "" {
		cfg.Instance = defaultInstance()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{
		bus: cfg.Bus, host: cfg.Host, backend: cfg.Backend, instance: cfg.Instance, retryWindow: cfg.RetryWindow, filter: cfg.Filter,
		log: log.With("service", "inference", "instance", cfg.Instance),
		sem: make(chan struct{}, cfg.Concurrency), models: map[string]*served{},
		plugins: map[*plugin]struct{}{}, newest: map[string]*plugin{}, runCtx: context.Background(),
		maxBatch: cfg.MaxBatch, stepTokens: cfg.StepTokens, decodeSteps: cfg.DecodeSteps, queueDepth: cfg.QueueDepth, noCache: cfg.DisableKVCache,
		keepAlive: cfg.KeepAlive, cancels: map[string]context.CancelFunc{}, budget: cfg.MemoryBudget, mem: map[*route]int64{},
	}, nil
}

// Instance is the name this instance answers swap and status requests with.
func (s *Service) Instance() string { return s.instance }

// Run serves requests until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	nc := s.bus.Conn()
	s.runCtx = ctx
	cancelSub, err := nc.Subscribe(bus.InferenceCancelSubject, s.serveCancel)
	if err != nil {
		return fmt.Errorf("inference: subscribe: %w", err)
	}
	defer cancelSub.Unsubscribe()
	sub, err := nc.QueueSubscribe("infer.>", "inference", func(m *nats.Msg) {
		if ctx.Err() != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case s.sem <- struct{}{}:
				defer func() { <-s.sem }()
				s.serve(ctx, m)
			default:
				s.refuse(m, fmt.Errorf("%w: the instance serves its limit of %d requests; retry later", ErrQueueFull, cap(s.sem)))
			}
		}()
	})
	if err != nil {
		return fmt.Errorf("inference: subscribe: %w", err)
	}
	// Swap and status reach every instance: each holds its own plugins.
	swapSub, err := nc.Subscribe(bus.InferenceSwapSubject, func(m *nats.Msg) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveSwap(ctx, m)
		}()
	})
	if err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("inference: subscribe: %w", err)
	}
	statusSub, err := nc.Subscribe(bus.InferenceStatusSubject, s.serveStatus)
	if err != nil {
		_ = sub.Unsubscribe()
		_ = swapSub.Unsubscribe()
		return fmt.Errorf("inference: subscribe: %w", err)
	}
	<-ctx.Done()
	_ = statusSub.Unsubscribe()
	_ = swapSub.Drain()
	_ = sub.Drain()
	wg.Wait()
	s.bg.Wait()
	s.stopKeepAlives()
	s.mu.Lock()
	s.closed = true
	plugins := s.plugins
	s.plugins, s.newest = map[*plugin]struct{}{}, map[string]*plugin{}
	s.mu.Unlock()
	for pl := range plugins {
		pl.p.Close()
	}
	return nil
}

// refuse answers m with err without running it.
func (s *Service) refuse(m *nats.Msg, err error) {
	out := m.Reply
	var req busv1.GenerateRequest
	if len(m.Data) <= MaxRequestBytes && proto.Unmarshal(m.Data, &req) == nil && req.StreamSubject != "" {
		out = req.StreamSubject
	}
	if out != "" {
		s.send(out, errorChunk(err))
	}
}

// errorChunk is the last chunk of a failed generation.
func errorChunk(err error) *busv1.GenerateChunk {
	c := &busv1.GenerateChunk{Done: true, FinishReason: "error", ErrorCode: errorCode(err), Error: err.Error()}
	if c.ErrorCode == "resource_exhausted" {
		c.RetryAfterMs = 1000
	}
	return c
}

func (s *Service) serveCancel(m *nats.Msg) {
	var c busv1.GenerateCancel
	if proto.Unmarshal(m.Data, &c) != nil || c.Subject == "" {
		return
	}
	s.cancelMu.Lock()
	cancel := s.cancels[c.Subject]
	s.cancelMu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (s *Service) serve(ctx context.Context, m *nats.Msg) {
	var req busv1.GenerateRequest
	out := m.Reply
	fail := func(code, format string, args ...any) {
		s.send(out, &busv1.GenerateChunk{Done: true, FinishReason: "error", ErrorCode: code, Error: fmt.Sprintf(format, args...)})
	}
	if len(m.Data) > MaxRequestBytes {
		fail("invalid_argument", "generate request of %d bytes exceeds %d", len(m.Data), MaxRequestBytes)
		return
	}
	if err := proto.Unmarshal(m.Data, &req); err != nil {
		fail("invalid_argument", "malformed generate request: %v", err)
		return
	}
	if req.StreamSubject != "" {
		out = req.StreamSubject
	}
	if out == "" {
		s.log.Warn("generate request without a reply subject", "subject", m.Subject)
		return
	}
	if err := validate(&req); err != nil {
		fail("invalid_argument", "%v", err)
		return
	}
	if want := bus.InferSubject(req.Model); m.Subject != want {
		fail("invalid_argument", "request for model %q arrived on %s, want %s", req.Model, m.Subject, want)
		return
	}
	// The request ends at its deadline or when its client cancels it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if req.DeadlineUnixMs > 0 {
		deadline := time.UnixMilli(req.DeadlineUnixMs)
		if !time.Now().Before(deadline) {
			fail("deadline_exceeded", "model %q: the request's deadline passed before it ran", req.Model)
			return
		}
		var dcancel context.CancelFunc
		ctx, dcancel = context.WithDeadline(ctx, deadline)
		defer dcancel()
	}
	s.cancelMu.Lock()
	s.cancels[out] = cancel
	s.cancelMu.Unlock()
	defer func() {
		s.cancelMu.Lock()
		delete(s.cancels, out)
		s.cancelMu.Unlock()
	}()
	if err := s.generate(ctx, &req, func(c *busv1.GenerateChunk) { s.send(out, c) }); err != nil {
		if errors.Is(err, context.Canceled) {
			s.log.Debug("generate cancelled", "model", req.Model)
			return // nobody listens any more
		}
		s.log.Warn("generate failed", "model", req.Model, "err", err)
		s.send(out, errorChunk(err))
	}
}

// maxChunkTokens bounds the tokens one stream chunk carries.
const maxChunkTokens = 256

// Limits on stop sequences.
const (
	MaxStops     = 8
	MaxStopBytes = 64
)

// errInvalidRequest marks a request the service refuses (invalid_argument).
var errInvalidRequest = errors.New("invalid request")

func validate(req *busv1.GenerateRequest) error {
	if err := bus.ValidName(req.Model); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if len(req.Prompt) > MaxPromptBytes {
		return fmt.Errorf("prompt of %d bytes exceeds %d", len(req.Prompt), MaxPromptBytes)
	}
	if !utf8.ValidString(req.Prompt) {
		return errors.New("prompt is not valid UTF-8")
	}
	if req.MaxTokens < 0 || req.MaxTokens > MaxTokens {
		return fmt.Errorf("max_tokens %d out of range [0, %d]", req.MaxTokens, MaxTokens)
	}
	if req.MaxTokens == 0 {
		req.MaxTokens = DefaultMaxTokens
	}
	if err := samplingParams(req).Validate(); err != nil {
		return err
	}
	if t := req.ExitThreshold; t != t || t < 0 || t > 1 {
		return fmt.Errorf("exit_threshold %g out of range [0, 1]", t)
	}
	if len(req.Stop) > MaxStops {
		return fmt.Errorf("%d stop sequences exceed the limit of %d", len(req.Stop), MaxStops)
	}
	for i, st := range req.Stop {
		if st == "" || len(st) > MaxStopBytes {
			return fmt.Errorf("stop sequence %d has %d bytes, want 1 to %d", i, len(st), MaxStopBytes)
		}
	}
	return nil
}

func samplingParams(req *busv1.GenerateRequest) sampling.Params {
	return sampling.Params{Temperature: req.Temperature, TopK: int(req.TopK), TopP: req.TopP, RepetitionPenalty: req.RepetitionPenalty, Seed: req.Seed}
}

func (s *Service) send(subject string, c *busv1.GenerateChunk) {
	b, err := proto.Marshal(c)
	if err == nil {
		err = s.bus.Conn().Publish(subject, b)
	}
	if err != nil {
		s.log.Warn("send chunk", "subject", subject, "err", err)
	}
}

// generate runs one request, calling emit for each chunk of text and once
// more with Done set. It runs on the plugin the model is routed to when it
// starts, even if the model is swapped meanwhile: the route's continuous
// batch decodes it together with the model's other requests.
func (s *Service) generate(ctx context.Context, req *busv1.GenerateRequest, emit func(*busv1.GenerateChunk)) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	rec, err := s.bus.GetModel(ctx, req.Model)
	if err != nil {
		return err
	}
	promptText, out, err := s.openFilter(ctx, req.Model, req.Prompt)
	if err != nil {
		return err
	}
	r, err := s.acquire(ctx, req.Model)
	if err != nil {
		return err
	}
	defer r.release()
	lm, err := s.load(ctx, r, rec, nil)
	if err != nil && retryable(err) {
		lm, err = s.recover(ctx, r, nil, err)
	}
	if err != nil {
		return err
	}
	prompt := lm.tok.Encode(promptText)
	if len(prompt) > lm.cfg.NCtx {
		return fmt.Errorf("%w: the prompt of %d tokens exceeds model %q's context of %d tokens", errInvalidRequest, len(prompt), req.Model, lm.cfg.NCtx)
	}
	ids := make([]int32, 0, len(prompt)+int(req.MaxTokens)+1)
	if len(prompt) == 0 {
		ids = append(ids, int32(lm.eot))
	}
	for _, id := range prompt {
		ids = append(ids, int32(id))
	}
	nPrompt := int32(len(prompt))
	qctx, stop := context.WithCancel(ctx)
	defer stop() // a stop sequence, an error or a client gone: the batch drops the sequence
	q := newSequence(qctx, ids, int(req.MaxTokens), req.ExitThreshold, samplingParams(req))
	q.ignoreEOS = req.IgnoreEos
	if err := s.submit(r, q); err != nil {
		return err
	}

	var gen []uint32
	var saved int64
	sent := 0
	finish := ""
	var seq int64
	cut := sampling.NewStopCutter(req.Stop)
	chunk := func(text string, toks []int32) *busv1.GenerateChunk {
		seq++
		c := &busv1.GenerateChunk{Text: text, Seq: seq, PromptTokens: nPrompt, CompletionTokens: int32(len(gen)), LayersSaved: saved}
		if out.stream == nil && len(toks) > 0 {
			c.TokenIds = toks
		}
		return c
	}
	var last *event     // an end or error event read while draining tokens
	var pending []int32 // tokens not yet in a chunk (their text ends mid-character)
	for finish == "" {
		var ev event
		if last != nil {
			ev, last = *last, nil
		} else {
			select {
			case ev = <-q.events:
			case <-ctx.Done():
				return fmt.Errorf("model %q: %w", req.Model, ctx.Err())
			}
		}
		if ev.err != nil {
			return ev.err
		}
		saved = ev.saved
		if ev.finish != "" {
			finish = ev.finish
			break
		}
		// The tokens already waiting (a multi-step decode delivers
		// several at once) go out in the same chunk: one detokenization
		// and one bus message for them all.
		toks := []int32{ev.tok}
	drain:
		for len(toks) < maxChunkTokens {
			select {
			case more := <-q.events:
				if more.err != nil || more.finish != "" {
					last = &more
					break drain
				}
				saved = more.saved
				toks = append(toks, more.tok)
			default:
				break drain
			}
		}
		for _, t := range toks {
			gen = append(gen, uint32(t))
		}
		pending = append(pending, toks...)
		text, err := lm.tok.Decode(gen)
		if err != nil {
			return fmt.Errorf("model %q: decode tokens: %w", req.Model, err)
		}
		// Send only whole characters: a byte-level token may end mid-rune.
		complete := validPrefix(text)
		if complete <= sent {
			continue
		}
		piece, hit := cut.Push(replaceInvalid(text[sent:complete]))
		sent = complete
		if hit {
			finish = "stop"
			stop()
		}
		release, ferr := out.push(piece)
		if release != "" || (out.stream == nil && !hit) {
			emit(chunk(release, pending))
			pending = nil
		}
		if ferr != nil {
			return ferr
		}
	}
	tail := ""
	if text, _ := lm.tok.Decode(gen); len(text) > sent && !cut.Hit() {
		tail = replaceInvalid(text[sent:])
	}
	if !cut.Hit() {
		var hit bool
		if tail, hit = cut.Push(tail); !hit {
			tail += cut.Flush()
		} else {
			finish = "stop"
		}
	}
	if out.stream != nil {
		// The last piece goes through the filter too, then what it held.
		release, err := out.push(tail)
		if err == nil {
			var rest string
			rest, err = out.close()
			release += rest
		}
		if err != nil {
			if release != "" {
				emit(chunk(release, nil))
			}
			return err
		}
		tail = release
	}
	end := chunk(tail, pending)
	end.Done, end.FinishReason = true, finish
	emit(end)
	return nil
}

// ErrUnavailable: the model's plugin died and did not come back within the
// retry window. The request may be retried.
var ErrUnavailable = errors.New("inference: backend unavailable")

// retryable reports whether err means the plugin lost the model: it died
// (and the host restarted it), or it no longer knows the model because a
// restart happened under another request.
func retryable(err error) bool {
	return errors.Is(err, accel.ErrPluginDied) || errors.Is(err, accel.ErrUnknownModel)
}

// recover reloads the model into r's plugin after cause (a retryable
// error) until it succeeds or the retry window, counted from now, ends.
func (s *Service) recover(ctx context.Context, r *route, stale *resident, cause error) (*resident, error) {
	deadline := time.Now().Add(s.retryWindow)
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for {
		lm, err := s.load(rctx, r, nil, stale)
		if err == nil {
			return lm, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("model %q: %w", r.model, ctx.Err())
		}
		// A bus read cut by the window's deadline may fail a moment before
		// rctx reports it: past the deadline, every error means the same.
		expired := func() bool { return rctx.Err() != nil || !time.Now().Before(deadline) }
		if !retryable(err) && !expired() {
			return nil, err
		}
		cause = err
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-t.C:
		case <-rctx.Done():
			t.Stop()
		}
		if expired() {
			return nil, fmt.Errorf("%w: model %q: %s plugin did not come back within %v: %v",
				ErrUnavailable, r.model, r.pl.backend, s.retryWindow, cause)
		}
	}
}

// validPrefix is the length of s without a trailing incomplete UTF-8
// sequence, which a later byte-level token may complete.
func validPrefix(s string) int {
	for k := 1; k <= utf8.UTFMax-1 && k <= len(s); k++ {
		b := s[len(s)-k]
		switch {
		case b < 0x80:
			return len(s)
		case b >= 0xC0: // a leading byte: how long is its sequence?
			need := 2
			if b >= 0xF0 {
				need = 4
			} else if b >= 0xE0 {
				need = 3
			}
			if need > k {
				return len(s) - k
			}
			return len(s)
		}
	}
	return len(s)
}

// replaceInvalid replaces each byte of s that is not part of a valid
// UTF-8 sequence with U+FFFD, as ranging over a string does: one for each
// byte, not for each run of them, so that the text does not depend on
// where the stream was cut into chunks.
func replaceInvalid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// errorCode classifies err with a Connect code name for the client.
func errorCode(err error) string {
	var coded codedError
	switch {
	case errors.As(err, &coded) && coded.ErrorCode() != "":
		return coded.ErrorCode()
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrQueueFull), errors.Is(err, ErrMemoryBudget):
		return "resource_exhausted"
	case errors.Is(err, errInvalidRequest), errors.Is(err, sampling.ErrInvalidParams):
		return "invalid_argument"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, bus.ErrNotFound):
		return "not_found"
	case errors.Is(err, bus.ErrInvalidName):
		return "invalid_argument"
	case errors.Is(err, accel.ErrPluginDied), errors.Is(err, accel.ErrPluginNotFound), errors.Is(err, accel.ErrUnknownModel):
		return "unavailable"
	case errors.Is(err, errInvalidBackend):
		return "invalid_argument"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	}
	return "internal"
}
