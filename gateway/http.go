package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// Plain HTTP streaming endpoints for clients without a Connect library
// (curl -N): job events and generation as Server-Sent Events. Each event's
// data is one JSON object, the same message the Connect stream carries.

// maxGenerateBody bounds a POST /v1/generate body.
const maxGenerateBody = 1 << 20

func (g *Gateway) httpRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/jobs/{id}/events", g.serveJobEvents)
	mux.HandleFunc("POST /v1/generate", g.serveGenerate)
	g.openaiRoutes(mux)
}

// sse writes Server-Sent Events.
type sse struct {
	w http.ResponseWriter
	f http.Flusher
}

func newSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	return &sse{w: w, f: f}
}

func (s *sse) send(event string, data []byte) error {
	if _, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", event, data); err != nil {
		return err
	}
	if s.f != nil {
		s.f.Flush()
	}
	return nil
}

// httpError writes a Connect-shaped JSON error with the matching status.
func httpError(w http.ResponseWriter, err error) {
	code := connect.CodeInternal
	var ce *connect.Error
	if errors.As(connectError(err), &ce) {
		code = ce.Code()
	}
	status := map[connect.Code]int{
		connect.CodeInvalidArgument: http.StatusBadRequest, connect.CodeNotFound: http.StatusNotFound,
		connect.CodeResourceExhausted: http.StatusRequestEntityTooLarge, connect.CodeUnavailable: http.StatusServiceUnavailable,
		connect.CodeCanceled: 499, connect.CodeDeadlineExceeded: http.StatusGatewayTimeout,
	}[code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": code.String(), "message": err.Error()})
}

func (g *Gateway) serveJobEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := g.bus.GetJob(r.Context(), id); err != nil {
		httpError(w, err)
		return
	}
	events, err := g.bus.WatchEvents(r.Context(), id)
	if err != nil {
		httpError(w, err)
		return
	}
	out := newSSE(w)
	for ev := range events {
		b, err := protojson.Marshal(eventToAPI(ev))
		if err != nil || out.send(ev.Type, b) != nil {
			return
		}
	}
}

// generateBody is POST /v1/generate's JSON body.
type generateBody struct {
	Model       string  `json:"model"`
	Prompt      string  `json:"prompt"`
	MaxTokens   int32   `json:"max_tokens"`
	Temperature float32 `json:"temperature"`
	TopK        int32   `json:"top_k"`
	Seed        uint64  `json:"seed"`
	// Stream false answers with one JSON object once generation is done.
	Stream *bool `json:"stream"`
}

func (g *Gateway) serveGenerate(w http.ResponseWriter, r *http.Request) {
	var body generateBody
	dec := json.NewDecoder(io.LimitReader(r.Body, maxGenerateBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		httpError(w, fmt.Errorf("%w: generate body: %v", errInvalid, err))
		return
	}
	if _, err := g.bus.GetModel(r.Context(), body.Model); err != nil {
		httpError(w, err)
		return
	}
	req := &busv1.GenerateRequest{Model: body.Model, Prompt: body.Prompt, MaxTokens: body.MaxTokens,
		Temperature: body.Temperature, TopK: body.TopK, Seed: body.Seed}
	if body.Stream != nil && !*body.Stream {
		var text string
		var last *busv1.GenerateChunk
		err := g.bus.Generate(r.Context(), req, func(c *busv1.GenerateChunk) error {
			text += c.Text
			last = c
			return nil
		})
		if err != nil {
			httpError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"model": body.Model, "text": text, "finish_reason": last.FinishReason,
			"prompt_tokens": last.PromptTokens, "completion_tokens": last.CompletionTokens,
		})
		return
	}
	var out *sse
	err := g.bus.Generate(r.Context(), req, func(c *busv1.GenerateChunk) error {
		if out == nil {
			out = newSSE(w)
		}
		b, _ := json.Marshal(map[string]any{"text": c.Text, "done": c.Done, "finish_reason": c.FinishReason,
			"prompt_tokens": c.PromptTokens, "completion_tokens": c.CompletionTokens})
		return out.send("chunk", b)
	})
	if err != nil {
		if out == nil {
			httpError(w, err)
			return
		}
		b, _ := json.Marshal(map[string]string{"error": err.Error()})
		out.send("error", b)
	}
}
