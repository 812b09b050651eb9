package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// MaxSpecSize bounds a job spec; MaxResultSize a job result.
const (
	MaxSpecSize   = 1 << 20
	MaxResultSize = 1 << 20
)

// SubmitOptions are the optional parts of a submit.
type SubmitOptions struct {
	// ID of the job; generated when empty. Submitting an id that exists
	// returns the existing record unchanged.
	ID string
	// Parent is the id of the job (a pipeline) submitting this one.
	Parent string
}

// NewJobID returns a fresh job id: job-<unix nanos in base 36>-<8 hex>,
// which sorts by creation time.
func NewJobID() string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return "job-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + hex.EncodeToString(r[:])
}

// Finished reports whether a job in state s will not change any more.
func Finished(s busv1.JobState) bool {
	return s == busv1.JobState_JOB_STATE_SUCCEEDED || s == busv1.JobState_JOB_STATE_FAILED || s == busv1.JobState_JOB_STATE_CANCELLED
}

func checkSpec(spec []byte) error {
	if len(spec) > MaxSpecSize {
		return fmt.Errorf("job spec of %d bytes exceeds %d bytes: %w", len(spec), MaxSpecSize, ErrTooLarge)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(spec, &obj); err != nil || obj == nil {
		return fmt.Errorf("job spec is not a JSON object: %w", ErrMalformed)
	}
	return nil
}

// SubmitJob records a job of kind as QUEUED in the jobs bucket and
// publishes its envelope on jobs.<kind>. spec must be a JSON object of at
// most MaxSpecSize bytes. If a job with opts.ID exists, its record is
// returned unchanged (and, if still QUEUED, its envelope re-published under
// the same Nats-Msg-Id, which the stream's duplicate window collapses).
func (b *Bus) SubmitJob(ctx context.Context, kind string, spec []byte, opts SubmitOptions) (*busv1.JobRecord, error) {
	if err := ValidKind(kind); err != nil {
		return nil, err
	}
	if err := checkSpec(spec); err != nil {
		return nil, err
	}
	id := opts.ID
	if id == "" {
		id = NewJobID()
	} else if err := ValidJobID(id); err != nil {
		return nil, err
	}
	if opts.Parent != "" {
		if err := ValidJobID(opts.Parent); err != nil {
			return nil, fmt.Errorf("parent: %w", err)
		}
	}
	kv, err := b.kv(ctx, BucketJobs)
	if err != nil {
		return nil, err
	}
	now := timestamppb.Now()
	rec := &busv1.JobRecord{
		Id: id, Kind: kind, State: busv1.JobState_JOB_STATE_QUEUED,
		SpecJson: spec, SubmittedAt: now, UpdatedAt: now, Parent: opts.Parent,
	}
	data, err := proto.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if _, err := kv.Create(ctx, id, data); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("submit job %s: %w", id, err)
		}
		existing, err := b.GetJob(ctx, id)
		if err != nil {
			return nil, err
		}
		if existing.State == busv1.JobState_JOB_STATE_QUEUED {
			if err := b.publishEnvelope(ctx, existing); err != nil {
				return nil, err
			}
		}
		return existing, nil
	}
	if err := b.publishEnvelope(ctx, rec); err != nil {
		// Do not leave a QUEUED record that no worker will ever see.
		msg := err.Error()
		_, _ = b.UpdateJob(context.WithoutCancel(ctx), id, func(r *busv1.JobRecord) error {
			if r.State != busv1.JobState_JOB_STATE_QUEUED {
				return errNoChange
			}
			r.State, r.Error = busv1.JobState_JOB_STATE_FAILED, msg
			return nil
		})
		return nil, err
	}
	b.log.Info("submitted job", "id", id, "kind", kind, "parent", opts.Parent)
	return rec, nil
}

func (b *Bus) publishEnvelope(ctx context.Context, rec *busv1.JobRecord) error {
	env := &busv1.JobEnvelope{Id: rec.Id, Kind: rec.Kind, SpecJson: rec.SpecJson, SubmittedAt: rec.SubmittedAt, Parent: rec.Parent}
	data, err := proto.Marshal(env)
	if err != nil {
		return err
	}
	if _, err := b.js.Publish(ctx, JobSubject(rec.Kind), data, jetstream.WithMsgID(rec.Id)); err != nil {
		return fmt.Errorf("publish job %s on %s: %w", rec.Id, JobSubject(rec.Kind), err)
	}
	return nil
}

