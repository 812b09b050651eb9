package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// Handler runs one job and returns its JSON result. Return an error to
// fail the job, or Retryable(err) to have it redelivered. ctx is cancelled
// when the job is cancelled (cause ErrCancelled) or the worker stops (cause
// ErrWorkerStopped); see context.Cause.
type Handler func(ctx context.Context, job *Job) (result []byte, err error)

// Job is the job a Handler runs. It is valid during the handler call. Its
// embedded Emitter reports progress, metrics, logs and artifacts.
type Job struct {
	ID     string
	Kind   string
	Spec   []byte // the JSON object given to SubmitJob
	Parent string
	// Attempt counts deliveries of this job, from 1.
	Attempt int
	*Emitter
}

// WorkerOptions tune ServeJobs. Zero fields take the defaults.
type WorkerOptions struct {
	// Concurrency is how many jobs this instance runs at once (default 1).
	Concurrency int
	// AckWait is how long the server waits for an acknowledgement before
	// redelivering; a running job sends in-progress acks every AckWait/3
	// (default 30s, at least 100ms).
	AckWait time.Duration
	// MaxDeliver bounds deliveries of one job, retries included (default 5).
	MaxDeliver int
}

func (o WorkerOptions) withDefaults() (WorkerOptions, error) {
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.AckWait == 0 {
		o.AckWait = 30 * time.Second
	}
	if o.MaxDeliver == 0 {
		o.MaxDeliver = 5
	}
	switch {
	case o.Concurrency < 0:
		return o, fmt.Errorf("worker concurrency %d is negative: %w", o.Concurrency, ErrInvalidConfig)
	case o.AckWait < 100*time.Millisecond:
		return o, fmt.Errorf("worker ack wait %s is below 100ms: %w", o.AckWait, ErrInvalidConfig)
	case o.MaxDeliver < 1:
		return o, fmt.Errorf("worker max deliver %d is below 1: %w", o.MaxDeliver, ErrInvalidConfig)
	}
	return o, nil
}

// opTimeout bounds one bookkeeping step of a worker (a record update, an
// event, an ack).
const opTimeout = time.Minute

// fetchWait is how long one pull waits for a job before asking again.
const fetchWait = 30 * time.Second

// ServeJobs runs h for jobs of kind until ctx is done, then waits for the
// running handlers (whose ctx is cancelled, and whose jobs are handed back
// for redelivery unless they finished) and returns nil. It binds to the
// durable consumer named after kind, so every instance serving a kind
// shares its jobs. It returns an error only if it cannot set up or the
// consumer disappears.
func (b *Bus) ServeJobs(ctx context.Context, kind string, h Handler, opts WorkerOptions) error {
	if err := ValidKind(kind); err != nil {
		return err
	}
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, StreamJobs, jetstream.ConsumerConfig{
		Durable:       kind,
		FilterSubject: JobSubject(kind),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    o.MaxDeliver,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("serve %s jobs: consumer: %w", kind, err)
	}
	log := b.log.With("kind", kind)
	log.Info("serving jobs", "concurrency", o.Concurrency, "ack_wait", o.AckWait, "max_deliver", o.MaxDeliver)
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, o.Concurrency)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		fctx, cancel := context.WithTimeout(ctx, fetchWait)
		msg, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if err != nil {
			<-slots
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrNoMessages):
				continue
			case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
				return fmt.Errorf("serve %s jobs: %w", kind, err)
			}
			log.Warn("fetch job", "err", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			b.runJob(ctx, log, kind, msg, h, o)
		}()
	}
}

