package bus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

const wait = 15 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// serve runs a worker until the test ends (or stop is called) and reports
// its return.
func serve(t *testing.T, b *bus.Bus, kind string, h bus.Handler, o bus.WorkerOptions) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.ServeJobs(ctx, kind, h, o) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ServeJobs(%s) = %v", kind, err)
			}
		case <-time.After(wait):
			t.Errorf("ServeJobs(%s) did not return after cancel", kind)
		}
	}
	t.Cleanup(stop)
	return stop
}

func waitState(t *testing.T, b *bus.Bus, id string, want busv1.JobState) *busv1.JobRecord {
	t.Helper()
	var rec *busv1.JobRecord
	bustest.WaitFor(t, wait, func() error {
		var err error
		rec, err = b.GetJob(context.Background(), id)
		if err != nil {
			return err
		}
		if rec.State != want {
			return fmt.Errorf("job %s is %s, want %s", id, rec.State, want)
		}
		return nil
	})
	return rec
}

func collect(t *testing.T, ch <-chan *busv1.Event) []*busv1.Event {
	t.Helper()
	var out []*busv1.Event
	timeout := time.After(wait)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, ev)
		case <-timeout:
			t.Fatalf("event channel still open after %s; got %d events", wait, len(out))
		}
	}
}

func types(evs []*busv1.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func TestSubmitDedupByID(t *testing.T) {
	b := bustest.New(t)
	ctx := testCtx(t)
	first, err := b.SubmitJob(ctx, bus.KindTrain, []byte(`{"steps":1}`), bus.SubmitOptions{ID: "run-1"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.SubmitJob(ctx, bus.KindTrain, []byte(`{"steps":2}`), bus.SubmitOptions{ID: "run-1"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, again, protocmp.Transform()); diff != "" {
		t.Errorf("resubmit changed the record (-first +again):\n%s", diff)
	}
	st, err := b.JetStream().Stream(ctx, bus.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("JOBS holds %d messages after a duplicate submit, want 1", info.State.Msgs)
	}
	gen, err := b.SubmitJob(ctx, bus.KindEval, []byte(`{}`), bus.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.ValidJobID(gen.Id); err != nil || !strings.HasPrefix(gen.Id, "job-") {
		t.Errorf("generated id %q: %v", gen.Id, err)
	}
}

func TestSubmitRejects(t *testing.T) {
	b := bustest.New(t)
	ctx := testCtx(t)
	tests := map[string]struct {
		kind string
		spec []byte
		opts bus.SubmitOptions
		want error
	}{
		"unknown kind": {"bake", []byte(`{}`), bus.SubmitOptions{}, bus.ErrUnknownKind},
		"spec array":   {bus.KindTrain, []byte(`[1]`), bus.SubmitOptions{}, bus.ErrMalformed},
		"spec null":    {bus.KindTrain, []byte(`null`), bus.SubmitOptions{}, bus.ErrMalformed},
		"spec garbage": {bus.KindTrain, []byte(`{`), bus.SubmitOptions{}, bus.ErrMalformed},
		"spec too big": {bus.KindTrain, append(append([]byte(`{"x":"`), bytes.Repeat([]byte("a"), 1<<20)...), `"}`...), bus.SubmitOptions{}, bus.ErrTooLarge},
		"id traversal": {bus.KindTrain, []byte(`{}`), bus.SubmitOptions{ID: "../x"}, bus.ErrInvalidName},
		"id with dot":  {bus.KindTrain, []byte(`{}`), bus.SubmitOptions{ID: "a.b"}, bus.ErrInvalidName},
		"parent slash": {bus.KindTrain, []byte(`{}`), bus.SubmitOptions{Parent: "a/b"}, bus.ErrInvalidName},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := b.SubmitJob(ctx, tc.kind, tc.spec, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Errorf("SubmitJob err = %v, want %v", err, tc.want)
			}
		})
	}
	err := bus.ValidKind("bake")
	if msg := err.Error(); !strings.Contains(msg, `"bake"`) || !strings.Contains(msg, "pipeline, dataprep") {
		t.Errorf("ValidKind message %q should name the kind and the valid ones", msg)
	}
}

func TestValidName(t *testing.T) {
	tests := map[string]struct {
		name string
		ok   bool
	}{
		"plain":      {"gpt-small_v2.1", true},
		"digit":      {"7b", true},
		"max":        {strings.Repeat("a", 64), true},
		"traversal":  {"../x", false},
		"slash":      {"a/b", false},
		"empty":      {"", false},
		"dot":        {".", false},
		"dotdot mid": {"a..b", false},
		"leading -":  {"-a", false},
		"space":      {"a b", false},
		"too long":   {strings.Repeat("a", 65), false},
		"wildcard":   {"a*", false},
		"unicode":    {"模型", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := bus.ValidName(tc.name)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, bus.ErrInvalidName)) {
				t.Errorf("ValidName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
		})
	}
}

func TestWorkerSuccess(t *testing.T) {
	b := bustest.New(t)
	ctx := testCtx(t)
	serve(t, b, bus.KindTokenize, func(ctx context.Context, job *bus.Job) ([]byte, error) {
		job.Progress("encode", 1, 2, "half")
		job.Metric("tokens_per_s", 1e6, 1)
		job.Log("hello")
		job.Artifact("shard", "train-0", bus.RefOf([]byte("x")), 1)
		return []byte(`{"tokens":42,"spec":` + string(job.Spec) + `}`), nil
	}, bus.WorkerOptions{Concurrency: 2})
	rec, err := b.SubmitJob(ctx, bus.KindTokenize, []byte(`{"n":1}`), bus.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := b.WatchEvents(ctx, rec.Id)
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, evs)
	if diff := cmp.Diff([]string{"progress", "metric", "log", "artifact", "done"}, types(got)); diff != "" {
		t.Errorf("event types (-want +got):\n%s", diff)
	}
	done := waitState(t, b, rec.Id, busv1.JobState_JOB_STATE_SUCCEEDED)
	if want := `{"tokens":42,"spec":{"n":1}}`; string(done.ResultJson) != want || done.Attempts != 1 {
		t.Errorf("record result %s attempts %d, want %s attempts 1", done.ResultJson, done.Attempts, want)
	}
	if got[len(got)-1].GetResultJson() == nil {
		t.Errorf("done event carries no result")
	}
}

func TestWorkerFailureAndRetry(t *testing.T) {
	b := bustest.New(t)
	ctx := testCtx(t)
	var calls atomic.Int32
	serve(t, b, bus.KindEval, func(ctx context.Context, job *bus.Job) ([]byte, error) {
		var spec struct{ Mode string }
		_ = jsonUnmarshal(job.Spec, &spec)
		switch spec.Mode {
		case "fail":
			return nil, errors.New("eval set missing")
		case "flaky":
			if calls.Add(1) < 3 {
				return nil, bus.Retryable(errors.New("plugin restarting"))
			}
			return []byte(`{"ok":true}`), nil
		case "panic":
			panic("boom")
		}
		return nil, nil
	}, bus.WorkerOptions{})

	failed, err := b.SubmitJob(ctx, bus.KindEval, []byte(`{"mode":"fail"}`), bus.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := waitState(t, b, failed.Id, busv1.JobState_JOB_STATE_FAILED)
	if rec.Error != "eval set missing" || rec.Attempts != 1 {
		t.Errorf("failed record: error %q attempts %d", rec.Error, rec.Attempts)
	}
	evs, _ := b.WatchEvents(ctx, failed.Id)
	if got := collect(t, evs); len(got) != 1 || got[0].Type != bus.EventFailed || got[0].GetError() != "eval set missing" {
		t.Errorf("failed job events: %v", got)
	}

	flaky, err := b.SubmitJob(ctx, bus.KindEval, []byte(`{"mode":"flaky"}`), bus.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec = waitState(t, b, flaky.Id, busv1.JobState_JOB_STATE_SUCCEEDED)
	if rec.Attempts != 3 {
		t.Errorf("flaky job took %d attempts, want 3", rec.Attempts)
	}

	panicky, err := b.SubmitJob(ctx, bus.KindEval, []byte(`{"mode":"panic"}`), bus.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec = waitState(t, b, panicky.Id, busv1.JobState_JOB_STATE_FAILED)
	if !strings.Contains(rec.Error, "handler panic: boom") {
		t.Errorf("panicking job error %q", rec.Error)
	}
}

func TestWorkerCancel(t *testing.T) {
	b := bustest.New(t)
	ctx := testCtx(t)
	causes := make(chan error, 1)
	serve(t, b, bus.KindTrain, func(ctx context.Context, job *bus.Job) ([]byte, error) {
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil, ctx.Err()
	}, bus.WorkerOptions{})
	rec, err := b.SubmitJob(ctx, bus.KindTrain, []byte(`{}`), bus.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, b, rec.Id, busv1.JobState_JOB_STATE_RUNNING)
	if _, err := b.CancelJob(ctx, rec.Id); err != nil {
		t.Fatal(err)
	}
	select {
	case cause := <-causes:
		if !errors.Is(cause, bus.ErrCancelled) {
			t.Errorf("handler ctx cause = %v, want ErrCancelled", cause)
		}
	case <-time.After(wait):
		t.Fatal("handler ctx not cancelled")
	}
	evs, _ := b.WatchEvents(ctx, rec.Id)
	if got := collect(t, evs); len(got) != 1 || got[0].GetError() != "cancelled" {
		t.Errorf("cancelled job events: %v", got)
	}
	// The worker must not overwrite CANCELLED; wait for it to settle.
	bustest.WaitFor(t, wait, func() error { return consumerIdle(ctx, b, bus.KindTrain) })
	if got := waitState(t, b, rec.Id, busv1.JobState_JOB_STATE_CANCELLED); got.Error != "cancelled" {
		t.Errorf("record error %q", got.Error)
	}
	if _, err := b.CancelJob(ctx, rec.Id); !errors.Is(err, bus.ErrFinished) {
		t.Errorf("second cancel: %v, want ErrFinished", err)
	}
}

func consumerIdle(ctx context.Context, b *bus.Bus, kind string) error {
	c, err := b.JetStream().Consumer(ctx, bus.StreamJobs, kind)
	if err != nil {
		return err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	if info.NumAckPending != 0 || info.NumPending != 0 {
		return fmt.Errorf("consumer %s: %d pending, %d awaiting ack", kind, info.NumPending, info.NumAckPending)
	}
	return nil
}

func TestStoppedWorkerHandsJobToAnother(t *testing.T) {
	srv := bustest.NewServer(t)
	a := bustest.Connect(t, srv)
	ctx := testCtx(t)
	if err := a.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	started := make(chan string, 1)
	stopA := serve(t, a, bus.KindDistill, func(ctx context.Context, job *bus.Job) ([]byte, error) {
		started <- job.ID
		<-ctx.Done()
		return nil, ctx.Err()
	}, bus.WorkerOptions{})
	rec, err := a.SubmitJob(ctx, bus.KindDistill, []byte(`{}`), bus.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(wait):
		t.Fatal("worker A never started the job")
	}
	stopA() // kill A mid-job: it hands the job back

	b := bustest.Connect(t, srv)
	serve(t, b, bus.KindDistill, func(ctx context.Context, job *bus.Job) ([]byte, error) {
		return []byte(fmt.Sprintf(`{"attempt":%d}`, job.Attempt)), nil
	}, bus.WorkerOptions{})
	done := waitState(t, b, rec.Id, busv1.JobState_JOB_STATE_SUCCEEDED)
	if done.Attempts != 2 || string(done.ResultJson) != `{"attempt":2}` {
		t.Errorf("redelivered job: attempts %d result %s, want 2 and attempt 2", done.Attempts, done.ResultJson)
	}
}

func TestCrashedWorkerJobRedeliveredAfterAckWait(t *testing.T) {
	srv := bustest.NewServer(t)
	a := bustest.Connect(t, srv)
	ctx := testCtx(t)
	if err := a.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	opts := bus.WorkerOptions{AckWait: 300 * time.Millisecond}
	serve(t, a, bus.KindPrune, func(ctx context.Context, job *bus.Job) ([]byte, error) {
		started <- struct{}{}
		<-release // hangs; its connection dies under it
		return nil, errors.New("too late")
	}, opts)
	rec, err := a.SubmitJob(ctx, bus.KindPrune, []byte(`{}`), bus.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	a.Close() // the process "crashes": no more acks or heartbeats

	b := bustest.Connect(t, srv)
	serve(t, b, bus.KindPrune, func(ctx context.Context, job *bus.Job) ([]byte, error) {
		return []byte(`{}`), nil
	}, opts)
	if got := waitState(t, b, rec.Id, busv1.JobState_JOB_STATE_SUCCEEDED); got.Attempts != 2 {
		t.Errorf("attempts = %d, want 2", got.Attempts)
	}
}

func TestMalformedEnvelopeTerminated(t *testing.T) {
	b := bustest.New(t)
	ctx := testCtx(t)
	var calls atomic.Int32
	serve(t, b, bus.KindQuantize, func(ctx context.Context, job *bus.Job) ([]byte, error) {
		calls.Add(1)
		return []byte(`{}`), nil
	}, bus.WorkerOptions{})
	for _, garbage := range [][]byte{{0xff, 0xff, 0xff}, []byte("not a protobuf at all")} {
		if _, err := b.JetStream().Publish(ctx, bus.JobSubject(bus.KindQuantize), garbage); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := b.SubmitJob(ctx, bus.KindQuantize, []byte(`{}`), bus.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, b, rec.Id, busv1.JobState_JOB_STATE_SUCCEEDED)
	bustest.WaitFor(t, wait, func() error { return consumerIdle(ctx, b, bus.KindQuantize) })
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	c, _ := b.JetStream().Consumer(ctx, bus.StreamJobs, bus.KindQuantize)
	info, _ := c.Info(ctx)
	if info.NumRedelivered != 0 {
		t.Errorf("malformed envelopes redelivered: %d", info.NumRedelivered)
	}
}

func TestEventsReplayAndClose(t *testing.T) {
	b := bustest.New(t)
	ctx := testCtx(t)
	em := b.Emitter("pipeline-7")
	em.Progress("clean", 10, 100, "")
	em.Metric("loss", 2.5, 3)
	em.Log("line")
	if err := em.Done(ctx, []byte(`{"model":"m"}`)); err != nil {
		t.Fatal(err)
	}
	em.Log("after done") // replay stops at done
	evs, err := b.WatchEvents(ctx, "pipeline-7")
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, evs)
	if diff := cmp.Diff([]string{"progress", "metric", "log", "done"}, types(got)); diff != "" {
		t.Errorf("replayed types (-want +got):\n%s", diff)
	}
	if got[1].GetMetric().GetValue() != 2.5 || got[0].JobId != "pipeline-7" {
		t.Errorf("replayed events: %v", got)
	}
	// A watcher that starts before the events follows them live; one whose
	// ctx ends gets its channel closed.
	wctx, cancel := context.WithCancel(ctx)
	live, err := b.WatchEvents(wctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	b.Emitter("other").Log("live")
	if ev := <-live; ev.GetLog() != "live" {
		t.Errorf("live event %v", ev)
	}
	cancel()
	collect(t, live)
	if _, err := b.WatchEvents(ctx, "a.b"); !errors.Is(err, bus.ErrInvalidName) {
		t.Errorf("WatchEvents(a.b) = %v", err)
	}
}

func TestObjects(t *testing.T) {
	b := bustest.New(t)
	ctx := testCtx(t)
	data := bytes.Repeat([]byte("llmesh "), 100_000) // several chunks
	one, err := b.PutBytes(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	two, err := b.PutObject(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if one != two || one.Ref != bus.RefOf(data) || one.Size != int64(len(data)) {
		t.Errorf("puts of the same content: %+v and %+v, want ref %s", one, two, bus.RefOf(data))
	}
	got, err := b.GetObject(ctx, one.Ref)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetObject: %d bytes, %v", len(got), err)
	}
	obs, _ := b.JetStream().ObjectStore(ctx, bus.ObjectStoreArtifacts)
	lister, err := obs.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(lister) != 1 {
		t.Errorf("store holds %d objects after two puts of one content, want 1", len(lister))
	}
	if _, err := b.GetObject(ctx, bus.RefOf([]byte("absent"))); !errors.Is(err, bus.ErrNotFound) {
		t.Errorf("missing object: %v", err)
	}
	for _, ref := range []string{"sha256-xyz", "md5-" + strings.Repeat("0", 64), "../x", ""} {
		if _, err := b.GetObject(ctx, ref); !errors.Is(err, bus.ErrInvalidRef) {
			t.Errorf("GetObject(%q) = %v, want ErrInvalidRef", ref, err)
		}
	}
	empty, err := b.PutObject(ctx, strings.NewReader(""))
	if err != nil || empty.Size != 0 {
		t.Errorf("empty object: %+v %v", empty, err)
	}
}

func TestObjectTooLarge(t *testing.T) {
	srv := bustest.NewServer(t)
	ctx := testCtx(t)
	b, err := bus.Connect(ctx, bus.Config{URL: srv.ClientURL(), MaxObjectSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutObject(ctx, bytes.NewReader(make([]byte, 1001))); !errors.Is(err, bus.ErrTooLarge) {
		t.Errorf("PutObject over the limit: %v", err)
	}
	if _, err := b.PutBytes(ctx, make([]byte, 1001)); !errors.Is(err, bus.ErrTooLarge) {
		t.Errorf("PutBytes over the limit: %v", err)
	}
	if _, err := b.PutObject(ctx, bytes.NewReader(make([]byte, 1000))); err != nil {
		t.Errorf("PutObject at the limit: %v", err)
	}
}

func TestRegistries(t *testing.T) {
	b := bustest.New(t)
	ctx := testCtx(t)
	ref := bus.RefOf([]byte("corpus"))
	for _, name := range []string{"zh-contracts", "en-judgments"} {
		if err := b.PutDataset(ctx, &busv1.DatasetRecord{Name: name, Ref: ref, Size: 6, Format: "jsonl"}); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := b.ListDatasets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].Name != "en-judgments" || ds[0].CreatedAt == nil {
		t.Errorf("ListDatasets = %v", ds)
	}
	d, err := b.GetDataset(ctx, "zh-contracts")
	if err != nil || d.Ref != ref {
		t.Errorf("GetDataset = %v, %v", d, err)
	}
	if _, err := b.GetDataset(ctx, "absent"); !errors.Is(err, bus.ErrNotFound) || !strings.Contains(err.Error(), `"absent"`) {
		t.Errorf("GetDataset(absent) = %v", err)
	}
	if err := b.PutDataset(ctx, &busv1.DatasetRecord{Name: "../x"}); !errors.Is(err, bus.ErrInvalidName) {
		t.Errorf("PutDataset(../x) = %v", err)
	}
	if err := b.PutDataset(ctx, &busv1.DatasetRecord{Name: "d", Ref: "nope"}); !errors.Is(err, bus.ErrInvalidRef) {
		t.Errorf("PutDataset(bad ref) = %v", err)
	}

	if err := b.PutModel(ctx, &busv1.ModelRecord{Name: "legal-gpt", Checkpoint: ref, Parameters: 1e6}); err != nil {
		t.Fatal(err)
	}
	m, err := b.GetModel(ctx, "legal-gpt")
	if err != nil || m.Parameters != 1e6 {
		t.Errorf("GetModel = %v, %v", m, err)
	}
	ms, err := b.ListModels(ctx)
	if err != nil || len(ms) != 1 {
		t.Errorf("ListModels = %v, %v", ms, err)
	}
	if err := b.PutModel(ctx, &busv1.ModelRecord{Name: "m", Tokenizer: "bad"}); !errors.Is(err, bus.ErrInvalidRef) {
		t.Errorf("PutModel(bad tokenizer ref) = %v", err)
	}
	if _, err := b.GetModel(ctx, "a/b"); !errors.Is(err, bus.ErrInvalidName) {
		t.Errorf("GetModel(a/b) = %v", err)
	}
}

func TestListJobsNewestFirst(t *testing.T) {
	b := bustest.New(t)
	ctx := testCtx(t)
	var ids []string
	for i, kind := range []string{bus.KindTrain, bus.KindEval, bus.KindTrain} {
		rec, err := b.SubmitJob(ctx, kind, []byte(`{}`), bus.SubmitOptions{ID: fmt.Sprintf("j%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.Id)
	}
	trains, err := b.ListJobs(ctx, bus.KindTrain)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range trains {
		got = append(got, r.Id)
	}
	if diff := cmp.Diff([]string{"j2", "j0"}, got); diff != "" {
		t.Errorf("ListJobs(train) (-want +got):\n%s", diff)
	}
	all, _ := b.ListJobs(ctx, "")
	if len(all) != 3 {
		t.Errorf("ListJobs(all) has %d jobs", len(all))
	}
	if _, err := b.GetJob(ctx, "nope"); !errors.Is(err, bus.ErrNotFound) {
		t.Errorf("GetJob(nope) = %v", err)
	}
}

func TestServerConfigAndInProcess(t *testing.T) {
	tests := map[string]bus.ServerConfig{
		"no data dir":   {Port: -1},
		"bad port":      {DataDir: "x", Port: 70000},
		"small payload": {DataDir: "x", MaxPayload: 1000},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := bus.StartServer(cfg); !errors.Is(err, bus.ErrInvalidConfig) {
				t.Errorf("StartServer = %v, want ErrInvalidConfig", err)
			}
		})
	}
	srv, err := bus.StartServer(bus.ServerConfig{DataDir: t.TempDir(), InProcess: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if srv.ClientURL() != "" {
		t.Errorf("in-process server has URL %q", srv.ClientURL())
	}
	ctx := testCtx(t)
	b, err := bus.Connect(ctx, bus.Config{Server: srv})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Setup(ctx); err != nil {
		t.Fatalf("second Setup: %v", err)
	}
	if _, err := b.KeyValue(ctx, bus.BucketShards); err != nil {
		t.Error(err)
	}
	if _, err := bus.Connect(ctx, bus.Config{}); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Errorf("Connect without URL = %v", err)
	}
}
