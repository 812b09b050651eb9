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
	"github.com/llmesh/llmesh/accel/transformer"
	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/internal/bpe"
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

// Config configures the service.
type Config struct {
	Bus     *bus.Bus
	Host    Launcher
	Backend string // default "cpu"
	Logger  *slog.Logger
	// Concurrency bounds the requests served at once.
	Concurrency int
}

// Service serves generation requests.
type Service struct {
	bus     *bus.Bus
	host    Launcher
	backend string
	log     *slog.Logger
	sem     chan struct{}

	mu     sync.Mutex
	plugin *accel.Plugin
	models map[string]*loaded
}

// loaded is a model resident in the plugin.
type loaded struct {
	mu  sync.Mutex // held while loading
	cur *resident  // nil until loaded; replaced on reload, never modified
}

// resident is one loaded checkpoint of a model. It is immutable once
// published in loaded.cur, so requests read it without a lock while another
// request reloads the model.
type resident struct {
	id  string // model id in the backend
	ref string // checkpoint ref
	tok *bpe.Tokenizer
	cfg transformer.Config
	eot uint32
}

// New validates cfg and builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Bus == nil || cfg.Host == nil {
		return nil, errors.New("inference: config needs a bus and a plugin host")
	}
	if cfg.Backend == "" {
		cfg.Backend = "cpu"
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{
		bus: cfg.Bus, host: cfg.Host, backend: cfg.Backend, log: log.With("service", "inference"),
		sem: make(chan struct{}, cfg.Concurrency), models: map[string]*loaded{},
	}, nil
}

// Run serves requests until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	sub, err := s.bus.Conn().QueueSubscribe("infer.>", "inference", func(m *nats.Msg) {
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
	<-ctx.Done()
	_ = sub.Drain()
	wg.Wait()
	s.mu.Lock()
	if s.plugin != nil {
		s.plugin.Close()
	}
	s.mu.Unlock()
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

// backendPlugin returns the service's plugin, launching it on first use.
func (s *Service) backendPlugin(ctx context.Context) (*accel.Plugin, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plugin == nil {
		p, err := s.host.Launch(ctx, s.backend)
		if err != nil {
			return nil, fmt.Errorf("inference: launch %s backend: %w", s.backend, err)
		}
		s.plugin = p
	}
	return s.plugin, nil
}

// model makes sure the registry's current checkpoint of name is loaded.
func (s *Service) model(ctx context.Context, name string, reload bool) (*resident, *accel.Plugin, error) {
	rec, err := s.bus.GetModel(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	p, err := s.backendPlugin(ctx)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	lm := s.models[name]
	if lm == nil {
		lm = &loaded{}
		s.models[name] = lm
	}
	s.mu.Unlock()

	lm.mu.Lock()
	defer lm.mu.Unlock()
	if lm.cur != nil && lm.cur.ref == rec.Checkpoint && !reload {
		return lm.cur, p, nil
	}
	lm.cur = nil
	cfg, err := transformer.ParseConfig(rec.ConfigJson)
	if err != nil {
		return nil, nil, fmt.Errorf("model %q: %w", name, err)
	}
	if rec.Tokenizer == "" {
		return nil, nil, fmt.Errorf("model %q has no tokenizer in the registry", name)
	}
	tj, err := s.bus.GetObject(ctx, rec.Tokenizer)
	if err != nil {
		return nil, nil, fmt.Errorf("model %q: read tokenizer: %w", name, err)
	}
	tok, err := bpe.Load(tj)
	if err != nil {
		return nil, nil, fmt.Errorf("model %q: load tokenizer: %w", name, err)
	}
	eot, ok := tok.TokenID(EndOfText)
	if !ok {
		return nil, nil, fmt.Errorf("model %q: tokenizer has no %s token", name, EndOfText)
	}
	w, err := s.bus.GetObject(ctx, rec.Checkpoint)
	if err != nil {
		return nil, nil, fmt.Errorf("model %q: read checkpoint: %w", name, err)
	}
	id := "serve-" + name
	if _, err := p.LoadModel(ctx, accel.LoadRequest{ModelID: id, ConfigJSON: rec.ConfigJson, Weights: w}); err != nil {
		return nil, nil, fmt.Errorf("model %q: load: %w", name, err)
	}
	lm.cur = &resident{id: id, ref: rec.Checkpoint, tok: tok, cfg: cfg, eot: eot}
	s.log.Info("loaded model", "name", name, "checkpoint", rec.Checkpoint, "backend", s.backend)
	return lm.cur, p, nil
}

// generate runs one request, calling emit for each chunk of text and once
// more with Done set.
func (s *Service) generate(ctx context.Context, req *busv1.GenerateRequest, emit func(*busv1.GenerateChunk)) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	lm, p, err := s.model(ctx, req.Model, false)
	if err != nil {
		return err
	}
	prompt := lm.tok.Encode(req.Prompt)
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
	retried := false
	var seq int64
	for len(gen) < int(req.MaxTokens) {
		window := ids
		if len(window) > lm.cfg.NCtx {
			window = window[len(window)-lm.cfg.NCtx:]
		}
		res, err := p.DecodeStep(ctx, accel.DecodeRequest{ModelID: lm.id, Sequences: [][]int32{window}})
		if err != nil {
			if !errors.Is(err, accel.ErrPluginDied) || retried || ctx.Err() != nil {
				return fmt.Errorf("model %q: decode: %w", req.Model, err)
			}
			retried = true // the plugin restarted: reload the model and retry once
			if lm, p, err = s.model(ctx, req.Model, true); err != nil {
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
			seq++
			emit(&busv1.GenerateChunk{Text: strings.ToValidUTF8(text[sent:complete], "\uFFFD"), TokenIds: []int32{next}, Seq: seq})
			sent = complete
		}
	}
	text, _ := lm.tok.Decode(gen)
	tail := ""
	if len(text) > sent {
		tail = strings.ToValidUTF8(text[sent:], "\uFFFD")
	}
	emit(&busv1.GenerateChunk{Text: tail, Done: true, FinishReason: finish, PromptTokens: int32(nPrompt), CompletionTokens: int32(len(gen)), Seq: seq + 1})
	return nil
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
	switch {
	case errors.Is(err, bus.ErrNotFound):
		return "not_found"
	case errors.Is(err, bus.ErrInvalidName):
		return "invalid_argument"
	case errors.Is(err, accel.ErrPluginDied), errors.Is(err, accel.ErrPluginNotFound):
		return "unavailable"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	}
	return "internal"
}
