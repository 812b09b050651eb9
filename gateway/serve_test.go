package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	apiv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/api/v1"
	"github.com/llmesh/llmesh/contracts/gen/llmesh/api/v1/apiv1connect"
	inf "github.com/llmesh/llmesh/services/inference"
	"github.com/llmesh/llmesh/services/inference/inferencetest"
)

// Bad input against the real inference service: 4xx with a clear message,
// and the service keeps serving.
func TestServeBadInput(t *testing.T) {
	e := newEnv(t)
	inferencetest.Start(t, e.b, nil, "real")
	long := strings.Repeat("the dog sat on the log. ", 20)
	for name, tc := range map[string]struct {
		path, body string
		status     int
		message    string
	}{
		"prompt over the context": {"/v1/completions", `{"model":"real","prompt":"` + long + `"}`, 400, `exceeds model "real"'s context of 32 tokens`},
		"chat over the context":   {"/v1/chat/completions", `{"model":"real","messages":[{"role":"user","content":"` + long + `"}]}`, 400, "context of 32 tokens"},
		"unknown model":           {"/v1/completions", `{"model":"nope","prompt":"a"}`, 404, `model "nope": not found`},
		"max_tokens too large":    {"/v1/completions", `{"model":"real","prompt":"a","max_tokens":5000}`, 400, "max_tokens 5000 out of range [0, 2048]"},
		"negative max_tokens":     {"/v1/completions", `{"model":"real","prompt":"a","max_tokens":-3}`, 400, "max_tokens -3 out of range"},
		"repetition penalty":      {"/v1/completions", `{"model":"real","prompt":"a","repetition_penalty":50}`, 400, "repetition_penalty 50 out of range"},
		"top_p":                   {"/v1/completions", `{"model":"real","prompt":"a","top_p":7}`, 400, "top_p 7 out of range [0, 1]"},
		"temperature":             {"/v1/chat/completions", `{"model":"real","messages":[{"role":"user","content":"a"}],"temperature":9}`, 400, "temperature 9 out of range [0, 2]"},
		"malformed JSON":          {"/v1/completions", `{"model":"real","prompt":`, 400, "could not parse the JSON body"},
		"streamed, over context":  {"/v1/completions", `{"model":"real","stream":true,"prompt":"` + long + `"}`, 400, "context of 32 tokens"},
	} {
		t.Run(name, func(t *testing.T) {
			resp := e.do(t, "POST", tc.path, tc.body)
			body, _ := io.ReadAll(resp.Body)
			var got struct {
				Error struct{ Message string } `json:"error"`
			}
			if resp.StatusCode != tc.status || json.Unmarshal(body, &got) != nil || !strings.Contains(got.Error.Message, tc.message) {
				t.Errorf("status %d, body %s; want %d with a message containing %q", resp.StatusCode, body, tc.status, tc.message)
			}
		})
	}
	// Still serving.
	resp := e.do(t, "POST", "/v1/completions", `{"model":"real","prompt":"the cat","max_tokens":4,"temperature":0}`)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("after bad input: status %d: %s", resp.StatusCode, body)
	}
	// The Connect API refuses the same way.
	client := apiv1connect.NewInferenceServiceClient(e.hc, e.url)
	stream, err := client.Generate(t.Context(), connect.NewRequest(&apiv1.GenerateRequest{Model: "real", Prompt: long}))
	if err != nil {
		t.Fatal(err)
	}
	for stream.Receive() {
	}
	if err := stream.Err(); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "context of 32 tokens") {
		t.Errorf("Connect Generate over the context: %v", err)
	}
}

// A full queue is HTTP 429 with Retry-After on the OpenAI API and
// ResourceExhausted on Connect.
func TestServeQueueFull(t *testing.T) {
	e := newEnv(t)
	inferencetest.Start(t, e.b, func(c *inf.Config) { c.MaxBatch, c.QueueDepth = 1, 1 }, "real")
	var mu sync.Mutex
	codes := map[int]int{}
	retryAfter := true
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			resp := e.do(t, "POST", "/v1/completions", `{"model":"real","prompt":"the","max_tokens":30,"ignore_eos":true}`)
			io.Copy(io.Discard, resp.Body)
			mu.Lock()
			defer mu.Unlock()
			codes[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
				retryAfter = false
			}
		})
	}
	wg.Wait()
	if codes[http.StatusTooManyRequests] == 0 || codes[http.StatusOK] == 0 || codes[http.StatusOK]+codes[http.StatusTooManyRequests] != 10 {
		t.Errorf("status counts %v: want only 200s and some 429s", codes)
	}
	if !retryAfter {
		t.Error("a 429 without Retry-After")
	}
}
