package bus

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// Subjects every inference instance answers (plain subscriptions, not a
// queue group: each instance holds its own plugins). A caller publishes
// one request and gathers the replies.
const (
	InferenceSwapSubject   = "inference.swap"
	InferenceStatusSubject = "inference.status"
)

// SwapWait bounds SwapBackend when its ctx has no deadline: launch, load
// and drain on every instance.
var SwapWait = 5 * time.Minute

// StatusWindow is how long InferenceStatus waits after the latest reply for
// another instance to answer.
var StatusWindow = 250 * time.Millisecond

// InferenceStatus asks every inference instance for its status. It
// returns ErrNoResponders when none runs.
func (b *Bus) InferenceStatus(ctx context.Context) ([]*busv1.InferenceStatus, error) {
	data, err := proto.Marshal(&busv1.InferenceStatusRequest{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out []*busv1.InferenceStatus
	err = gather(ctx, b.Conn(), InferenceStatusSubject, data, 0, StatusWindow, func(raw []byte) error {
		var st busv1.InferenceStatus
		if err := proto.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("inference status: %w: %v", ErrMalformed, err)
		}
		out = append(out, &st)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out, err
}

// SwapBackend swaps model to backend on every inference instance: it
// counts the instances with InferenceStatus, sends one swap request and
// waits for each instance's reply or the end of ctx (SwapWait when ctx has
// no deadline). It returns the replies it got and, when an instance failed or
// did not answer, an error that names them (the replies say which).
func (b *Bus) SwapBackend(ctx context.Context, model, backend string) ([]*busv1.SwapBackendReply, error) {
	if err := ValidName(model); err != nil {
		return nil, fmt.Errorf("swap: model: %w", err)
	}
	sts, err := b.InferenceStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("swap %q: %w", model, err)
	}
	data, err := proto.Marshal(&busv1.SwapBackendRequest{Model: model, Backend: backend})
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, SwapWait)
		defer cancel()
	}
	var out []*busv1.SwapBackendReply
	err = gather(ctx, b.Conn(), InferenceSwapSubject, data, len(sts), 0, func(raw []byte) error {
		var r busv1.SwapBackendReply
		if err := proto.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("swap reply: %w: %v", ErrMalformed, err)
		}
		out = append(out, &r)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return out, fmt.Errorf("swap %q to %s: %w", model, backend, err)
	}
	var failed []string
	for _, r := range out {
		if r.Error != "" {
			failed = append(failed, fmt.Sprintf("%s: %s", r.Instance, r.Error))
		}
	}
	answered := map[string]bool{}
	for _, r := range out {
		answered[r.Instance] = true
	}
	for _, st := range sts {
		if !answered[st.Instance] {
			failed = append(failed, fmt.Sprintf("%s: no reply: %v", st.Instance, context.DeadlineExceeded))
		}
	}
	if len(failed) > 0 {
		return out, fmt.Errorf("swap %q to %s failed on %d of %d instances: %s",
			model, backend, len(failed), len(sts), strings.Join(failed, "; "))
	}
	return out, nil
}

// gather publishes data to subject and calls fn for each reply until want
// replies came (want > 0), quiet passed without one after the first
// (quiet > 0), or ctx ends. A 503 status (nobody subscribed) gives
// ErrNoResponders.
func gather(ctx context.Context, nc *nats.Conn, subject string, data []byte, want int, quiet time.Duration, fn func([]byte) error) error {
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return fmt.Errorf("%s: subscribe: %w", subject, err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishMsg(&nats.Msg{Subject: subject, Reply: inbox, Data: data}); err != nil {
		return fmt.Errorf("%s: publish: %w", subject, err)
	}
	var quietC <-chan time.Time
	n := 0
	for {
		select {
		case <-ctx.Done():
			if n > 0 && want <= 0 {
				return nil
			}
			return fmt.Errorf("%s: %d replies: %w", subject, n, ctx.Err())
		case <-quietC:
			return nil
		case m := <-ch:
			if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
				return fmt.Errorf("%s: no inference service is running: %w", subject, ErrNoResponders)
			}
			if err := fn(m.Data); err != nil {
				return err
			}
			n++
			if want > 0 && n >= want {
				return nil
			}
			if quiet > 0 {
				quietC = time.After(quiet)
			}
		}
	}
}
