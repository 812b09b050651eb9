package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// emitTimeout bounds one event publish from the fire-and-forget methods.
const emitTimeout = 10 * time.Second

// Emitter publishes a job's events on events.<job>.<type>. Progress,
// Metric, Log and Artifact are fire-and-forget: each waits for the
// stream's acknowledgement (so events keep their order) and logs, rather
// than returns, a failure. Use Emit to see errors.
type Emitter struct {
	b     *Bus
	jobID string
}

// Emitter returns the event emitter of a job, for code that reports on a
// job outside a worker (the pipeline orchestrator).
func (b *Bus) Emitter(jobID string) *Emitter { return &Emitter{b: b, jobID: jobID} }

// JobID is the job the emitter reports on.
func (e *Emitter) JobID() string { return e.jobID }

// Progress reports done out of total units of a stage.
func (e *Emitter) Progress(stage string, done, total int64, msg string) {
	e.fire(EventProgress, &busv1.Event{Body: &busv1.Event_Progress{Progress: &busv1.Progress{Stage: stage, Done: done, Total: total, Message: msg}}})
}

// Metric reports a named value at a step (loss, tokens/s, ...).
func (e *Emitter) Metric(name string, value float64, step int64) {
	e.fire(EventMetric, &busv1.Event{Body: &busv1.Event_Metric{Metric: &busv1.Metric{Name: name, Value: value, Step: step}}})
}

// Log reports a line of text.
func (e *Emitter) Log(msg string) {
	e.fire(EventLog, &busv1.Event{Body: &busv1.Event_Log{Log: msg}})
}

// Artifact reports an object the job produced.
func (e *Emitter) Artifact(kind, name, ref string, size int64) {
	e.fire(EventArtifact, &busv1.Event{Body: &busv1.Event_Artifact{Artifact: &busv1.Artifact{Kind: kind, Name: name, Ref: ref, Size: size}}})
}

// Done publishes the done event with the job's JSON result.
func (e *Emitter) Done(ctx context.Context, result []byte) error {
	return e.emit(ctx, EventDone, &busv1.Event{Body: &busv1.Event_ResultJson{ResultJson: result}})
}

// Failed publishes the failed event with an error message.
func (e *Emitter) Failed(ctx context.Context, msg string) error {
	return e.emit(ctx, EventFailed, &busv1.Event{Body: &busv1.Event_Error{Error: msg}})
}

// Emit publishes ev (its JobId, Type and Time are filled in) as an event
// of type typ.
func (e *Emitter) Emit(ctx context.Context, typ string, ev *busv1.Event) error {
	return e.emit(ctx, typ, ev)
}

func (e *Emitter) fire(typ string, ev *busv1.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), emitTimeout)
	defer cancel()
	if err := e.emit(ctx, typ, ev); err != nil {
		e.b.log.Warn("event lost", "job", e.jobID, "type", typ, "err", err)
	}
}

func (e *Emitter) emit(ctx context.Context, typ string, ev *busv1.Event) error {
	if err := ValidJobID(e.jobID); err != nil {
		return err
	}
	ev.JobId, ev.Type = e.jobID, typ
	if ev.Time == nil {
		ev.Time = timestamppb.Now()
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	subject := EventSubject(e.jobID, typ)
	if _, err := e.b.js.Publish(ctx, subject, data); err != nil {
		return fmt.Errorf("publish event %s: %w", subject, err)
	}
	return nil
}

// WatchEvents replays a job's events from the first and follows new ones.
// The channel closes after the done or failed event, or when ctx ends. The
// job need not exist yet. Events that do not decode are logged and
// skipped.
func (b *Bus) WatchEvents(ctx context.Context, jobID string) (<-chan *busv1.Event, error) {
	if err := ValidJobID(jobID); err != nil {
		return nil, err
	}
	cons, err := b.js.OrderedConsumer(ctx, StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{EventsFilter(jobID)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("watch events of job %q: %w", jobID, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("watch events of job %q: %w", jobID, err)
	}
	out := make(chan *busv1.Event, 64)
	stop := context.AfterFunc(ctx, it.Stop)
	go func() {
		defer close(out)
		defer stop()
		defer it.Stop()
		for {
			msg, err := it.Next()
			if err != nil {
				if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					b.log.Warn("event watch ended", "job", jobID, "err", err)
				}
				return
			}
			ev := new(busv1.Event)
			if err := proto.Unmarshal(msg.Data(), ev); err != nil {
				b.log.Error("malformed event", "subject", msg.Subject(), "err", err)
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
			if ev.Type == EventDone || ev.Type == EventFailed {
				return
			}
		}
	}()
	return out, nil
}
