package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/llmesh/llmesh/accel/acceltest"
	apiv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/api/v1"
	"github.com/llmesh/llmesh/contracts/gen/llmesh/api/v1/apiv1connect"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/pipeline"
)

// The test binary doubles as the plugin binary (go-plugin's re-exec
// pattern): with LLMESH_TEST_PLUGIN set it serves that built-in backend.
func TestMain(m *testing.M) {
	acceltest.ServeIfReexec(builtinBackends)
	os.Exit(m.Run())
}

var testPluginCommand = acceltest.Reexec

// tinyPipeline is the demo pipeline at a size that runs in seconds.
const tinyPipeline = `
name: tiny
dataset: {builtin: demo, documents: 120, seed: 3}
tokenizer: {vocab_size: 320}
train:
  model: tiny-model
  config: {n_ctx: 16, n_embd: 32, n_layer: 1, n_head: 2}
  steps: %d
  batch: 8
  lr: 0.01
  eval_every: 10
  checkpoint_every: %d
  log_every: 5
  seed: 1
generate: {prompts: ["第一条"], max_tokens: 12}
`

type testStack struct {
	*stack
	addr, token string
}

func startTestStack(t *testing.T) *testStack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	t.Setenv("LLMESH_TOKEN", "test-token-0123456789")
	st, err := startStack(ctx, stackConfig{
		DataDir: t.TempDir(), Services: Services, Addr: "127.0.0.1:0",
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		PluginCommand: testPluginCommand,
		GatewayReady:  func(addr, token string, _ bool) { ready <- [2]string{addr, token} },
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(); cancel() })
	select {
	case r := <-ready:
		return &testStack{stack: st, addr: "http://" + r[0], token: r[1]}
	case err := <-st.Err():
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not start")
	}
	return nil
}

