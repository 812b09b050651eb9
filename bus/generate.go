package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// ErrNoResponders: no service is subscribed to the subject of a request.
var ErrNoResponders = errors.New("no service answers")

// GenerateError is a generation the inference service refused or failed:
// its message and a Connect code name (invalid_argument, not_found,
// unavailable, deadline_exceeded, internal).
type GenerateError struct {
	Code, Message string
	// RetryAfter, with code resource_exhausted, is when to try again.
	RetryAfter time.Duration
}

// Is makes a not_found GenerateError match ErrNotFound.
func (e *GenerateError) Is(target error) bool { return target == ErrNotFound && e.Code == "not_found" }

func (e *GenerateError) Error() string { return "generate: " + e.Message }

// GenerateIdle is the longest Generate waits for the next chunk (the first
// one includes loading the model).
var GenerateIdle = 2 * time.Minute

// InferenceCancelSubject carries GenerateCancel messages: every inference
// instance hears them and stops the generation streaming to the subject.
const InferenceCancelSubject = "inference.cancel"

// Generate sends req to infer.<model>.generate and calls fn for every chunk
// the inference service streams back, the last one with Done set. It
// returns a *GenerateError when the service reports one, ErrNoResponders
// when no inference service is running, and fn's error when fn fails.
// ctx's deadline travels with the request (a request still queued then
// never runs), and when Generate returns before the last chunk (ctx done,
// fn failed) it cancels the generation on the service.
func (b *Bus) Generate(ctx context.Context, req *busv1.GenerateRequest, fn func(*busv1.GenerateChunk) error) (err error) {
	if err := ValidName(req.Model); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && req.DeadlineUnixMs == 0 {
		req = proto.CloneOf(req)
		req.DeadlineUnixMs = d.UnixMilli()
	}
	inbox := b.Conn().NewRespInbox()
	if req.StreamSubject != "" {
		inbox = req.StreamSubject
	}
	finished := false
	defer func() {
		if !finished {
			if data, merr := proto.Marshal(&busv1.GenerateCancel{Subject: inbox}); merr == nil {
				_ = b.Conn().Publish(InferenceCancelSubject, data)
			}
		}
	}()
	ch := make(chan *nats.Msg, 256)
	sub, err := b.Conn().ChanSubscribe(inbox, ch)
	if err != nil {
		return fmt.Errorf("generate: subscribe: %w", err)
	}
	defer sub.Unsubscribe()
	data, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	if err := b.Conn().PublishMsg(&nats.Msg{Subject: InferSubject(req.Model), Reply: inbox, Data: data}); err != nil {
		return fmt.Errorf("generate: publish: %w", err)
	}
	idle := time.NewTimer(GenerateIdle)
	defer idle.Stop()
	var next int64 = 1
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idle.C:
			return fmt.Errorf("generate %q: no chunk for %s: %w", req.Model, GenerateIdle, context.DeadlineExceeded)
		case m := <-ch:
			if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
				return fmt.Errorf("generate %q: no inference service is running: %w", req.Model, ErrNoResponders)
			}
			var c busv1.GenerateChunk
			if err := proto.Unmarshal(m.Data, &c); err != nil {
				return fmt.Errorf("generate %q: chunk: %w: %v", req.Model, ErrMalformed, err)
			}
			if c.Error != "" {
				finished = true
				return &GenerateError{Code: c.ErrorCode, Message: c.Error, RetryAfter: time.Duration(c.RetryAfterMs) * time.Millisecond}
			}
			if c.Seq != next {
				return fmt.Errorf("generate %q: chunk %d arrived, want %d: %w", req.Model, c.Seq, next, ErrMalformed)
			}
			next++
			if c.Done {
				finished = true
			}
			if err := fn(&c); err != nil {
				return err
			}
			if c.Done {
				return nil
			}
			idle.Reset(GenerateIdle)
		}
	}
}
