package filter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// MaxRequestBytes bounds a filter.check message.
const MaxRequestBytes = MaxInputBytesLimit + 64<<10

// Classifier is the learned stage: it scores how likely text belongs to a
// category, in [0, 1].
type Classifier interface {
	Score(ctx context.Context, text string) (float32, error)
}

// ClassifierSource returns the classifier of a learned rule's model.
type ClassifierSource func(ctx context.Context, model string) (Classifier, error)

// Config configures the service.
type Config struct {
	Bus    *bus.Bus
	Logger *slog.Logger
	// Classifiers serves the learned stage; nil means a policy with a
	// learned rule fails its checks (unavailable) rather than skip it.
	Classifiers ClassifierSource
	// Concurrency bounds the checks run at once; default 64.
	Concurrency int
}

// Service answers filter.check in the "filter" queue group.
type Service struct {
	b        *bus.Bus
	log      *slog.Logger
	policies *Policies
	classify ClassifierSource
	sem      chan struct{}
	audit    *auditor
}

// New validates cfg and builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Bus == nil {
		return nil, errors.New("filter: config needs a bus")
	}
	if cfg.Concurrency < 0 {
		return nil, fmt.Errorf("filter: config: concurrency %d is negative", cfg.Concurrency)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 64
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("service", "filter")
	p, err := NewPolicies(cfg.Bus, log)
	if err != nil {
		return nil, err
	}
	return &Service{b: cfg.Bus, log: log, policies: p, classify: cfg.Classifiers,
		sem: make(chan struct{}, cfg.Concurrency), audit: newAuditor(cfg.Bus, log)}, nil
}

// Policies is the service's policy set.
func (s *Service) Policies() *Policies { return s.policies }

// Run serves until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	perr := make(chan error, 1)
	go func() { perr <- s.policies.Run(ctx) }()
	select {
	case <-s.policies.Ready():
	case err := <-perr:
		return err
	case <-ctx.Done():
		return nil
	}
	var wg sync.WaitGroup
	sub, err := s.b.Conn().QueueSubscribe(bus.FilterCheckSubject, "filter", func(m *nats.Msg) {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-s.sem; wg.Done() }()
			_ = bus.Respond(m, s.serve(ctx, m.Data))
		}()
	})
	if err != nil {
		return fmt.Errorf("filter: subscribe: %w", err)
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-perr:
	}
	_ = sub.Drain()
	wg.Wait()
	s.audit.wait()
	return runErr
}

func errReply(code string, format string, args ...any) *busv1.FilterCheckReply {
	return &busv1.FilterCheckReply{ErrorCode: code, Error: fmt.Sprintf(format, args...)}
}

