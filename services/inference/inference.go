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
	// Concurrency bounds the requests served at once.
	Concurrency int
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
	bg          sync.WaitGroup // drains of swapped-out plugins

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
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
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
		plugins: map[*plugin]struct{}{}, newest: map[string]*plugin{},
	}, nil
}

// Instance is the name this instance answers swap and status requests with.
func (s *Service) Instance() string { return s.instance }

// Run serves requests until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	nc := s.bus.Conn()
	sub, err := nc.QueueSubscribe("infer.>", "inference", func(m *nats.Msg) {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-s.sem; wg.Done() }()
			s.serve(ctx, m)
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
	if err := s.generate(ctx, &req, func(c *busv1.GenerateChunk) { s.send(out, c) }); err != nil {
		s.log.Warn("generate failed", "model", req.Model, "err", err)
		fail(errorCode(err), "%v", err)
	}
}

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
	if req.Temperature < 0 || req.Temperature > 10 {
		return fmt.Errorf("temperature %g out of range [0, 10]", req.Temperature)
	}
	if req.TopK < 0 {
		return fmt.Errorf("top_k %d must not be negative", req.TopK)
	}
	return nil
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
// starts, even if the model is swapped meanwhile.
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
	ids := make([]int32, 0, len(prompt)+int(req.MaxTokens)+1)
	if len(prompt) == 0 {
		ids = append(ids, int32(lm.eot))
	}
	for _, id := range prompt {
		ids = append(ids, int32(id))
	}
	nPrompt := len(prompt)
	sampler := sampling.New(sampling.Params{Temperature: req.Temperature, TopK: int(req.TopK), Seed: req.Seed})
	var gen []uint32
	sent := 0
	finish := "length"
	var seq int64
	for len(gen) < int(req.MaxTokens) {
		window := ids
		if len(window) > lm.cfg.NCtx {
			window = window[len(window)-lm.cfg.NCtx:]
		}
		res, err := r.pl.p.DecodeStep(ctx, accel.DecodeRequest{ModelID: r.id, Sequences: [][]int32{window}})
		if err != nil {
			if !retryable(err) || ctx.Err() != nil {
				return fmt.Errorf("model %q: decode: %w", req.Model, err)
			}
			// The plugin died (and was restarted) or lost the model:
			// load it again and redo the step. Decoding is idempotent.
			if lm, err = s.recover(ctx, r, lm, err); err != nil {
				return err
			}
			continue
		}
		next := sampler.Next(res.Logits[0])
		if uint32(next) == lm.eot {
			finish = "stop"
			break
		}
		ids = append(ids, next)
		gen = append(gen, uint32(next))
		text, err := lm.tok.Decode(gen)
		if err != nil {
			return fmt.Errorf("model %q: decode tokens: %w", req.Model, err)
		}
		// Send only whole characters: a byte-level token may end mid-rune.
		complete := validPrefix(text)
		if complete > sent {
			piece := strings.ToValidUTF8(text[sent:complete], "\uFFFD")
			sent = complete
			release, ferr := out.push(piece)
			if release != "" || out.stream == nil {
				c := &busv1.GenerateChunk{Text: release, Seq: seq + 1, PromptTokens: int32(nPrompt), CompletionTokens: int32(len(gen))}
				if out.stream == nil {
					c.TokenIds = []int32{next}
				}
				seq++
				emit(c)
			}
			if ferr != nil {
				return ferr
			}
		}
	}
	text, _ := lm.tok.Decode(gen)
	tail := ""
	if len(text) > sent {
		tail = strings.ToValidUTF8(text[sent:], "\uFFFD")
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
				seq++
				emit(&busv1.GenerateChunk{Text: release, Seq: seq, PromptTokens: int32(nPrompt), CompletionTokens: int32(len(gen))})
			}
			return err
		}
		tail = release
	}
	emit(&busv1.GenerateChunk{Text: tail, Done: true, FinishReason: finish, PromptTokens: int32(nPrompt), CompletionTokens: int32(len(gen)), Seq: seq + 1})
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

// errorCode classifies err with a Connect code name for the client.
func errorCode(err error) string {
	var coded codedError
	switch {
	case errors.As(err, &coded) && coded.ErrorCode() != "":
		return coded.ErrorCode()
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
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
