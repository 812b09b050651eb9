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
type GenerateError struct{ Code, Message string }

// Is makes a not_found GenerateError match ErrNotFound.
func (e *GenerateError) Is(target error) bool { return target == ErrNotFound && e.Code == "not_found" }

func (e *GenerateError) Error() string { return "generate: " + e.Message }

// GenerateIdle is the longest Generate waits for the next chunk (the first
// one includes loading the model).
var GenerateIdle = 2 * time.Minute

// Generate sends req to infer.<model>.generate and calls fn for every chunk
// the inference service streams back, the last one with Done set. It
// returns a *GenerateError when the service reports one, ErrNoResponders
// when no inference service is running, and fn's error when fn fails.
func (b *Bus) Generate(ctx context.Context, req *busv1.GenerateRequest, fn func(*busv1.GenerateChunk) error) error {
	if err := ValidName(req.Model); err != nil {
		return err
	}
	inbox := b.Conn().NewRespInbox()
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
				return &GenerateError{Code: c.ErrorCode, Message: c.Error}
			}
			if c.Seq != next {
				return fmt.Errorf("generate %q: chunk %d arrived, want %d: %w", req.Model, c.Seq, next, ErrMalformed)
			}
			next++
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