func (s *Service) serve(ctx context.Context, data []byte) *busv1.FilterCheckReply {
	if len(data) > MaxRequestBytes {
		return errReply("resource_exhausted", "filter.check request of %d bytes exceeds %d", len(data), MaxRequestBytes)
	}
	var req busv1.FilterCheckRequest
	if err := proto.Unmarshal(data, &req); err != nil {
		return errReply("invalid_argument", "malformed filter.check request: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rep, err := s.Check(ctx, &req)
	if err != nil {
		return errReply(checkCode(err), "%v", err)
	}
	return rep
}

// checkCode classifies an error of Check.
func checkCode(err error) string {
	switch {
	case errors.Is(err, ErrTooLarge):
		return "resource_exhausted"
	case errors.Is(err, ErrInvalidUTF8), errors.Is(err, bus.ErrInvalidName), errors.Is(err, errBadRequest):
		return "invalid_argument"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	}
	return "internal"
}

var errBadRequest = errors.New("filter: bad request")

// Check runs every stage of the model's policy, the learned one included,
// on req and emits an audit event for a block or redaction.
func (s *Service) Check(ctx context.Context, req *busv1.FilterCheckRequest) (*busv1.FilterCheckReply, error) {
	if req.Model != "" {
		if err := bus.ValidName(req.Model); err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
	}
	switch req.Direction {
	case "prompt", "output":
	case "":
		req.Direction = "prompt"
	default:
		return nil, fmt.Errorf("%w: direction %q (want prompt or output)", errBadRequest, req.Direction)
	}
	if !utf8.ValidString(req.Context) {
		return nil, fmt.Errorf("context: %w", ErrInvalidUTF8)
	}
	e := s.policies.Engine(req.Model)
	all := req.Context + req.Text
	if err := e.checkInput(all); err != nil {
		return nil, err
	}
	base := len(req.Context)
	fs := e.Find(all, base)
	if l := e.policy.Learned; l != nil {
		f, err := s.learned(ctx, l, e, all)
		if err != nil {
			return nil, err
		}
		if f != nil {
			f.Start, f.End = base, len(all)
			fs = append(fs, *f)
		}
	}
	for i := range fs {
		if fs[i].Start < base && fs[i].Action == Redact {
			// The value began in text already released: it can no longer
			// be redacted, so the segment is blocked (as Stream does).
			fs[i].Action = Block
		}
		fs[i].Start = max(fs[i].Start-base, 0)
		fs[i].End -= base
	}
	v := e.verdict(req.Text, fs)
	if v.Action != Allow {
		s.audit.emit(auditRecord{Model: req.Model, Direction: req.Direction, Stream: req.Stream, Action: v.Action,
			PolicyVersion: e.Version(), Bytes: len(req.Text), Findings: auditFindings(fs)})
	}
	rep := &busv1.FilterCheckReply{Action: string(v.Action), Text: v.Text, PolicyVersion: e.Version(), Required: e.Required()}
	for _, f := range fs {
		rep.Findings = append(rep.Findings, &busv1.FilterFinding{Category: f.Category, Stage: f.Stage, Rule: f.Rule,
			Action: string(f.Action), Start: int32(f.Start), End: int32(f.End), Score: f.Score})
	}
	return rep, nil
}

// learned scores text with the rule's classifier.
func (s *Service) learned(ctx context.Context, l *LearnedRule, e *Engine, text string) (*Finding, error) {
	if s.classify == nil {
		return nil, fmt.Errorf("%w: policy %d has a learned rule (model %q) but this service has no classifiers", ErrUnavailable, e.Version(), l.Model)
	}
	c, err := s.classify(ctx, l.Model)
	if err != nil {
		return nil, fmt.Errorf("%w: classifier %q: %v", ErrUnavailable, l.Model, err)
	}
	score, err := c.Score(ctx, text)
	if err != nil {
		return nil, fmt.Errorf("%w: classifier %q: %v", ErrUnavailable, l.Model, err)
	}
	if float64(score) < l.Threshold {
		return nil, nil
	}
	return &Finding{Category: l.Category, Stage: StageLearned, Rule: l.Model, Action: e.policy.Categories[l.Category].Action, Score: score}, nil
}

// auditRecord is the body of an audit event: what was decided and by
// which rules, with offsets, never the text or a value found in it.
type auditRecord struct {
	Model         string         `json:"model"`
	Direction     string         `json:"direction"`
	Stream        string         `json:"stream,omitempty"`
	Action        Action         `json:"action"`
	PolicyVersion uint64         `json:"policy_version"`
	Bytes         int            `json:"bytes"`
	Findings      []auditFinding `json:"findings"`
}

type auditFinding struct {
	Category string  `json:"category"`
	Stage    string  `json:"stage"`
	Rule     string  `json:"rule"`
	Action   Action  `json:"action"`
	Start    int     `json:"start"`
	End      int     `json:"end"`
	Score    float32 `json:"score,omitempty"`
}

func auditFindings(fs []Finding) []auditFinding {
	var out []auditFinding
	for _, f := range fs {
		if f.Action == Allow {
			continue
		}
		out = append(out, auditFinding{f.Category, f.Stage, f.Rule, f.Action, f.Start, f.End, f.Score})
	}
	return out
}

// AuditJobID is the job id filter audit events are published under:
// events.filter.audit, replayed with `llmesh jobs watch filter`.
const (
	AuditJobID = "filter"
	AuditEvent = "audit"
)

// auditor publishes audit events in the background (a check does not wait
// for the stream's acknowledgement).
type auditor struct {
	em  *bus.Emitter
	log *slog.Logger
	wg  sync.WaitGroup
}

func newAuditor(b *bus.Bus, log *slog.Logger) *auditor {
	return &auditor{em: b.Emitter(AuditJobID), log: log}
}

func (a *auditor) emit(r auditRecord) {
	if a.em == nil { // no bus (fuzzing)
		return
	}
	body, err := json.Marshal(r)
	if err != nil {
		a.log.Warn("audit record", "err", err)
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.em.Emit(ctx, AuditEvent, &busv1.Event{Body: &busv1.Event_Log{Log: string(body)}}); err != nil {
			a.log.Warn("audit event lost", "model", r.Model, "action", r.Action, "err", err)
		}
	}()
}

func (a *auditor) wait() { a.wg.Wait() }
