package filter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// ErrUnavailable: the filter service was needed (the policy requires it or
// has a learned stage) and did not answer in time. Nothing was released.
var ErrUnavailable = errors.New("filter: unavailable")

// unavailable wraps ErrUnavailable with the inference error code.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string     { return e.err.Error() }
func (e *unavailableError) Unwrap() error     { return e.err }
func (e *unavailableError) ErrorCode() string { return "unavailable" }

func unavailable(format string, args ...any) error {
	return &unavailableError{fmt.Errorf("%w: "+format, append([]any{ErrUnavailable}, args...)...)}
}

// inputError is a local check's input error with the code the inference
// service reports for it.
type inputError struct {
	err  error
	code string
}

func (e *inputError) Error() string     { return e.err.Error() }
func (e *inputError) Unwrap() error     { return e.err }
func (e *inputError) ErrorCode() string { return e.code }

// coded gives the input errors of a local check their codes; other errors
// (blocks) already have one.
func coded(err error) error {
	switch {
	case errors.Is(err, ErrTooLarge):
		return &inputError{err, "resource_exhausted"}
	case errors.Is(err, ErrInvalidUTF8):
		return &inputError{err, "invalid_argument"}
	}
	return err
}

// DefaultTimeout bounds one call to the filter service.
const DefaultTimeout = 2 * time.Second