// GetJob returns the record of job id; ErrNotFound if there is none.
func (b *Bus) GetJob(ctx context.Context, id string) (*busv1.JobRecord, error) {
	if err := ValidJobID(id); err != nil {
		return nil, err
	}
	rec, _, err := b.getJob(ctx, id)
	return rec, err
}

func (b *Bus) getJob(ctx context.Context, id string) (*busv1.JobRecord, uint64, error) {
	kv, err := b.kv(ctx, BucketJobs)
	if err != nil {
		return nil, 0, err
	}
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get job %q: %w", id, err)
	}
	rec := new(busv1.JobRecord)
	if err := proto.Unmarshal(e.Value(), rec); err != nil {
		return nil, 0, fmt.Errorf("job %q record: %v: %w", id, err, ErrMalformed)
	}
	return rec, e.Revision(), nil
}

// ListJobs returns the jobs of kind ("" for all kinds), newest first. It
// reads every record; fine for thousands of jobs, not millions.
func (b *Bus) ListJobs(ctx context.Context, kind string) ([]*busv1.JobRecord, error) {
	if kind != "" {
		if err := ValidKind(kind); err != nil {
			return nil, err
		}
	}
	kv, err := b.kv(ctx, BucketJobs)
	if err != nil {
		return nil, err
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer lister.Stop()
	var out []*busv1.JobRecord
	for key := range lister.Keys() {
		rec, _, err := b.getJob(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		if kind == "" || rec.Kind == kind {
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, c *busv1.JobRecord) int {
		if r := c.SubmittedAt.AsTime().Compare(a.SubmittedAt.AsTime()); r != 0 {
			return r
		}
		return strings.Compare(c.Id, a.Id)
	})
	return out, nil
}

// errNoChange, returned by an UpdateJob function, leaves the record as it
// is and makes UpdateJob return it without error.
var errNoChange = errors.New("no change")

// maxUpdateTries bounds UpdateJob's optimistic retries.
const maxUpdateTries = 32

// UpdateJob applies fn to the job's record and stores it if the record did
// not change meanwhile (compare-and-set on the KV revision), retrying with
// a fresh record otherwise; fn may run several times. An error from fn
// aborts the update and is returned. UpdatedAt is set by UpdateJob.
func (b *Bus) UpdateJob(ctx context.Context, id string, fn func(*busv1.JobRecord) error) (*busv1.JobRecord, error) {
	if err := ValidJobID(id); err != nil {
		return nil, err
	}
	kv, err := b.kv(ctx, BucketJobs)
	if err != nil {
		return nil, err
	}
	for try := 0; try < maxUpdateTries; try++ {
		rec, rev, err := b.getJob(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := fn(rec); errors.Is(err, errNoChange) {
			return rec, nil
		} else if err != nil {
			return rec, err
		}
		rec.Id = id
		rec.UpdatedAt = timestamppb.Now()
		data, err := proto.Marshal(rec)
		if err != nil {
			return nil, err
		}
		_, err = kv.Update(ctx, id, data, rev)
		if err == nil {
			return rec, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("update job %q: %w", id, err)
		}
	}
	return nil, fmt.Errorf("update job %q: record changed %d times under us", id, maxUpdateTries)
}

// CancelJob marks a job CANCELLED and publishes its failed event with error
// "cancelled"; a worker running it sees its ctx cancelled with cause
// ErrCancelled. A job that already finished is returned with an error
// wrapping ErrFinished.
func (b *Bus) CancelJob(ctx context.Context, id string) (*busv1.JobRecord, error) {
	var finished busv1.JobState
	rec, err := b.UpdateJob(ctx, id, func(r *busv1.JobRecord) error {
		if Finished(r.State) {
			finished = r.State
			return errNoChange
		}
		finished = 0
		r.State, r.Error = busv1.JobState_JOB_STATE_CANCELLED, "cancelled"
		return nil
	})
	if err != nil {
		return nil, err
	}
	if finished != 0 {
		return rec, fmt.Errorf("cancel job %q in state %s: %w", id, finished, ErrFinished)
	}
	if err := b.Emitter(id).emit(ctx, EventFailed, &busv1.Event{Body: &busv1.Event_Error{Error: "cancelled"}}); err != nil {
		return rec, err
	}
	b.log.Info("cancelled job", "id", id)
	return rec, nil
}
