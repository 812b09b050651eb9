package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	"github.com/llmesh/llmesh/bus/tensor"
	apiv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/api/v1"
	"github.com/llmesh/llmesh/contracts/gen/llmesh/api/v1/apiv1connect"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

const testToken = "test-token-0123456789"

// maxUpload is small so that the limit is cheap to exceed.
const maxUpload = 1 << 10

type env struct {
	b   *bus.Bus
	url string
	// hc sends the token; anon does not.
	hc, anon *http.Client
}

// withToken adds an Authorization header to every request.
type withToken struct {
	token string
	next  http.RoundTripper
}

func (w withToken) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+w.token)
	return w.next.RoundTrip(r)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	b := bustest.New(t)
	g, err := New(Config{Bus: b, Token: testToken, MaxUpload: maxUpload})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return &env{
		b: b, url: srv.URL, anon: srv.Client(),
		hc: &http.Client{Transport: withToken{testToken, srv.Client().Transport}},
	}
}

func (e *env) jobs(opts ...connect.ClientOption) apiv1connect.JobServiceClient {
	return apiv1connect.NewJobServiceClient(e.hc, e.url, opts...)
}

func (e *env) datasets() apiv1connect.DatasetServiceClient {
	return apiv1connect.NewDatasetServiceClient(e.hc, e.url)
}