// ClientConfig configures a Client.
type ClientConfig struct {
	Bus    *bus.Bus
	Logger *slog.Logger
	// Timeout bounds each call to the service; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Client is the filter as the inference service sees it (it implements
// inference.Filter).
//
// The streaming design: the client watches the policy bucket itself and
// runs the compiled rule stages in its own process, so a streamed token
// costs a scan of the held-back window and a little context (microseconds),
// not a bus round trip. The filter service stays the authority: when a
// model's policy is required (or has a learned stage, which only the
// service runs), every prompt is checked by filter.check, and output that
// passed the local stages is held until the service has confirmed it too.
// Confirmation is pipelined — at most one filter.check per stream in
// flight, carrying everything released locally since the last one, plus
// the tail of the confirmed text as context — so the generation never
// waits for it, and the added per-token cost stays the local scan. If the
// service is down or times out, no confirmation arrives and nothing more is
// released: the stream fails with ErrUnavailable (fail closed). A policy
// that is not required is enforced by the local stages alone.
type Client struct {
	b        *bus.Bus
	log      *slog.Logger
	timeout  time.Duration
	policies *Policies
	audit    *auditor
	streams  atomic.Uint64
}

// NewClient builds a client; Run must be running for policies from the
// bucket to apply (until then, the built-in default applies).
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Bus == nil {
		return nil, errors.New("filter: client config needs a bus")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("filter: client timeout %v is negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "filter-client")
	p, err := NewPolicies(cfg.Bus, log)
	if err != nil {
		return nil, err
	}
	return &Client{b: cfg.Bus, log: log, timeout: cfg.Timeout, policies: p, audit: newAuditor(cfg.Bus, log)}, nil
}

// Run watches the policies until ctx is done.
func (c *Client) Run(ctx context.Context) error {
	err := c.policies.Run(ctx)
	c.audit.wait()
	return err
}

// Policies is the client's policy set.
func (c *Client) Policies() *Policies { return c.policies }

// WaitReady waits until the bucket's policies are loaded.
func (c *Client) WaitReady(ctx context.Context) error {
	select {
	case <-c.policies.Ready():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %v", errNotReady, ctx.Err())
	}
}

// engine is the model's policy once the bucket is loaded: until then a
// model's own (perhaps required) policy is unknown, so the client waits up
// to its timeout and then fails closed.
func (c *Client) engine(ctx context.Context, model string) (*Engine, error) {
	select {
	case <-c.policies.Ready():
		return c.policies.Engine(model), nil
	default:
	}
	t := time.NewTimer(c.timeout)
	defer t.Stop()
	select {
	case <-c.policies.Ready():
		return c.policies.Engine(model), nil
	case <-t.C:
		return nil, unavailable("model %q: the filter policies were not loaded within %v", model, c.timeout)
	case <-ctx.Done():
		return nil, unavailable("model %q: the filter policies were not loaded: %v", model, ctx.Err())
	}
}

// needsService: the policy's checks must go through the service.
func needsService(e *Engine) bool { return e.Required() || e.policy.Learned != nil }

// Check asks the service to check text (direction "prompt" or "output").
func (c *Client) Check(ctx context.Context, req *busv1.FilterCheckRequest) (*busv1.FilterCheckReply, error) {
	data, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	m, err := c.b.Conn().RequestWithContext(ctx, bus.FilterCheckSubject, data)
	if err != nil {
		// No responders, a timeout, a closed connection: all mean the
		// service cannot vouch for the text.
		return nil, unavailable("filter.check for model %q: %v", req.Model, err)
	}
	var rep busv1.FilterCheckReply
	if err := proto.Unmarshal(m.Data, &rep); err != nil {
		return nil, unavailable("filter.check for model %q: malformed reply: %v", req.Model, err)
	}
	if rep.ErrorCode != "" {
		return nil, &CheckError{Code: rep.ErrorCode, Message: rep.Error}
	}
	return &rep, nil
}

// CheckError is an error the service reported.
type CheckError struct{ Code, Message string }

func (e *CheckError) Error() string { return "filter.check: " + e.Message }

// ErrorCode is the service's code.
func (e *CheckError) ErrorCode() string { return e.Code }

// Is maps the service's codes to this package's errors.
func (e *CheckError) Is(target error) bool {
	switch target {
	case ErrUnavailable:
		return e.Code == "unavailable"
	case ErrTooLarge:
		return e.Code == "resource_exhausted"
	case ErrInvalidUTF8:
		return e.Code == "invalid_argument"
	}
	return false
}

// verdictOf turns a service reply into the text to use or a block.
func verdictOf(dir string, rep *busv1.FilterCheckReply) (string, error) {
	if Action(rep.Action) != Block {
		return rep.Text, nil
	}
	f := Finding{Category: "unknown"}
	for _, x := range rep.Findings {
		if Action(x.Action) == Block {
			f = Finding{Category: x.Category, Stage: x.Stage, Rule: x.Rule}
			break
		}
	}
	return "", blocked(dir, f)
}

// CheckPrompt returns the prompt to run (redacted if the policy says so),
// or a *BlockedError, or an error wrapping ErrUnavailable when the policy
// needs the service and it did not answer.
func (c *Client) CheckPrompt(ctx context.Context, model, prompt string) (string, error) {
	e, err := c.engine(ctx, model)
	if err != nil {
		return "", err
	}
	if needsService(e) {
		rep, err := c.Check(ctx, &busv1.FilterCheckRequest{Model: model, Text: prompt, Direction: "prompt"})
		if err != nil {
			return "", err
		}
		return verdictOf("prompt", rep)
	}
	v, err := e.Check(prompt)
	if err != nil {
		return "", coded(err)
	}
	if v.Action != Allow {
		c.audit.emit(auditRecord{Model: model, Direction: "prompt", Action: v.Action, PolicyVersion: e.Version(), Bytes: len(prompt), Findings: auditFindings(v.Findings)})
	}
	if v.Action == Block {
		for _, f := range v.Findings {
			if f.Action == Block {
				return "", blocked("prompt", f)
			}
		}
	}
	return v.Text, nil
}

// OutputStream is the output check of one generation; it is what
// OpenStream returns (the same interface as inference.FilterStream).
type OutputStream = interface {
	Push(text string) (release string, err error)
	Close() (release string, err error)
}

// OpenStream starts the output check of one generation under the model's
// current policy.
func (c *Client) OpenStream(ctx context.Context, model string) (OutputStream, error) {
	e, err := c.engine(ctx, model)
	if err != nil {
		return nil, err
	}
	id := strconv.FormatUint(c.streams.Add(1), 10)
	cs := &clientStream{c: c, ctx: ctx, model: model, id: id, version: e.Version()}
	cs.local = e.NewStream(cs.observe)
	if needsService(e) {
		cs.confirm = true
		cs.done = make(chan confirmResult, 1)
	}
	return cs, nil
}

// clientStream is a local Stream, plus the service's confirmation when
// the policy needs it.
type clientStream struct {
	c       *Client
	ctx     context.Context
	model   string
	id      string
	version uint64
	local   *Stream
	audited []auditFinding

	confirm   bool
	pending   string // released locally, not yet sent for confirmation
	inflight  bool
	done      chan confirmResult
	confirmed string // tail of the confirmed text: context of the next check
	err       error
}

type confirmResult struct {
	checked string // the text sent
	release string // what the service released of it
	err     error
}

func (s *clientStream) observe(f Finding) {
	s.audited = append(s.audited, auditFinding{f.Category, f.Stage, f.Rule, f.Action, f.Start, f.End, f.Score})
	if f.Action == Block {
		s.c.audit.emit(auditRecord{Model: s.model, Direction: "output", Stream: s.id, Action: Block, PolicyVersion: s.version, Findings: s.audited})
		s.audited = nil
	}
}

func (s *clientStream) flushAudit() {
	if len(s.audited) > 0 {
		s.c.audit.emit(auditRecord{Model: s.model, Direction: "output", Stream: s.id, Action: Redact, PolicyVersion: s.version, Findings: s.audited})
		s.audited = nil
	}
}

// Push checks text locally and returns what is released: without
// confirmation, what the local stages release; with it, what the service
// has confirmed since the last call.
func (s *clientStream) Push(text string) (string, error) {
	if s.err != nil {
		return "", s.err
	}
	rel, err := s.local.Push(text)
	if err != nil {
		s.err = coded(err)
		s.flushAudit()
		return "", s.err
	}
	if !s.confirm {
		return rel, nil
	}
	s.pending += rel
	out := s.collect(false)
	if s.err != nil {
		return "", s.err
	}
	s.send()
	return out, nil
}

// Close releases what is held back, after confirmation when needed.
func (s *clientStream) Close() (string, error) {
	defer s.flushAudit()
	if s.err != nil {
		return "", s.err
	}
	rel, err := s.local.Close()
	if err != nil {
		s.err = coded(err)
		return "", s.err
	}
	if !s.confirm {
		return rel, nil
	}
	s.pending += rel
	var out string
	for s.inflight || s.pending != "" {
		s.send()
		out += s.collect(true)
		if s.err != nil {
			return "", s.err
		}
	}
	return out, nil
}

// send starts a confirmation of the pending text if none is in flight.
func (s *clientStream) send() {
	if s.inflight || s.pending == "" {
		return
	}
	req := &busv1.FilterCheckRequest{Model: s.model, Text: s.pending, Direction: "output", Context: s.confirmed, Stream: s.id}
	s.pending = ""
	s.inflight = true
	go func() {
		rep, err := s.c.Check(s.ctx, req)
		r := confirmResult{checked: req.Text, err: err}
		if err == nil {
			r.release, r.err = verdictOf("output", rep)
		}
		s.done <- r
	}()
}

// collect takes a finished confirmation (waiting for one when wait is set)
// and returns the text it releases.
func (s *clientStream) collect(wait bool) string {
	if !s.inflight {
		return ""
	}
	var r confirmResult
	if wait {
		r = <-s.done
	} else {
		select {
		case r = <-s.done:
		default:
			return ""
		}
	}
	s.inflight = false
	if r.err != nil {
		s.err = r.err
		return ""
	}
	s.confirmed = tail(s.confirmed+r.checked, contextBytes)
	return r.release
}

// tail is the last n bytes of s or fewer, starting on a rune.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	k := len(s) - n
	for k < len(s) && !utf8.RuneStart(s[k]) {
		k++
	}
	return s[k:]
}