func runTiny(t *testing.T, st *stack, steps, ckptEvery int, onEvent func(*busv1.Event)) *pipelineResult {
	t.Helper()
	js, _, err := pipeline.ParseYAML([]byte(fmt.Sprintf(tinyPipeline, steps, ckptEvery)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p := newProgress(io.Discard, false)
	p.onEvent = onEvent
	res, err := runPipeline(ctx, st, js, p)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestPipelineEndToEnd(t *testing.T) {
	st := startTestStack(t)
	res := runTiny(t, st.stack, 60, 20, nil)

	if res.Documents == 0 || res.CorpusBytes == 0 || res.VocabSize != 320 || res.Parameters == 0 {
		t.Errorf("summary lacks sizes: %+v", res.Summary)
	}
	if !(res.FinalValLoss < res.InitialValLoss-0.3) {
		t.Errorf("validation loss %.4f -> %.4f: not clearly lower", res.InitialValLoss, res.FinalValLoss)
	}
	if len(res.Samples) != 1 || res.Samples[0].CompletionTokens == 0 {
		t.Errorf("samples = %+v, want one non-empty", res.Samples)
	}
	if len(res.Stages) != 4 {
		t.Errorf("stages = %d, want dataprep, tokenize, train, generate", len(res.Stages))
	}

	// The gateway: the token is required everywhere but health.
	hc := http.DefaultClient
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/llmesh.api.v1.ModelService/ListModels": 401, "/metrics": 401} {
		resp, err := hc.Post(st.addr+path, "application/json", strings.NewReader("{}"))
		if path != "/llmesh.api.v1.ModelService/ListModels" {
			if err == nil {
				resp.Body.Close()
			}
			resp, err = hc.Get(st.addr + path)
		}
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s without token: status %d, want %d", path, resp.StatusCode, want)
		}
	}
	// The trainer's metrics, Prometheus text, behind the token.
	mreq, _ := http.NewRequest("GET", st.addr+"/metrics", nil)
	mreq.Header.Set("Authorization", "Bearer "+st.token)
	if resp, err := hc.Do(mreq); err != nil {
		t.Fatal(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("/metrics: status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		t.Logf("/metrics:\n%s", body)
	}
	auth := connect.WithInterceptors(bearer(st.token))
	models := apiv1connect.NewModelServiceClient(hc, st.addr, auth)
	ctx := context.Background()
	ml, err := models.ListModels(ctx, connect.NewRequest(&apiv1.ListModelsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Msg.Models) != 1 || ml.Msg.Models[0].Name != "tiny-model" {
		t.Fatalf("models = %v", ml.Msg.Models)
	}
	unauth := apiv1connect.NewModelServiceClient(hc, st.addr)
	if _, err := unauth.ListModels(ctx, connect.NewRequest(&apiv1.ListModelsRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("ListModels without token: %v, want unauthenticated", err)
	}

	// Generation through the gateway, streamed, over Connect and gRPC.
	for name, opts := range map[string][]connect.ClientOption{"connect": {auth}, "grpc-web": {auth, connect.WithGRPCWeb()}} {
		inf := apiv1connect.NewInferenceServiceClient(hc, st.addr, opts...)
		stream, err := inf.Generate(ctx, connect.NewRequest(&apiv1.GenerateRequest{Model: "tiny-model", Prompt: "第一条", MaxTokens: 10}))
		if err != nil {
			t.Fatal(err)
		}
		var chunks int
		var last *apiv1.GenerateResponse
		for stream.Receive() {
			chunks++
			last = stream.Msg()
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("%s: generate: %v", name, err)
		}
		if last == nil || !last.Done || last.CompletionTokens == 0 {
			t.Errorf("%s: generate ended with %v after %d chunks", name, last, chunks)
		}
	}

	// Same seed, same text.
	gen := func() string {
		req, _ := http.NewRequest("POST", st.addr+"/v1/generate", strings.NewReader(`{"model":"tiny-model","prompt":"第一条","max_tokens":8,"temperature":0.8,"seed":5,"stream":false}`))
		req.Header.Set("Authorization", "Bearer "+st.token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Text string }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST /v1/generate: %d %v", resp.StatusCode, err)
		}
		return out.Text
	}
	if a, b := gen(), gen(); a != b {
		t.Errorf("seeded sampling differs: %q vs %q", a, b)
	}

	// Watching the finished pipeline replays its events over SSE.
	req, _ := http.NewRequest("GET", st.addr+"/v1/jobs/"+res.Job+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+st.token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			types = append(types, ev)
		}
	}
	resp.Body.Close()
	if len(types) < 5 || types[len(types)-1] != "done" {
		t.Errorf("SSE events = %v, want several ending in done", types)
	}

	// plugins status and swap: the generate stage loaded the model.
	var out strings.Builder
	if err := pluginsStatus(t.Context(), st.bus, &out); err != nil || !strings.Contains(out.String(), "tiny-model") {
		t.Fatalf("plugins status: %v\n%s", err, out.String())
	}
	before := gen()
	out.Reset()
	if err := pluginsSwap(t.Context(), st.bus, "tiny-model", "cpu", &out); err != nil || !strings.Contains(out.String(), "tiny-model: cpu (pid ") {
		t.Fatalf("plugins swap: %v\n%s", err, out.String())
	}
	if after := gen(); after != before {
		t.Errorf("after swapping cpu -> cpu: %q, want %q", after, before)
	}
	out.Reset()
	if err := pluginsSwap(t.Context(), st.bus, "tiny-model", "nope", &out); err == nil || !strings.Contains(out.String(), "failed") {
		t.Errorf("plugins swap to a backend that does not exist: %v\n%s", err, out.String())
	}
}

// bearer adds the API token to unary and streaming calls.
type bearer string

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func TestBadInput(t *testing.T) {
	st := startTestStack(t)
	ctx := context.Background()
	auth := connect.WithInterceptors(bearer(st.token))
	jobs := apiv1connect.NewJobServiceClient(http.DefaultClient, st.addr, auth)
	datasets := apiv1connect.NewDatasetServiceClient(http.DefaultClient, st.addr, auth)
	inf := apiv1connect.NewInferenceServiceClient(http.DefaultClient, st.addr, auth)

	spec, _ := structpb.NewStruct(map[string]any{"x": 1})
	if _, err := jobs.SubmitJob(ctx, connect.NewRequest(&apiv1.SubmitJobRequest{Kind: "bake", Spec: spec})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("unknown kind: %v, want invalid_argument", err)
	}
	if _, err := datasets.UploadDataset(ctx, connect.NewRequest(&apiv1.UploadDatasetRequest{Name: "../x", Content: []byte(`{"text":"a"}`)})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("dataset ../x: %v, want invalid_argument", err)
	}
	if _, err := datasets.UploadDataset(ctx, connect.NewRequest(&apiv1.UploadDatasetRequest{Name: "bad", Content: []byte("not json\n")})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("malformed dataset: %v, want invalid_argument", err)
	}
	big := make([]byte, 65<<20)
	if _, err := datasets.UploadDataset(ctx, connect.NewRequest(&apiv1.UploadDatasetRequest{Name: "big", Content: big})); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("oversized upload: %v, want resource_exhausted", err)
	}
	stream, err := inf.Generate(ctx, connect.NewRequest(&apiv1.GenerateRequest{Model: "nope", Prompt: "x"}))
	if err == nil {
		for stream.Receive() {
		}
		err = stream.Err()
	}
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("unknown model: %v, want not_found", err)
	}
	if _, err := jobs.GetJob(ctx, connect.NewRequest(&apiv1.GetJobRequest{Id: "../etc"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("job id ../etc: %v, want invalid_argument", err)
	}

	// A pipeline spec with a typo fails its job with a clear error; the
	// upload of a good dataset is kept.
	if _, err := datasets.UploadDataset(ctx, connect.NewRequest(&apiv1.UploadDatasetRequest{Name: "good", Content: []byte("{\"text\":\"第一条 甲方\"}\n")})); err != nil {
		t.Fatal(err)
	}
	bad, _ := structpb.NewStruct(map[string]any{"dataset": map[string]any{"input": "good"}, "trian": map[string]any{}})
	sub, err := jobs.SubmitJob(ctx, connect.NewRequest(&apiv1.SubmitJobRequest{Kind: "pipeline", Spec: bad}))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := jobs.GetJob(ctx, connect.NewRequest(&apiv1.GetJobRequest{Id: sub.Msg.Job.Id}))
		if err != nil {
			t.Fatal(err)
		}
		if got.Msg.Job.State == "failed" {
			if !strings.Contains(got.Msg.Job.Error, "trian") {
				t.Errorf("failed pipeline error %q does not name the unknown field", got.Msg.Job.Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipeline with a bad spec is %s, want failed", got.Msg.Job.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	list, err := datasets.ListDatasets(ctx, connect.NewRequest(&apiv1.ListDatasetsRequest{}))
	if err != nil || len(list.Msg.Datasets) != 1 {
		t.Errorf("datasets after bad input = %v, %v; want the one good upload", list.Msg.GetDatasets(), err)
	}

	for name, y := range map[string]string{
		"not yaml":       "dataset: [unclosed",
		"not a mapping":  "- a\n- b\n",
		"unknown field":  "dataset: {builtin: demo}\ntrain: {config: {n_ctx: 8}}\nstpes: 3\n",
		"path in a name": "name: ../x\ndataset: {builtin: demo}\ntrain: {config: {n_ctx: 8}}\n",
	} {
		if _, _, err := pipeline.ParseYAML([]byte(y)); err == nil {
			t.Errorf("ParseYAML(%s) = nil error", name)
		}
	}
}

// TestPluginKilledDuringTraining kills the cpu plugin mid-run: the shard
// restarts it, resumes from the last checkpoint and finishes.
func TestPluginKilledDuringTraining(t *testing.T) {
	st := startTestStack(t)
	killed := false
	var pid int
	res := runTiny(t, st.stack, 300, 10, func(ev *busv1.Event) {
		if l, ok := ev.Body.(*busv1.Event_Log); ok {
			fmt.Sscanf(l.Log[strings.Index(l.Log, "(pid ")+1:], "pid %d)", &pid)
		}
		if a, ok := ev.Body.(*busv1.Event_Artifact); ok && !killed && pid > 0 && a.Artifact.Kind == "checkpoint" && strings.HasSuffix(a.Artifact.Name, "step-000010") {
			killed = true
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				t.Errorf("kill plugin %d: %v", pid, err)
			}
		}
	})
	if !killed {
		t.Fatalf("never saw the plugin pid and the step-10 checkpoint")
	}
	if res.PluginRestarts < 1 {
		t.Errorf("plugin restarts = %d, want at least 1", res.PluginRestarts)
	}
	if !(res.FinalValLoss < res.InitialValLoss) {
		t.Errorf("validation loss %.4f -> %.4f after a restart", res.InitialValLoss, res.FinalValLoss)
	}
}