// runJob handles one delivery. Bookkeeping uses a ctx that outlives the
// worker's so that a stopping worker still hands its job back.
func (b *Bus) runJob(wctx context.Context, log *slog.Logger, kind string, msg jetstream.Msg, h Handler, o WorkerOptions) {
	// Each bookkeeping step gets its own minute: a handler may run for hours.
	base := context.WithoutCancel(wctx)
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	op := func() context.Context {
		c, cancel := context.WithTimeout(base, opTimeout)
		cancels = append(cancels, cancel)
		return c
	}
	attempt := 1
	if md, err := msg.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}

	env := new(busv1.JobEnvelope)
	err := proto.Unmarshal(msg.Data(), env)
	if err == nil {
		if err = ValidJobID(env.Id); err == nil && env.Kind != kind {
			err = fmt.Errorf("envelope kind %q on a %s consumer", env.Kind, kind)
		}
	}
	if err != nil {
		log.Error("malformed job envelope, terminating it", "subject", msg.Subject(), "bytes", len(msg.Data()), "err", err)
		if err := msg.TermWithReason("malformed envelope"); err != nil {
			log.Warn("term malformed envelope", "err", err)
		}
		return
	}
	id := env.Id

	skip := false
	rec, err := b.UpdateJob(op(), id, func(r *busv1.JobRecord) error {
		if Finished(r.State) {
			skip = true
			return errNoChange
		}
		r.State, r.Error = busv1.JobState_JOB_STATE_RUNNING, ""
		r.Attempts++
		return nil
	})
	switch {
	case errors.Is(err, ErrNotFound):
		log.Error("job has no record, terminating it", "job", id)
		_ = msg.TermWithReason("no job record")
		return
	case err != nil:
		log.Warn("mark job running", "job", id, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	case skip:
		log.Info("skipping finished job", "job", id, "state", rec.State)
		_ = msg.Ack()
		return
	}

	jctx, cancel := context.WithCancelCause(context.WithoutCancel(wctx))
	defer cancel(nil)
	stopOnShutdown := context.AfterFunc(wctx, func() { cancel(ErrWorkerStopped) })
	defer stopOnShutdown()
	b.watchCancel(jctx, id, cancel)
	go heartbeat(jctx, msg, o.AckWait/3)

	job := &Job{ID: id, Kind: kind, Spec: env.SpecJson, Parent: env.Parent, Attempt: attempt, Emitter: b.Emitter(id)}
	log.Info("running job", "job", id, "attempt", attempt)
	start := time.Now()
	result, herr := runHandler(jctx, h, job)
	cause := context.Cause(jctx)
	if herr == nil {
		herr = checkResult(result)
	}

	switch {
	case herr == nil:
		b.finishJob(op(), log, msg, id, busv1.JobState_JOB_STATE_SUCCEEDED, result, "")
		log.Info("job succeeded", "job", id, "took", time.Since(start))
	case errors.Is(cause, ErrCancelled):
		log.Info("job cancelled", "job", id, "took", time.Since(start))
		_ = msg.Ack()
	case errors.Is(cause, ErrWorkerStopped):
		log.Info("worker stopping, handing job back", "job", id)
		_, _ = b.UpdateJob(op(), id, func(r *busv1.JobRecord) error {
			if r.State != busv1.JobState_JOB_STATE_RUNNING {
				return errNoChange
			}
			r.State = busv1.JobState_JOB_STATE_QUEUED
			return nil
		})
		_ = msg.Nak()
	case IsRetryable(herr) && attempt < o.MaxDeliver:
		log.Warn("job failed, will retry", "job", id, "attempt", attempt, "err", herr)
		job.Log(fmt.Sprintf("attempt %d failed, retrying: %v", attempt, herr))
		_, _ = b.UpdateJob(op(), id, func(r *busv1.JobRecord) error {
			if r.State != busv1.JobState_JOB_STATE_RUNNING {
				return errNoChange
			}
			r.State, r.Error = busv1.JobState_JOB_STATE_QUEUED, herr.Error()
			return nil
		})
		_ = msg.NakWithDelay(retryDelay(attempt))
	default:
		log.Warn("job failed", "job", id, "attempt", attempt, "err", herr)
		b.finishJob(op(), log, msg, id, busv1.JobState_JOB_STATE_FAILED, nil, herr.Error())
	}
}

func retryDelay(attempt int) time.Duration {
	d := 250 * time.Millisecond << min(attempt-1, 7)
	return min(d, 30*time.Second)
}

func runHandler(ctx context.Context, h Handler, job *Job) (result []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v\n%s", r, debug.Stack())
		}
	}()
	return h(ctx, job)
}

func checkResult(result []byte) error {
	if len(result) > MaxResultSize {
		return fmt.Errorf("job result of %d bytes exceeds %d bytes: %w", len(result), MaxResultSize, ErrTooLarge)
	}
	if len(result) > 0 && !json.Valid(result) {
		return fmt.Errorf("job result is not JSON: %w", ErrMalformed)
	}
	return nil
}

// finishJob records a final state, publishes its event and acknowledges
// (success) or terminates (failure) the message. A job cancelled meanwhile
// stays cancelled.
func (b *Bus) finishJob(ctx context.Context, log *slog.Logger, msg jetstream.Msg, id string, state busv1.JobState, result []byte, errMsg string) {
	cancelled := false
	_, err := b.UpdateJob(ctx, id, func(r *busv1.JobRecord) error {
		if r.State == busv1.JobState_JOB_STATE_CANCELLED {
			cancelled = true
			return errNoChange
		}
		r.State, r.ResultJson, r.Error = state, result, errMsg
		return nil
	})
	if err != nil {
		log.Warn("record job end, will redeliver", "job", id, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if cancelled {
		_ = msg.Ack()
		return
	}
	em := b.Emitter(id)
	if state == busv1.JobState_JOB_STATE_SUCCEEDED {
		err = em.Done(ctx, result)
	} else {
		err = em.Failed(ctx, errMsg)
	}
	if err != nil {
		log.Warn("publish job end event", "job", id, "err", err)
	}
	if state == busv1.JobState_JOB_STATE_SUCCEEDED {
		err = msg.DoubleAck(ctx)
	} else {
		err = msg.Term()
	}
	if err != nil {
		log.Warn("acknowledge job", "job", id, "err", err)
	}
}

// watchCancel cancels ctx with ErrCancelled once the job's record says
// CANCELLED. The watch ends with ctx.
func (b *Bus) watchCancel(ctx context.Context, id string, cancel context.CancelCauseFunc) {
	kv, err := b.kv(ctx, BucketJobs)
	if err != nil {
		b.log.Warn("watch job for cancel", "job", id, "err", err)
		return
	}
	w, err := kv.Watch(ctx, id)
	if err != nil {
		b.log.Warn("watch job for cancel", "job", id, "err", err)
		return
	}
	go func() {
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil || e.Operation() != jetstream.KeyValuePut {
					continue
				}
				rec := new(busv1.JobRecord)
				if proto.Unmarshal(e.Value(), rec) == nil && rec.State == busv1.JobState_JOB_STATE_CANCELLED {
					cancel(ErrCancelled)
					return
				}
			}
		}
	}()
}

// heartbeat tells the server the job is still being worked on.
func heartbeat(ctx context.Context, msg jetstream.Msg, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = msg.InProgress()
		}
	}
}