// do sends an HTTP request with the token.
func (e *env) do(t *testing.T, method, path, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func wantCode(t *testing.T, what string, err error, want connect.Code) {
	t.Helper()
	if got := connect.CodeOf(err); err == nil || got != want {
		t.Errorf("%s: %v (code %v), want %v", what, err, got, want)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	clients := map[string]*http.Client{
		"no token":    e.anon,
		"wrong token": {Transport: withToken{"wrong-token-0123456789", e.anon.Transport}},
		"bare token": {Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", testToken)
			return e.anon.Transport.RoundTrip(r)
		})},
	}
	for name, hc := range clients {
		t.Run(name, func(t *testing.T) {
			for proto, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc-web": {connect.WithGRPCWeb()}} {
				models := apiv1connect.NewModelServiceClient(hc, e.url, opts...)
				_, err := models.ListModels(ctx, connect.NewRequest(&apiv1.ListModelsRequest{}))
				wantCode(t, proto+" ListModels", err, connect.CodeUnauthenticated)

				jobs := apiv1connect.NewJobServiceClient(hc, e.url, opts...)
				stream, err := jobs.WatchJob(ctx, connect.NewRequest(&apiv1.WatchJobRequest{Id: "x"}))
				if err == nil {
					for stream.Receive() {
					}
					err = stream.Err()
				}
				wantCode(t, proto+" WatchJob", err, connect.CodeUnauthenticated)
			}
			for _, r := range []struct{ method, path, body string }{
				{"GET", "/v1/jobs/x/events", ""},
				{"POST", "/v1/generate", `{"model":"m"}`},
			} {
				req, _ := http.NewRequestWithContext(ctx, r.method, e.url+r.path, strings.NewReader(r.body))
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s %s: status %d, WWW-Authenticate %q; want 401 with a challenge", r.method, r.path, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
				}
			}
		})
	}
	t.Run("health without a token", func(t *testing.T) {
		for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
			resp, err := e.anon.Get(e.url + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != want {
				t.Errorf("GET %s: %d %q, want 200 %q", path, resp.StatusCode, body, want)
			}
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNewRefusesShortToken(t *testing.T) {
	b := bustest.New(t)
	if _, err := New(Config{Bus: b, Token: "short"}); err == nil {
		t.Error("New with a 5-character token succeeded")
	}
	if _, err := New(Config{Token: testToken}); err == nil {
		t.Error("New without a bus succeeded")
	}
	if _, err := New(Config{Bus: b, Token: testToken, MaxUpload: -1}); err == nil {
		t.Error("New with a negative max upload succeeded")
	}
}

func TestJobs(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc-web": {connect.WithGRPCWeb()}} {
		t.Run(name, func(t *testing.T) {
			jobs := e.jobs(opts...)
			spec, _ := structpb.NewStruct(map[string]any{"steps": 3, "model": "m"})
			sub, err := jobs.SubmitJob(ctx, connect.NewRequest(&apiv1.SubmitJobRequest{Kind: "train", Spec: spec, Id: "job-" + name}))
			if err != nil {
				t.Fatal(err)
			}
			j := sub.Msg.Job
			if j.Id != "job-"+name || j.Kind != "train" || j.State != "queued" || j.SubmittedAt == nil {
				t.Errorf("submitted job = %v", j)
			}
			if diff := cmp.Diff(spec, j.Spec, protocmp.Transform()); diff != "" {
				t.Errorf("job spec (-sent +got):\n%s", diff)
			}
			got, err := jobs.GetJob(ctx, connect.NewRequest(&apiv1.GetJobRequest{Id: j.Id}))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(j, got.Msg.Job, protocmp.Transform()); diff != "" {
				t.Errorf("GetJob (-submitted +got):\n%s", diff)
			}

			// Without a spec the job gets an empty one.
			sub2, err := jobs.SubmitJob(ctx, connect.NewRequest(&apiv1.SubmitJobRequest{Kind: "eval"}))
			if err != nil {
				t.Fatal(err)
			}
			if sub2.Msg.Job.Id == "" || sub2.Msg.Job.Kind != "eval" {
				t.Errorf("job without a spec = %v", sub2.Msg.Job)
			}

			ids := func(kind string) []string {
				t.Helper()
				l, err := jobs.ListJobs(ctx, connect.NewRequest(&apiv1.ListJobsRequest{Kind: kind}))
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, j := range l.Msg.Jobs {
					out = append(out, j.Id)
				}
				return out
			}
			if all := ids(""); !slices.Contains(all, j.Id) || !slices.Contains(all, sub2.Msg.Job.Id) {
				t.Errorf("ListJobs() = %v, want both jobs", all)
			}
			if train := ids("train"); !slices.Contains(train, j.Id) || slices.Contains(train, sub2.Msg.Job.Id) {
				t.Errorf("ListJobs(train) = %v, want the train job only", train)
			}

			c, err := jobs.CancelJob(ctx, connect.NewRequest(&apiv1.CancelJobRequest{Id: j.Id}))
			if err != nil {
				t.Fatal(err)
			}
			if c.Msg.Job.State != "cancelled" || c.Msg.Job.Error != "cancelled" {
				t.Errorf("cancelled job = %v", c.Msg.Job)
			}
			_, err = jobs.CancelJob(ctx, connect.NewRequest(&apiv1.CancelJobRequest{Id: j.Id}))
			wantCode(t, "cancel a cancelled job", err, connect.CodeFailedPrecondition)

			_, err = jobs.SubmitJob(ctx, connect.NewRequest(&apiv1.SubmitJobRequest{Kind: "bake"}))
			wantCode(t, "submit an unknown kind", err, connect.CodeInvalidArgument)
			_, err = jobs.SubmitJob(ctx, connect.NewRequest(&apiv1.SubmitJobRequest{Kind: "train", Id: "a.b"}))
			wantCode(t, "submit with a dotted id", err, connect.CodeInvalidArgument)
			_, err = jobs.ListJobs(ctx, connect.NewRequest(&apiv1.ListJobsRequest{Kind: "bake"}))
			wantCode(t, "list an unknown kind", err, connect.CodeInvalidArgument)
			_, err = jobs.GetJob(ctx, connect.NewRequest(&apiv1.GetJobRequest{Id: "job-none"}))
			wantCode(t, "get an unknown id", err, connect.CodeNotFound)
			_, err = jobs.GetJob(ctx, connect.NewRequest(&apiv1.GetJobRequest{Id: "../x"}))
			wantCode(t, "get ../x", err, connect.CodeInvalidArgument)
			_, err = jobs.CancelJob(ctx, connect.NewRequest(&apiv1.CancelJobRequest{Id: "job-none"}))
			wantCode(t, "cancel an unknown id", err, connect.CodeNotFound)
		})
	}
}

// emitAll reports one event of each kind on job id, the last one done.
func emitAll(t *testing.T, b *bus.Bus, id string) {
	t.Helper()
	em := b.Emitter(id)
	em.Metric("loss", 1.5, 10)
	em.Log("hello")
	em.Artifact("checkpoint", "m/step-000010", "sha256-abc", 42)
	if err := em.Done(t.Context(), []byte(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}
}

func TestWatchJob(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc-web": {connect.WithGRPCWeb()}} {
		t.Run(name, func(t *testing.T) {
			id := "job-watch-" + name
			if _, err := e.b.SubmitJob(ctx, "eval", []byte(`{}`), bus.SubmitOptions{ID: id}); err != nil {
				t.Fatal(err)
			}
			e.b.Emitter(id).Progress("eval", 1, 4, "started")

			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			stream, err := e.jobs(opts...).WatchJob(wctx, connect.NewRequest(&apiv1.WatchJobRequest{Id: id}))
			if err != nil {
				t.Fatal(err)
			}
			// The replayed event first, then the ones emitted while watching.
			if !stream.Receive() {
				t.Fatalf("no first event: %v", stream.Err())
			}
			got := []*apiv1.JobEvent{stream.Msg()}
			emitAll(t, e.b, id)
			for stream.Receive() {
				got = append(got, stream.Msg())
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("watch ended with %v", err)
			}
			result, _ := structpb.NewStruct(map[string]any{"ok": true})
			want := []*apiv1.JobEvent{
				{JobId: id, Type: "progress", Stage: "eval", Done: 1, Total: 4, Message: "started"},
				{JobId: id, Type: "metric", Metric: "loss", Value: 1.5, Step: 10},
				{JobId: id, Type: "log", Message: "hello"},
				{JobId: id, Type: "artifact", Stage: "checkpoint", Artifact: "m/step-000010", Ref: "sha256-abc", Total: 42},
				{JobId: id, Type: "done", Result: result},
			}
			if diff := cmp.Diff(want, got, protocmp.Transform(), protocmp.IgnoreFields(&apiv1.JobEvent{}, "time")); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			for _, ev := range got {
				if ev.Time == nil {
					t.Errorf("%s event has no time", ev.Type)
				}
			}
		})
	}
	t.Run("unknown job", func(t *testing.T) {
		stream, err := e.jobs().WatchJob(ctx, connect.NewRequest(&apiv1.WatchJobRequest{Id: "job-none"}))
		if err == nil {
			for stream.Receive() {
			}
			err = stream.Err()
		}
		wantCode(t, "watch an unknown job", err, connect.CodeNotFound)
	})
}

func TestJobEventsSSE(t *testing.T) {
	e := newEnv(t)
	id := "job-sse"
	if _, err := e.b.SubmitJob(t.Context(), "eval", []byte(`{}`), bus.SubmitOptions{ID: id}); err != nil {
		t.Fatal(err)
	}
	emitAll(t, e.b, id)
	resp := e.do(t, "GET", "/v1/jobs/"+id+"/events", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := readSSE(t, resp.Body)
	var types []string
	for _, ev := range events {
		types = append(types, ev.event)
	}
	if diff := cmp.Diff([]string{"metric", "log", "artifact", "done"}, types); diff != "" {
		t.Errorf("SSE event types (-want +got):\n%s", diff)
	}
	var last struct {
		Type   string         `json:"type"`
		Result map[string]any `json:"result"`
	}
	if err := json.Unmarshal([]byte(events[len(events)-1].data), &last); err != nil || last.Type != "done" || last.Result["ok"] != true {
		t.Errorf("done event data %s: %v", events[len(events)-1].data, err)
	}

	for path, want := range map[string]int{"/v1/jobs/job-none/events": 404, "/v1/jobs/a.b/events": 400} {
		if resp := e.do(t, "GET", path, ""); resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

type sseEvent struct{ event, data string }

func readSSE(t *testing.T, r io.Reader) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.event != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDatasets(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ds := e.datasets()
	tests := map[string]struct {
		req     *apiv1.UploadDatasetRequest
		code    connect.Code // 0: success
		docs    int64
		inError string
		wantFmt string
	}{
		"jsonl":                {req: &apiv1.UploadDatasetRequest{Name: "good", Content: []byte("{\"text\":\"a\"}\n\n{\"text\":\"b\",\"id\":2}\n")}, docs: 2, wantFmt: "jsonl"},
		"text":                 {req: &apiv1.UploadDatasetRequest{Name: "prose.v1", Format: "text", Content: []byte("one\ntwo\n\nthree\n\n\n")}, docs: 2, wantFmt: "text"},
		"bad line":             {req: &apiv1.UploadDatasetRequest{Name: "bad", Content: []byte("{\"text\":\"a\"}\nnot json\n")}, code: connect.CodeInvalidArgument, inError: "line 2"},
		"line without text":    {req: &apiv1.UploadDatasetRequest{Name: "bad", Content: []byte("{\"txt\":\"a\"}\n")}, code: connect.CodeInvalidArgument, inError: "line 1"},
		"text not a string":    {req: &apiv1.UploadDatasetRequest{Name: "bad", Content: []byte("{\"text\":3}\n")}, code: connect.CodeInvalidArgument, inError: "line 1"},
		"unknown format":       {req: &apiv1.UploadDatasetRequest{Name: "bad", Format: "csv", Content: []byte("a,b\n")}, code: connect.CodeInvalidArgument, inError: `unknown format "csv"`},
		"path in a name":       {req: &apiv1.UploadDatasetRequest{Name: "../x", Content: []byte("{\"text\":\"a\"}\n")}, code: connect.CodeInvalidArgument, inError: `"../x"`},
		"empty name":           {req: &apiv1.UploadDatasetRequest{Content: []byte("{\"text\":\"a\"}\n")}, code: connect.CodeInvalidArgument},
		"above max upload":     {req: &apiv1.UploadDatasetRequest{Name: "big", Format: "text", Content: make([]byte, maxUpload+1)}, code: connect.CodeResourceExhausted, inError: "exceeds the limit of 1024 bytes"},
		"above the read limit": {req: &apiv1.UploadDatasetRequest{Name: "huge", Format: "text", Content: make([]byte, maxUpload+2<<20)}, code: connect.CodeResourceExhausted},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := ds.UploadDataset(ctx, connect.NewRequest(tc.req))
			if tc.code != 0 {
				wantCode(t, "upload", err, tc.code)
				if err != nil && !strings.Contains(err.Error(), tc.inError) {
					t.Errorf("error %q does not say %q", err, tc.inError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d := res.Msg.Dataset
			if d.Name != tc.req.Name || d.Documents != tc.docs || d.Format != tc.wantFmt || d.Size != int64(len(tc.req.Content)) || d.Ref != bus.RefOf(tc.req.Content) || d.CreatedAt == nil {
				t.Errorf("dataset = %v, want %d documents of %s", d, tc.docs, tc.wantFmt)
			}
			stored, err := e.b.GetObject(ctx, d.Ref)
			if err != nil || string(stored) != string(tc.req.Content) {
				t.Errorf("stored content %q, %v", stored, err)
			}
		})
	}
	l, err := ds.ListDatasets(ctx, connect.NewRequest(&apiv1.ListDatasetsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range l.Msg.Datasets {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{"good", "prose.v1"}, names); diff != "" {
		t.Errorf("datasets (-want +got):\n%s", diff)
	}
}

func TestListModels(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	models := apiv1connect.NewModelServiceClient(e.hc, e.url)
	l, err := models.ListModels(ctx, connect.NewRequest(&apiv1.ListModelsRequest{}))
	if err != nil || len(l.Msg.Models) != 0 {
		t.Fatalf("ListModels on an empty registry = %v, %v", l, err)
	}
	recs := []*busv1.ModelRecord{
		{Name: "alpha", Checkpoint: bus.RefOf([]byte("a")), Tokenizer: bus.RefOf([]byte("t")), ConfigJson: []byte(`{}`), Parameters: 1000, Step: 30, ValLoss: 2.5, JobId: "job-1"},
		{Name: "beta", Checkpoint: bus.RefOf([]byte("b")), Parameters: 2000, Step: 60, ValLoss: 1.25},
	}
	for _, r := range recs {
		if err := e.b.PutModel(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	l, err = models.ListModels(ctx, connect.NewRequest(&apiv1.ListModelsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var want []*apiv1.Model
	for _, r := range recs {
		want = append(want, &apiv1.Model{Name: r.Name, Parameters: r.Parameters, Step: r.Step, ValLoss: r.ValLoss, Checkpoint: r.Checkpoint, CreatedAt: r.CreatedAt})
	}
	if diff := cmp.Diff(want, l.Msg.Models, protocmp.Transform()); diff != "" {
		t.Errorf("models (-want +got):\n%s", diff)
	}
}

// respond answers infer.> like the inference service would: the prompt's
// words back as chunks, or an error for the prompt "fail".
func respond(t *testing.T, b *bus.Bus) {
	t.Helper()
	sub, err := b.Conn().Subscribe("infer.>", func(m *nats.Msg) {
		var req busv1.GenerateRequest
		send := func(c *busv1.GenerateChunk) {
			data, _ := proto.Marshal(c)
			_ = b.Conn().Publish(m.Reply, data)
		}
		if err := proto.Unmarshal(m.Data, &req); err != nil || req.Prompt == "fail" {
			send(&busv1.GenerateChunk{Done: true, FinishReason: "error", Error: "the responder refuses"})
			return
		}
		if req.Prompt == "invalid" {
			send(&busv1.GenerateChunk{Done: true, FinishReason: "error", ErrorCode: "invalid_argument", Error: "max_tokens out of range"})
			return
		}
		words := strings.Fields(req.Prompt)
		for i, w := range words {
			send(&busv1.GenerateChunk{Text: w + " ", Seq: int64(i + 1)})
		}
		send(&busv1.GenerateChunk{Text: fmt.Sprint(req.MaxTokens), Done: true, FinishReason: "length", PromptTokens: int32(len(words)), CompletionTokens: int32(len(words) + 1), Seq: int64(len(words) + 1)})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := b.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestGenerate(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if err := e.b.PutModel(ctx, &busv1.ModelRecord{Name: "m", Checkpoint: bus.RefOf([]byte("m"))}); err != nil {
		t.Fatal(err)
	}

	generate := func(opts []connect.ClientOption, req *apiv1.GenerateRequest) ([]*apiv1.GenerateResponse, error) {
		stream, err := apiv1connect.NewInferenceServiceClient(e.hc, e.url, opts...).Generate(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		var out []*apiv1.GenerateResponse
		for stream.Receive() {
			out = append(out, stream.Msg())
		}
		return out, stream.Err()
	}

	// Before any inference service runs.
	_, err := generate(nil, &apiv1.GenerateRequest{Model: "m", Prompt: "a"})
	wantCode(t, "generate without an inference service", err, connect.CodeUnavailable)
	if resp := e.do(t, "POST", "/v1/generate", `{"model":"m","prompt":"a"}`); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("POST /v1/generate without an inference service: %d, want 503", resp.StatusCode)
	}

	respond(t, e.b)
	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc-web": {connect.WithGRPCWeb()}} {
		t.Run(name, func(t *testing.T) {
			got, err := generate(opts, &apiv1.GenerateRequest{Model: "m", Prompt: "hello big world", MaxTokens: 7})
			if err != nil {
				t.Fatal(err)
			}
			want := []*apiv1.GenerateResponse{
				{Text: "hello "}, {Text: "big "}, {Text: "world "},
				{Text: "7", Done: true, FinishReason: "length", PromptTokens: 3, CompletionTokens: 4},
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("chunks (-want +got):\n%s", diff)
			}
			_, err = generate(opts, &apiv1.GenerateRequest{Model: "nope", Prompt: "a"})
			wantCode(t, "unknown model", err, connect.CodeNotFound)
			_, err = generate(opts, &apiv1.GenerateRequest{Model: "../m", Prompt: "a"})
			wantCode(t, "model ../m", err, connect.CodeInvalidArgument)
			_, err = generate(opts, &apiv1.GenerateRequest{Model: "m", Prompt: "fail"})
			if err == nil || !strings.Contains(err.Error(), "the responder refuses") {
				t.Errorf("refused generation: %v, want the service's message", err)
			}
			wantCode(t, "refused without a code", err, connect.CodeInternal)
			_, err = generate(opts, &apiv1.GenerateRequest{Model: "m", Prompt: "invalid"})
			wantCode(t, "refused as invalid", err, connect.CodeInvalidArgument)
		})
	}

	t.Run("sse", func(t *testing.T) {
		resp := e.do(t, "POST", "/v1/generate", `{"model":"m","prompt":"hello world","max_tokens":5}`)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var text string
		events := readSSE(t, resp.Body)
		for _, ev := range events {
			var c struct {
				Text string `json:"text"`
				Done bool   `json:"done"`
			}
			if err := json.Unmarshal([]byte(ev.data), &c); ev.event != "chunk" || err != nil {
				t.Fatalf("event %q data %s: %v", ev.event, ev.data, err)
			}
			text += c.Text
		}
		if text != "hello world 5" || !strings.Contains(events[len(events)-1].data, `"done":true`) {
			t.Errorf("SSE chunks %v, want text %q ending done", events, "hello world 5")
		}
	})
	t.Run("sse error after the stream started", func(t *testing.T) {
		resp := e.do(t, "POST", "/v1/generate", `{"model":"m","prompt":"fail"}`)
		events := readSSE(t, resp.Body)
		if resp.StatusCode != http.StatusInternalServerError && (len(events) == 0 || events[len(events)-1].event != "error") {
			t.Errorf("refused generation: status %d, events %v", resp.StatusCode, events)
		}
	})
	t.Run("not streamed", func(t *testing.T) {
		resp := e.do(t, "POST", "/v1/generate", `{"model":"m","prompt":"hello world","max_tokens":5,"stream":false}`)
		var got map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %v", resp.StatusCode, err)
		}
		want := map[string]any{"model": "m", "text": "hello world 5", "finish_reason": "length", "prompt_tokens": 2.0, "completion_tokens": 3.0}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("response (-want +got):\n%s", diff)
		}
	})
	for name, tc := range map[string]struct {
		body   string
		status int
		code   string
	}{
		"unknown field":       {`{"model":"m","prompt":"a","temprature":1}`, 400, "invalid_argument"},
		"not json":            {`model=m`, 400, "invalid_argument"},
		"unknown model":       {`{"model":"nope","prompt":"a"}`, 404, "not_found"},
		"no model":            {`{"prompt":"a"}`, 400, "invalid_argument"},
		"refused, unstreamed": {`{"model":"m","prompt":"fail","stream":false}`, 500, "internal"},
		"invalid, unstreamed": {`{"model":"m","prompt":"invalid","stream":false}`, 400, "invalid_argument"},
	} {
		t.Run(name, func(t *testing.T) {
			resp := e.do(t, "POST", "/v1/generate", tc.body)
			var got struct{ Code, Message string }
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != tc.status || got.Code != tc.code || got.Message == "" {
				t.Errorf("POST %s: %d %+v (%v), want %d %s", tc.body, resp.StatusCode, got, err, tc.status, tc.code)
			}
		})
	}
}

func TestLoadToken(t *testing.T) {
	t.Run("env var wins", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte("from-the-file-0123456789\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("LLMESH_TOKEN", "  from-the-env-0123456789 \n")
		tok, created, err := LoadToken(dir)
		if err != nil || tok != "from-the-env-0123456789" || created {
			t.Errorf("LoadToken = %q, %v, %v; want the env var's token", tok, created, err)
		}
	})
	t.Run("short env var refused", func(t *testing.T) {
		t.Setenv("LLMESH_TOKEN", "short")
		if tok, _, err := LoadToken(t.TempDir()); err == nil || !strings.Contains(err.Error(), "at least 16") {
			t.Errorf("LoadToken = %q, %v; want an error about the length", tok, err)
		}
	})
	t.Run("generated once, then reused", func(t *testing.T) {
		t.Setenv("LLMESH_TOKEN", "")
		dir := filepath.Join(t.TempDir(), "data")
		tok, created, err := LoadToken(dir)
		if err != nil || !created || len(tok) < 16 {
			t.Fatalf("first LoadToken = %q, %v, %v; want a new token", tok, created, err)
		}
		fi, err := os.Stat(filepath.Join(dir, TokenFile))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
		}
		again, created, err := LoadToken(dir)
		if err != nil || created || again != tok {
			t.Errorf("second LoadToken = %q, %v, %v; want %q reused", again, created, err, tok)
		}
		other, _, err := LoadToken(t.TempDir())
		if err != nil || other == tok {
			t.Errorf("a second data dir got %q, %v; want a different token", other, err)
		}
	})
	t.Run("short token file refused", func(t *testing.T) {
		t.Setenv("LLMESH_TOKEN", "")
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte("short\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if tok, _, err := LoadToken(dir); err == nil || !strings.Contains(err.Error(), "fewer than 16") {
			t.Errorf("LoadToken = %q, %v; want an error about the length", tok, err)
		}
	})
}

func TestConnectError(t *testing.T) {
	tests := map[string]struct {
		err  error
		want connect.Code // 0: nil
	}{
		"nil":                   {nil, 0},
		"connect error kept":    {connect.NewError(connect.CodePermissionDenied, errors.New("no")), connect.CodePermissionDenied},
		"canceled":              {fmt.Errorf("op: %w", context.Canceled), connect.CodeCanceled},
		"deadline":              {fmt.Errorf("op: %w", context.DeadlineExceeded), connect.CodeDeadlineExceeded},
		"not found":             {fmt.Errorf("model %q: %w", "m", bus.ErrNotFound), connect.CodeNotFound},
		"bus too large":         {fmt.Errorf("x: %w", bus.ErrTooLarge), connect.CodeResourceExhausted},
		"inference queue full":  {&bus.GenerateError{Code: "resource_exhausted", Message: "queue full"}, connect.CodeResourceExhausted},
		"inference deadline":    {&bus.GenerateError{Code: "deadline_exceeded", Message: "late"}, connect.CodeDeadlineExceeded},
		"tensor too large":      {fmt.Errorf("x: %w", tensor.ErrTooLarge), connect.CodeResourceExhausted},
		"unknown kind":          {bus.ValidKind("bake"), connect.CodeInvalidArgument},
		"invalid name":          {bus.ValidName("../x"), connect.CodeInvalidArgument},
		"invalid ref":           {bus.ValidRef("sha1-x"), connect.CodeInvalidArgument},
		"bus malformed":         {fmt.Errorf("x: %w", bus.ErrMalformed), connect.CodeInvalidArgument},
		"tensor malformed":      {fmt.Errorf("x: %w", tensor.ErrMalformed), connect.CodeInvalidArgument},
		"refused by gateway":    {fmt.Errorf("%w: body", errInvalid), connect.CodeInvalidArgument},
		"no responders":         {fmt.Errorf("x: %w", bus.ErrNoResponders), connect.CodeUnavailable},
		"job already finished":  {fmt.Errorf("cancel: %w", bus.ErrFinished), connect.CodeFailedPrecondition},
		"anything else":         {errors.New("disk on fire"), connect.CodeInternal},
		"canceled before other": {fmt.Errorf("%w: %w", context.Canceled, bus.ErrNotFound), connect.CodeCanceled},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := connectError(tc.err)
			if tc.want == 0 {
				if got != nil {
					t.Fatalf("connectError(nil) = %v", got)
				}
				return
			}
			var ce *connect.Error
			if !errors.As(got, &ce) || ce.Code() != tc.want {
				t.Fatalf("connectError(%v) = %v, want code %v", tc.err, got, tc.want)
			}
			if !strings.Contains(got.Error(), tc.err.Error()) && !errors.As(tc.err, new(*connect.Error)) {
				t.Errorf("connectError(%v) = %q lost the message", tc.err, got)
			}
			if !errors.Is(got, tc.err) && !errors.As(tc.err, new(*connect.Error)) {
				t.Errorf("connectError(%v) does not wrap it", tc.err)
			}
		})
	}
}
