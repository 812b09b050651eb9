package gateway

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// echoResponder answers infer.> like the inference service would: the
// prompt back, word by word with the whitespace after each word, one token
// per chunk, at most MaxTokens of them (finish_reason "length", else
// "stop"). A prompt holding "error:<code>" is refused with that code.
type echoResponder struct {
	mu   sync.Mutex
	last *busv1.GenerateRequest
}

var (
	echoWords = regexp.MustCompile(`\S+\s*`)
	echoError = regexp.MustCompile(`error:([a-z_]*)`)
)

func respondEcho(t *testing.T, b *bus.Bus) *echoResponder {
	t.Helper()
	er := &echoResponder{}
	sub, err := b.Conn().Subscribe("infer.>", func(m *nats.Msg) {
		send := func(c *busv1.GenerateChunk) {
			data, _ := proto.Marshal(c)
			_ = b.Conn().Publish(m.Reply, data)
		}
		var req busv1.GenerateRequest
		if err := proto.Unmarshal(m.Data, &req); err != nil {
			send(&busv1.GenerateChunk{Done: true, FinishReason: "error", Error: err.Error()})
			return
		}
		er.mu.Lock()
		er.last = &req
		er.mu.Unlock()
		if m := echoError.FindStringSubmatch(req.Prompt); m != nil {
			code := m[1]
			send(&busv1.GenerateChunk{Done: true, FinishReason: "error", ErrorCode: code, Error: "the responder refuses with " + code})
			return
		}
		words := echoWords.FindAllString(req.Prompt, -1)
		n, finish := len(words), "stop"
		if req.MaxTokens > 0 && int(req.MaxTokens) < n {
			n, finish = int(req.MaxTokens), "length"
		}
		for i, w := range words[:n] {
			send(&busv1.GenerateChunk{Text: w, TokenIds: []int32{int32(i)}, Seq: int64(i + 1)})
		}
		send(&busv1.GenerateChunk{Done: true, FinishReason: finish, PromptTokens: int32(len(words)), CompletionTokens: int32(n), Seq: int64(n + 1)})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := b.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	return er
}

// lastRequest is the last request the responder got.
func (er *echoResponder) lastRequest() *busv1.GenerateRequest {
	er.mu.Lock()
	defer er.mu.Unlock()
	return er.last
}

// newOpenAIEnv is a gateway with the model "m" and the echo responder.
func newOpenAIEnv(t *testing.T) (*env, *echoResponder) {
	t.Helper()
	e := newEnv(t)
	if err := e.b.PutModel(t.Context(), &busv1.ModelRecord{Name: "m", Checkpoint: bus.RefOf([]byte("m"))}); err != nil {
		t.Fatal(err)
	}
	return e, respondEcho(t, e.b)
}

// decodeJSON reads a response body as generic JSON.
func decodeJSON(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatalf("status %d: body is not a JSON object: %v", resp.StatusCode, err)
	}
	return got
}

// readData reads an OpenAI SSE stream: the data of each event.
func readData(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, line)
		} else if sc.Text() != "" {
			t.Errorf("SSE line %q is neither data nor blank", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// stripIDs checks and removes the fields that differ on every call.
func stripIDs(t *testing.T, got map[string]any, prefix string) {
	t.Helper()
	if id, _ := got["id"].(string); !strings.HasPrefix(id, prefix) || len(id) <= len(prefix) {
		t.Errorf("id %v, want %s…", got["id"], prefix)
	}
	if c, _ := got["created"].(float64); time.Since(time.Unix(int64(c), 0)) > time.Hour {
		t.Errorf("created %v is not now", got["created"])
	}
	delete(got, "id")
	delete(got, "created")
}

func TestOpenAIAuthentication(t *testing.T) {
	e, _ := newOpenAIEnv(t)
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/models", ""},
		{"GET", "/v1/models/m", ""},
		{"POST", "/v1/completions", `{"model":"m","prompt":"a"}`},
		{"POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"a"}]}`},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), r.method, e.url+r.path, strings.NewReader(r.body))
		resp, err := e.anon.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d, want 401", r.method, r.path, resp.StatusCode)
		}
	}
}

func TestOpenAIModels(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	got := decodeJSON(t, e.do(t, "GET", "/v1/models", ""))
	if diff := cmp.Diff(map[string]any{"object": "list", "data": []any{}}, got); diff != "" {
		t.Errorf("models of an empty registry (-want +got):\n%s", diff)
	}
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, r := range []*busv1.ModelRecord{
		{Name: "alpha", Checkpoint: bus.RefOf([]byte("a")), CreatedAt: timestamppb.New(created)},
		{Name: "beta", Checkpoint: bus.RefOf([]byte("b")), CreatedAt: timestamppb.New(created.Add(time.Hour))},
	} {
		if err := e.b.PutModel(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	alpha := map[string]any{"id": "alpha", "object": "model", "created": float64(created.Unix()), "owned_by": "llmesh"}
	beta := map[string]any{"id": "beta", "object": "model", "created": float64(created.Unix() + 3600), "owned_by": "llmesh"}
	got = decodeJSON(t, e.do(t, "GET", "/v1/models", ""))
	if diff := cmp.Diff(map[string]any{"object": "list", "data": []any{alpha, beta}}, got); diff != "" {
		t.Errorf("models (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(alpha, decodeJSON(t, e.do(t, "GET", "/v1/models/alpha", ""))); diff != "" {
		t.Errorf("model alpha (-want +got):\n%s", diff)
	}
	resp := e.do(t, "GET", "/v1/models/nope", "")
	wantOpenAIError(t, resp, http.StatusNotFound, "model", "model_not_found")
}

// wantOpenAIError checks an error response has OpenAI's shape, status and
// param and code (nil for "").
func wantOpenAIError(t *testing.T, resp *http.Response, status int, param, code string) {
	t.Helper()
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("status %d, content type %q; want %d, application/json", resp.StatusCode, resp.Header.Get("Content-Type"), status)
	}
	body, _ := io.ReadAll(resp.Body)
	var got struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(body, &got); err != nil || got.Error == nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	typ := "invalid_request_error"
	switch {
	case status == http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case status >= 500:
		typ = "server_error"
	}
	null := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	if msg, _ := got.Error["message"].(string); msg == "" {
		t.Errorf("error %s has no message", body)
	}
	want := map[string]any{"message": got.Error["message"], "type": typ, "param": null(param), "code": null(code)}
	if diff := cmp.Diff(want, got.Error); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

func TestOpenAICompletions(t *testing.T) {
	e, er := newOpenAIEnv(t)
	for name, tc := range map[string]struct {
		body string
		// text, finish and usage of the one choice
		text, finish string
		usage        [3]float64
		// the request the inference service gets
		req *busv1.GenerateRequest
	}{
		"plain": {
			body: `{"model":"m","prompt":"hello big world"}`,
			text: "hello big world", finish: "stop", usage: [3]float64{3, 3, 6},
			req: &busv1.GenerateRequest{Model: "m", Prompt: "hello big world", Temperature: 1},
		},
		"sampling fields": {
			body: `{"model":"m","prompt":["hello big world"],"max_tokens":2,"temperature":0,"top_p":0.5,"n":1,"seed":7,"user":"u","logprobs":null,"presence_penalty":0}`,
			text: "hello big ", finish: "length", usage: [3]float64{3, 2, 5},
			req: &busv1.GenerateRequest{Model: "m", Prompt: "hello big world", MaxTokens: 2, Seed: 7, TopP: 0.5},
		},
		"extensions": {
			body: `{"model":"m","prompt":"hello big world","top_k":40,"repetition_penalty":1.2,"ignore_eos":true,"exit_threshold":0.9,"stop":["zzz"]}`,
			text: "hello big world", finish: "stop", usage: [3]float64{3, 3, 6},
			req: &busv1.GenerateRequest{Model: "m", Prompt: "hello big world", Temperature: 1, TopK: 40, RepetitionPenalty: 1.2,
				IgnoreEos: true, ExitThreshold: 0.9, Stop: []string{"zzz"}},
		},
		"stop string": {
			body: `{"model":"m","prompt":"hello big world","stop":"big"}`,
			text: "hello ", finish: "stop", usage: [3]float64{0, 2, 2},
		},
		"stop across chunks": {
			body: `{"model":"m","prompt":"alpha beta gamma delta","stop":["xyz","ta gam",""]}`,
			text: "alpha be", finish: "stop", usage: [3]float64{0, 3, 3},
		},
		"stop at a chunk's end": {
			body: `{"model":"m","prompt":"alpha beta","stop":["a b"]}`,
			text: "alph", finish: "stop", usage: [3]float64{0, 2, 2},
		},
		"stop that never comes": {
			body: `{"model":"m","prompt":"alpha beta","stop":["beta!"]}`,
			text: "alpha beta", finish: "stop", usage: [3]float64{2, 2, 4},
		},
	} {
		t.Run(name, func(t *testing.T) {
			resp := e.do(t, "POST", "/v1/completions", tc.body)
			got := decodeJSON(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %v", resp.StatusCode, got)
			}
			stripIDs(t, got, "cmpl-")
			want := map[string]any{
				"object": "text_completion", "model": "m",
				"choices": []any{map[string]any{"text": tc.text, "index": 0.0, "logprobs": nil, "finish_reason": tc.finish}},
				"usage":   map[string]any{"prompt_tokens": tc.usage[0], "completion_tokens": tc.usage[1], "total_tokens": tc.usage[2]},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("completion (-want +got):\n%s", diff)
			}
			if tc.req != nil {
				if diff := cmp.Diff(tc.req, er.lastRequest(), protocmp.Transform()); diff != "" {
					t.Errorf("generate request (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestOpenAICompletionsStream(t *testing.T) {
	e, _ := newOpenAIEnv(t)
	for name, tc := range map[string]struct {
		body         string
		text, finish string
		usage        map[string]any // nil: no usage chunk
	}{
		"plain": {body: `{"model":"m","prompt":"hello big world","stream":true}`, text: "hello big world", finish: "stop"},
		"usage": {
			body: `{"model":"m","prompt":"hello big world","max_tokens":2,"stream":true,"stream_options":{"include_usage":true}}`,
			text: "hello big ", finish: "length",
			usage: map[string]any{"prompt_tokens": 3.0, "completion_tokens": 2.0, "total_tokens": 5.0},
		},
		"stop": {body: `{"model":"m","prompt":"alpha beta gamma delta","stop":"ta gam","stream":true}`, text: "alpha be", finish: "stop"},
	} {
		t.Run(name, func(t *testing.T) {
			resp := e.do(t, "POST", "/v1/completions", tc.body)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			data := readData(t, resp.Body)
			if len(data) < 3 || data[len(data)-1] != "[DONE]" {
				t.Fatalf("stream %q does not end with [DONE]", data)
			}
			data = data[:len(data)-1]
			var ids []string
			var text string
			var finishes []any
			var usage map[string]any
			for i, d := range data {
				var c struct {
					ID      string           `json:"id"`
					Object  string           `json:"object"`
					Model   string           `json:"model"`
					Choices []map[string]any `json:"choices"`
					Usage   map[string]any   `json:"usage"`
				}
				if err := json.Unmarshal([]byte(d), &c); err != nil || c.Object != "text_completion" || c.Model != "m" {
					t.Fatalf("chunk %d %s: %v", i, d, err)
				}
				ids = append(ids, c.ID)
				if c.Usage != nil {
					if i != len(data)-1 || len(c.Choices) != 0 {
						t.Errorf("usage chunk %d of %d has choices %v", i, len(data), c.Choices)
					}
					usage = c.Usage
					continue
				}
				if len(c.Choices) != 1 {
					t.Fatalf("chunk %s: %d choices", d, len(c.Choices))
				}
				text += c.Choices[0]["text"].(string)
				finishes = append(finishes, c.Choices[0]["finish_reason"])
			}
			if text != tc.text {
				t.Errorf("streamed text %q, want %q", text, tc.text)
			}
			wantFinish := make([]any, len(finishes))
			wantFinish[len(wantFinish)-1] = tc.finish
			if diff := cmp.Diff(wantFinish, finishes); diff != "" {
				t.Errorf("finish reasons (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.usage, usage); diff != "" {
				t.Errorf("usage (-want +got):\n%s", diff)
			}
			for _, id := range ids {
				if id != ids[0] || !strings.HasPrefix(id, "cmpl-") {
					t.Errorf("chunk ids %q, want one cmpl- id", ids)
					break
				}
			}
		})
	}
}

func TestOpenAIChat(t *testing.T) {
	e, er := newOpenAIEnv(t)
	// The echo responder sends the rendered prompt back, so the reply is
	// the transcript up to the implicit stop sequence "\nuser:".
	body := `{"model":"m","messages":[{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]},{"role":"assistant","content":null}],"max_completion_tokens":50,"max_tokens":3}`
	resp := e.do(t, "POST", "/v1/chat/completions", body)
	got := decodeJSON(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %v", resp.StatusCode, got)
	}
	stripIDs(t, got, "chatcmpl-")
	want := map[string]any{
		"object": "chat.completion", "model": "m",
		"choices": []any{map[string]any{"index": 0.0, "logprobs": nil, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": "system: be brief"}}},
		"usage": map[string]any{"prompt_tokens": 0.0, "completion_tokens": 4.0, "total_tokens": 4.0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chat completion (-want +got):\n%s", diff)
	}
	wantReq := &busv1.GenerateRequest{Model: "m", Prompt: "system: be brief\nuser: hi there\nassistant: \nassistant:", MaxTokens: 50, Temperature: 1,
		Stop: []string{"\nuser:", "\nsystem:"}}
	if diff := cmp.Diff(wantReq, er.lastRequest(), protocmp.Transform()); diff != "" {
		t.Errorf("generate request (-want +got):\n%s", diff)
	}

	t.Run("length", func(t *testing.T) {
		resp := e.do(t, "POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"one two three"}],"max_tokens":3}`)
		got := decodeJSON(t, resp)
		choice := got["choices"].([]any)[0].(map[string]any)
		if diff := cmp.Diff(map[string]any{"role": "assistant", "content": "user: one two "}, choice["message"]); diff != "" || choice["finish_reason"] != "length" {
			t.Errorf("choice %v, want the first three words and finish_reason length\n%s", choice, diff)
		}
	})
}

func TestOpenAIChatStream(t *testing.T) {
	e, _ := newOpenAIEnv(t)
	resp := e.do(t, "POST", "/v1/chat/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":4,
		"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	data := readData(t, resp.Body)
	if len(data) < 4 || data[len(data)-1] != "[DONE]" {
		t.Fatalf("stream %q does not end with [DONE]", data)
	}
	type chunk struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Index        int               `json:"index"`
			Delta        map[string]string `json:"delta"`
			FinishReason *string           `json:"finish_reason"`
		} `json:"choices"`
		Usage map[string]any `json:"usage"`
	}
	var chunks []chunk
	for _, d := range data[:len(data)-1] {
		var c chunk
		if err := json.Unmarshal([]byte(d), &c); err != nil || c.Object != "chat.completion.chunk" || c.Model != "m" || !strings.HasPrefix(c.ID, "chatcmpl-") {
			t.Fatalf("chunk %s: %v", d, err)
		}
		chunks = append(chunks, c)
	}
	first, final, usage := chunks[0], chunks[len(chunks)-2], chunks[len(chunks)-1]
	if diff := cmp.Diff(map[string]string{"role": "assistant", "content": ""}, first.Choices[0].Delta); diff != "" || first.Choices[0].FinishReason != nil {
		t.Errorf("first chunk delta (-want +got):\n%s", diff)
	}
	var content string
	for _, c := range chunks[1 : len(chunks)-2] {
		if len(c.Choices) != 1 || c.Choices[0].FinishReason != nil || c.Choices[0].Delta["role"] != "" {
			t.Errorf("content chunk %+v", c)
		}
		content += c.Choices[0].Delta["content"]
	}
	// max_tokens 4 stops at "system: be brief\nuser:", which is cut at "\nuser:".
	if content != "system: be brief" {
		t.Errorf("streamed content %q, want %q", content, "system: be brief")
	}
	if len(final.Choices) != 1 || len(final.Choices[0].Delta) != 0 || final.Choices[0].FinishReason == nil || *final.Choices[0].FinishReason != "stop" {
		t.Errorf("final chunk %+v, want an empty delta and finish_reason stop", final)
	}
	if len(usage.Choices) != 0 || usage.Usage["completion_tokens"] != 4.0 {
		t.Errorf("usage chunk %+v", usage)
	}
	for _, c := range chunks {
		if c.ID != first.ID {
			t.Errorf("chunk id %s, first %s", c.ID, first.ID)
		}
	}
}

func TestOpenAIErrors(t *testing.T) {
	e, _ := newOpenAIEnv(t)
	chat := func(content string) string {
		return `{"model":"m","messages":[{"role":"user","content":"` + content + `"}]}`
	}
	type errCase struct {
		path, body  string
		status      int
		param, code string
	}
	cases := map[string]errCase{
		"malformed json":        {"/v1/completions", `{"model":"m",`, 400, "", ""},
		"not json":              {"/v1/chat/completions", `model=m`, 400, "", ""},
		"wrong field type":      {"/v1/completions", `{"model":"m","prompt":"a","max_tokens":"ten"}`, 400, "", ""},
		"n=2":                   {"/v1/completions", `{"model":"m","prompt":"a","n":2}`, 400, "n", ""},
		"chat n=2":              {"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"a"}],"n":2}`, 400, "n", ""},
		"no model":              {"/v1/completions", `{"prompt":"a"}`, 400, "model", ""},
		"invalid model name":    {"/v1/completions", `{"model":"../m","prompt":"a"}`, 400, "model", ""},
		"unknown model":         {"/v1/completions", `{"model":"nope","prompt":"a"}`, 404, "model", "model_not_found"},
		"chat unknown model":    {"/v1/chat/completions", `{"model":"nope","messages":[{"role":"user","content":"a"}],"stream":true}`, 404, "model", "model_not_found"},
		"two prompts":           {"/v1/completions", `{"model":"m","prompt":["a","b"]}`, 400, "prompt", ""},
		"token prompt":          {"/v1/completions", `{"model":"m","prompt":[1,2,3]}`, 400, "prompt", ""},
		"negative max_tokens":   {"/v1/completions", `{"model":"m","prompt":"a","max_tokens":-1}`, 400, "max_tokens", ""},
		"negative temperature":  {"/v1/completions", `{"model":"m","prompt":"a","temperature":-0.5}`, 400, "temperature", ""},
		"temperature above 2":   {"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"a"}],"temperature":2.5}`, 400, "temperature", ""},
		"top_p above 1":         {"/v1/completions", `{"model":"m","prompt":"a","top_p":1.5}`, 400, "top_p", ""},
		"top_k below -1":        {"/v1/completions", `{"model":"m","prompt":"a","top_k":-2}`, 400, "top_k", ""},
		"negative penalty":      {"/v1/completions", `{"model":"m","prompt":"a","repetition_penalty":-1}`, 400, "repetition_penalty", ""},
		"exit threshold":        {"/v1/completions", `{"model":"m","prompt":"a","exit_threshold":3}`, 400, "exit_threshold", ""},
		"five stops":            {"/v1/completions", `{"model":"m","prompt":"a","stop":["a","b","c","d","e"]}`, 400, "stop", ""},
		"stop not strings":      {"/v1/completions", `{"model":"m","prompt":"a","stop":3}`, 400, "stop", ""},
		"no messages":           {"/v1/chat/completions", `{"model":"m","messages":[]}`, 400, "messages", ""},
		"tool role":             {"/v1/chat/completions", `{"model":"m","messages":[{"role":"tool","content":"a"}]}`, 400, "messages.[0].role", ""},
		"image part":            {"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, 400, "messages.[0].content", ""},
		"refused as invalid":    {"/v1/completions", `{"model":"m","prompt":"error:invalid_argument"}`, 400, "", ""},
		"refused as not found":  {"/v1/chat/completions", chat("error:not_found"), 404, "", "model_not_found"},
		"refused as busy":       {"/v1/completions", `{"model":"m","prompt":"error:resource_exhausted"}`, 429, "", ""},
		"refused as down":       {"/v1/chat/completions", chat("error:unavailable"), 503, "", ""},
		"refused without code":  {"/v1/completions", `{"model":"m","prompt":"error:"}`, 500, "", ""},
		"refused, streamed":     {"/v1/completions", `{"model":"m","prompt":"error:invalid_argument","stream":true}`, 400, "", ""},
		"chat refused streamed": {"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"error:internal"}]}`, 500, "", ""},
	}
	cases["too large"] = errCase{"/v1/completions", `{"model":"m","prompt":"` + strings.Repeat("a", maxGenerateBody) + `"}`, 413, "", ""}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp := e.do(t, "POST", tc.path, tc.body)
			wantOpenAIError(t, resp, tc.status, tc.param, tc.code)
			if tc.status == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		})
	}

	t.Run("no inference service", func(t *testing.T) {
		e := newEnv(t)
		if err := e.b.PutModel(t.Context(), &busv1.ModelRecord{Name: "m", Checkpoint: bus.RefOf([]byte("m"))}); err != nil {
			t.Fatal(err)
		}
		wantOpenAIError(t, e.do(t, "POST", "/v1/completions", `{"model":"m","prompt":"a"}`), 503, "", "")
		wantOpenAIError(t, e.do(t, "POST", "/v1/chat/completions", chat("a")), 503, "", "")
	})
}

// TestOpenAIClient drives the gateway with the official OpenAI Go client,
// unchanged but for the base URL and the key.
func TestOpenAIClient(t *testing.T) {
	e, _ := newOpenAIEnv(t)
	ctx := t.Context()
	client := openai.NewClient(option.WithBaseURL(e.url+"/v1/"), option.WithAPIKey(testToken), option.WithMaxRetries(0))

	models, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models.Data) != 1 || models.Data[0].ID != "m" || models.Data[0].OwnedBy != "llmesh" {
		t.Errorf("models %+v", models.Data)
	}

	c, err := client.Completions.New(ctx, openai.CompletionNewParams{
		Model:     "m",
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("hello big world")},
		MaxTokens: openai.Int(2),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Choices) != 1 || c.Choices[0].Text != "hello big " || c.Choices[0].FinishReason != "length" || c.Usage.TotalTokens != 5 {
		t.Errorf("completion %+v", c)
	}

	params := openai.ChatCompletionNewParams{
		Model:    "m",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("hi")},
		Seed:     openai.Int(1),
	}
	chat, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(chat.Choices) != 1 || chat.Choices[0].Message.Content != "system: be brief" || chat.Choices[0].FinishReason != "stop" {
		t.Errorf("chat completion %+v", chat.Choices)
	}

	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != "system: be brief" || acc.Choices[0].FinishReason != "stop" {
		t.Errorf("accumulated chat stream %+v", acc.Choices)
	}

	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "nope", Messages: params.Messages})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" {
		t.Errorf("unknown model: %v, want a 404 *openai.Error with code model_not_found", err)
	}
}
