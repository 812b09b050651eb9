package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/llmesh/llmesh/accel/sampling"
	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// The OpenAI-compatible API, so that the official OpenAI client libraries
// and curl work unchanged (base URL http://<gateway>/v1, API key = the
// gateway token):
//
//	GET  /v1/models             the model registry as OpenAI model objects
//	GET  /v1/models/{model}     one of them
//	POST /v1/completions        text completion, streamed as SSE with "stream": true
//	POST /v1/chat/completions   chat completion, likewise
//
// Requests decode OpenAI's bodies. Fields this API does not know (OpenAI
// clients send many: logprobs, presence_penalty, user, ...) are ignored,
// but malformed JSON and wrongly typed known fields are 400s. The known
// fields map onto a bus GenerateRequest:
//
//   - max_tokens (chat: max_completion_tokens, else max_tokens): omitted or
//     0 means the inference service's default; negative is a 400, above the
//     service's limit the service refuses it (400).
//   - temperature: OpenAI's range [0, 2], default 1 (OpenAI's); 0 is greedy.
//   - top_p: nucleus sampling, in [0, 1] (1, OpenAI's default, is all
//     tokens).
//   - repetition_penalty, top_k, ignore_eos and exit_threshold: extensions
//     as vLLM names them (the OpenAI clients send them as extra body
//     fields); the inference service checks their ranges (400).
//   - n: only 1; best_of, logprobs, echo and the like are ignored.
//   - stop: a string or up to 4 strings. The inference service ends the
//     generation at the first stop sequence; the gateway also cuts the
//     text before it, even one that spans chunks, and ends the choice
//     with finish_reason "stop" without waiting for the rest.
//   - seed is passed on; user is ignored.
//
// A client that disconnects cancels its generation on the inference
// service. With early exit, usage carries layers_saved.
//   - stream_options.include_usage adds OpenAI's usage chunk (empty
//     choices) before "data: [DONE]".
//
// usage comes from the inference service's last chunk. When a stop
// sequence ends a choice early that chunk has not arrived: completion
// tokens are then the tokens received so far and prompt_tokens is 0.
//
// Chat messages are rendered into one prompt, one line per message and an
// open assistant turn:
//
//	system: You are terse.
//	user: Hi
//	assistant:
//
// Roles are system (and developer, OpenAI's new name for it, rendered as
// system), user and assistant; content is a string or text parts. The
// lines "\nuser:" and "\nsystem:" are implicit stop sequences, so that the
// model does not write the user's next turn, and the reply's leading
// spaces are trimmed.
//
// Errors use OpenAI's shape, {"error":{"message","type","param","code"}},
// with the status the gateway gives the same error elsewhere: an unknown
// model is 404 with code "model_not_found", an inference error maps by its
// code (invalid_argument 400, not_found 404, resource_exhausted 429 with
// Retry-After, blocked by the filter 403 with code content_filter,
// unavailable 503, others 500), no inference service is 503.
// An error after a stream started is sent as one data event holding that
// error object, without [DONE]. A missing or wrong token is the gateway's
// usual 401.

func (g *Gateway) openaiRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/models", g.serveOpenAIModels)
	mux.HandleFunc("GET /v1/models/{model}", g.serveOpenAIModel)
	mux.HandleFunc("POST /v1/completions", g.serveCompletions)
	mux.HandleFunc("POST /v1/chat/completions", g.serveChatCompletions)
}

// maxStops is how many stop sequences a request may carry (OpenAI's limit).
const maxStops = 4

// chatStops end a chat reply where the model starts another turn.
var chatStops = []string{"\nuser:", "\nsystem:"}

// openaiError is a request the OpenAI API refuses, in OpenAI's terms.
type openaiError struct {
	status      int
	message     string
	param, code string // "" is sent as null
	retryAfterS int    // Retry-After seconds, 0 for none
}

func (e *openaiError) Error() string { return e.message }

func invalidParam(param, format string, args ...any) *openaiError {
	return &openaiError{status: http.StatusBadRequest, message: fmt.Sprintf(format, args...), param: param}
}

// toOpenAIError maps any error the way the gateway maps it elsewhere
// (connectError), then to an HTTP status and OpenAI's error type.
func toOpenAIError(err error) *openaiError {
	var oe *openaiError
	if errors.As(err, &oe) {
		return oe
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &openaiError{status: http.StatusRequestEntityTooLarge, message: fmt.Sprintf("request body exceeds %d bytes", mbe.Limit)}
	}
	out := &openaiError{message: err.Error()}
	switch connect.CodeOf(connectError(err)) {
	case connect.CodeInvalidArgument, connect.CodeFailedPrecondition:
		out.status = http.StatusBadRequest
	case connect.CodeNotFound:
		out.status, out.code = http.StatusNotFound, "model_not_found"
	case connect.CodeResourceExhausted:
		out.status, out.retryAfterS = http.StatusTooManyRequests, 1
		var ge *bus.GenerateError
		if errors.As(err, &ge) && ge.RetryAfter > time.Second {
			out.retryAfterS = int((ge.RetryAfter + time.Second - 1) / time.Second)
		}
	case connect.CodePermissionDenied:
		// A content-filter block (OpenAI says content_filter where its
		// own moderation stops a reply).
		out.status, out.code = http.StatusForbidden, "content_filter"
	case connect.CodeUnavailable:
		out.status = http.StatusServiceUnavailable
	case connect.CodeDeadlineExceeded:
		out.status = http.StatusGatewayTimeout
	case connect.CodeCanceled:
		out.status = 499
	default:
		out.status = http.StatusInternalServerError
	}
	return out
}

// body is the error's JSON, OpenAI's {"error":{...}}.
func (e *openaiError) body() any {
	typ := "invalid_request_error"
	switch {
	case e.status == http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case e.status >= 500:
		typ = "server_error"
	}
	null := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	return map[string]any{"error": map[string]any{"message": e.message, "type": typ, "param": null(e.param), "code": null(e.code)}}
}

func writeOpenAIError(w http.ResponseWriter, err error) {
	e := toOpenAIError(err)
	if e.retryAfterS > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(e.retryAfterS))
	}
	writeJSON(w, e.status, e.body())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// data sends one data-only event, as OpenAI streams do.
func (s *sse) data(b []byte) error {
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", b); err != nil {
		return err
	}
	if s.f != nil {
		s.f.Flush()
	}
	return nil
}

type openaiModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func openaiModelOf(r *busv1.ModelRecord) openaiModel {
	m := openaiModel{ID: r.Name, Object: "model", OwnedBy: "llmesh"}
	if r.CreatedAt != nil {
		m.Created = r.CreatedAt.AsTime().Unix()
	}
	return m
}

func (g *Gateway) serveOpenAIModels(w http.ResponseWriter, r *http.Request) {
	recs, err := g.bus.ListModels(r.Context())
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	data := []openaiModel{}
	for _, rec := range recs {
		data = append(data, openaiModelOf(rec))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (g *Gateway) serveOpenAIModel(w http.ResponseWriter, r *http.Request) {
	rec, err := g.bus.GetModel(r.Context(), r.PathValue("model"))
	if err != nil {
		writeOpenAIError(w, withParam(err, "model"))
		return
	}
	writeJSON(w, http.StatusOK, openaiModelOf(rec))
}

// withParam names the request field err is about.
func withParam(err error, param string) error {
	e := toOpenAIError(err)
	if e.status < 500 {
		e.param = param
	}
	return e
}

// samplingBody holds the fields completions and chat completions share.
type samplingBody struct {
	Model         string          `json:"model"`
	MaxTokens     *int64          `json:"max_tokens"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	N             *int64          `json:"n"`
	Stream        bool            `json:"stream"`
	StreamOptions *streamOptions  `json:"stream_options"`
	Stop          json.RawMessage `json:"stop"`
	Seed          *int64          `json:"seed"`
	// Extensions (vLLM's names).
	TopK              *int64   `json:"top_k"`
	RepetitionPenalty *float64 `json:"repetition_penalty"`
	IgnoreEOS         bool     `json:"ignore_eos"`
	ExitThreshold     *float64 `json:"exit_threshold"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type completionBody struct {
	samplingBody
	Prompt json.RawMessage `json:"prompt"`
}

type chatBody struct {
	samplingBody
	MaxCompletionTokens *int64        `json:"max_completion_tokens"`
	Messages            []chatMessage `json:"messages"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// decodeBody reads a JSON body of at most maxGenerateBody bytes into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxGenerateBody))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return invalidParam("", "could not parse the JSON body of your request: %v", err)
	}
	return nil
}

// request checks the shared fields and builds the bus request for prompt.
func (s *samplingBody) request(maxTokens *int64, prompt string) (*busv1.GenerateRequest, []string, error) {
	if s.Model == "" {
		return nil, nil, invalidParam("model", "you must provide a model parameter")
	}
	if err := bus.ValidName(s.Model); err != nil {
		return nil, nil, invalidParam("model", "model %q: %v", s.Model, err)
	}
	req := &busv1.GenerateRequest{Model: s.Model, Prompt: prompt, Temperature: 1}
	if maxTokens != nil {
		if *maxTokens < 0 || *maxTokens > math.MaxInt32 {
			return nil, nil, invalidParam("max_tokens", "max_tokens %d out of range: it must not be negative", *maxTokens)
		}
		req.MaxTokens = int32(*maxTokens)
	}
	if t := s.Temperature; t != nil {
		if *t < 0 || *t > 2 {
			return nil, nil, invalidParam("temperature", "temperature %g out of range [0, 2]", *t)
		}
		req.Temperature = float32(*t)
	}
	if p := s.TopP; p != nil {
		if *p < 0 || *p > 1 {
			return nil, nil, invalidParam("top_p", "top_p %g out of range [0, 1]", *p)
		}
		req.TopP = float32(*p)
	}
	if k := s.TopK; k != nil {
		if *k < -1 || *k > math.MaxInt32 {
			return nil, nil, invalidParam("top_k", "top_k %d out of range: -1 or 0 (all tokens) or a positive count", *k)
		}
		req.TopK = int32(max(0, *k))
	}
	if r := s.RepetitionPenalty; r != nil {
		if math.IsNaN(*r) || *r < 0 || *r > math.MaxFloat32 {
			return nil, nil, invalidParam("repetition_penalty", "repetition_penalty %g out of range", *r)
		}
		req.RepetitionPenalty = float32(*r)
	}
	if x := s.ExitThreshold; x != nil {
		if math.IsNaN(*x) || *x < 0 || *x > 1 {
			return nil, nil, invalidParam("exit_threshold", "exit_threshold %g out of range [0, 1]", *x)
		}
		req.ExitThreshold = float32(*x)
	}
	req.IgnoreEos = s.IgnoreEOS
	if s.N != nil && *s.N != 1 {
		return nil, nil, invalidParam("n", "n %d: only one choice per request is supported", *s.N)
	}
	if s.Seed != nil {
		req.Seed = uint64(*s.Seed)
	}
	stops, err := parseStop(s.Stop)
	if err != nil {
		return nil, nil, err
	}
	req.Stop = stops
	return req, stops, nil
}

// parseStop reads stop: null, a string or an array of strings. Empty
// sequences are dropped.
func parseStop(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	var one string
	if json.Unmarshal(raw, &one) == nil {
		list = []string{one}
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return nil, invalidParam("stop", "stop must be a string or an array of strings")
	}
	if len(list) > maxStops {
		return nil, invalidParam("stop", "%d stop sequences exceed the limit of %d", len(list), maxStops)
	}
	var out []string
	for _, s := range list {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// parsePrompt reads prompt: a string or an array of one string.
func parsePrompt(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return "", invalidParam("prompt", "prompt must be a string or an array of one string (token arrays are not supported)")
	}
	if len(list) != 1 {
		return "", invalidParam("prompt", "prompt holds %d strings: only one prompt per request is supported", len(list))
	}
	return list[0], nil
}

// renderChat writes messages as the chat template documented above.
func renderChat(msgs []chatMessage) (string, error) {
	if len(msgs) == 0 {
		return "", invalidParam("messages", "messages must hold at least one message")
	}
	var b strings.Builder
	for i, m := range msgs {
		role := m.Role
		switch role {
		case "system", "user", "assistant":
		case "developer":
			role = "system"
		default:
			return "", invalidParam(fmt.Sprintf("messages.[%d].role", i), "message %d: role %q is not supported (want system, user or assistant)", i, m.Role)
		}
		content, err := messageText(m.Content)
		if err != nil {
			return "", invalidParam(fmt.Sprintf("messages.[%d].content", i), "message %d: %v", i, err)
		}
		fmt.Fprintf(&b, "%s: %s\n", role, content)
	}
	b.WriteString("assistant:")
	return b.String(), nil
}

// messageText reads content: null, a string or an array of text parts.
func messageText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("content must be a string or an array of content parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content part of type %q is not supported (only text)", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

type openaiUsage struct {
	PromptTokens     int32 `json:"prompt_tokens"`
	CompletionTokens int32 `json:"completion_tokens"`
	TotalTokens      int32 `json:"total_tokens"`
	// LayersSaved counts the layers early exit skipped (an extension).
	LayersSaved int64 `json:"layers_saved,omitempty"`
}

// errStopSequence ends a generation at a stop sequence.
var errStopSequence = errors.New("stop sequence reached")

// generate runs req on the bus and calls emit with its text, cut before the
// first of stops. begin is called once, before the first emit, when the
// first chunk arrived: errors before it can still be HTTP errors. It
// returns OpenAI's finish_reason and the usage.
func (g *Gateway) generate(r *http.Request, req *busv1.GenerateRequest, stops []string, begin func() error, emit func(string) error) (string, openaiUsage, error) {
	var u openaiUsage
	finish := "stop"
	cut := sampling.NewStopCutter(stops)
	begun := false
	err := g.bus.Generate(r.Context(), req, func(c *busv1.GenerateChunk) error {
		if !begun {
			begun = true
			if err := begin(); err != nil {
				return err
			}
		}
		u.CompletionTokens += int32(len(c.TokenIds))
		u.LayersSaved = c.LayersSaved
		if c.Done {
			u.PromptTokens, u.CompletionTokens = c.PromptTokens, c.CompletionTokens
			if c.FinishReason == "length" {
				finish = "length"
			}
		}
		text, hit := cut.Push(c.Text)
		if c.Done && !hit {
			text += cut.Flush()
		}
		if text != "" {
			if err := emit(text); err != nil {
				return err
			}
		}
		if hit {
			finish = "stop"
			return errStopSequence
		}
		return nil
	})
	if errors.Is(err, errStopSequence) {
		err = nil
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return finish, u, err
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

type completionChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type completionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *openaiUsage       `json:"usage,omitempty"`
}

func (g *Gateway) serveCompletions(w http.ResponseWriter, r *http.Request) {
	var body completionBody
	if err := decodeBody(w, r, &body); err != nil {
		writeOpenAIError(w, err)
		return
	}
	prompt, err := parsePrompt(body.Prompt)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	req, stops, err := body.request(body.MaxTokens, prompt)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	if _, err := g.bus.GetModel(r.Context(), req.Model); err != nil {
		writeOpenAIError(w, withParam(err, "model"))
		return
	}
	resp := completionResponse{ID: newID("cmpl-"), Object: "text_completion", Created: time.Now().Unix(), Model: req.Model}
	if !body.Stream {
		var text strings.Builder
		finish, usage, err := g.generate(r, req, stops, func() error { return nil }, func(s string) error {
			text.WriteString(s)
			return nil
		})
		if err != nil {
			writeOpenAIError(w, err)
			return
		}
		resp.Choices = []completionChoice{{Text: text.String(), FinishReason: &finish}}
		resp.Usage = &usage
		writeJSON(w, http.StatusOK, resp)
		return
	}
	out := &openaiStream{w: w}
	send := func(text string, finish *string) error {
		resp.Choices = []completionChoice{{Text: text, FinishReason: finish}}
		return out.send(resp)
	}
	finish, usage, err := g.generate(r, req, stops, out.begin, func(s string) error { return send(s, nil) })
	if err == nil {
		err = send("", &finish)
	}
	if err == nil && body.StreamOptions != nil && body.StreamOptions.IncludeUsage {
		resp.Choices, resp.Usage = []completionChoice{}, &usage
		err = out.send(resp)
	}
	out.end(err)
}

// openaiStream writes an OpenAI SSE stream: data events of JSON, then
// [DONE], or an error object when it fails. Until begin it writes nothing,
// so a failure before it is an ordinary HTTP error.
type openaiStream struct {
	w   http.ResponseWriter
	sse *sse
}

func (s *openaiStream) begin() error {
	s.sse = newSSE(s.w)
	return nil
}

func (s *openaiStream) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.sse.data(b)
}

// end finishes the stream after err (nil when generation succeeded).
func (s *openaiStream) end(err error) {
	switch {
	case s.sse == nil && err == nil: // cannot happen: the last chunk begins the stream
		writeOpenAIError(s.w, errors.New("generation ended without a chunk"))
	case s.sse == nil:
		writeOpenAIError(s.w, err)
	case err != nil:
		b, _ := json.Marshal(toOpenAIError(err).body())
		s.sse.data(b)
	default:
		s.sse.data([]byte("[DONE]"))
	}
}

type chatOut struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chatChoice struct {
	Index        int      `json:"index"`
	Message      *chatOut `json:"message,omitempty"`
	Delta        *chatOut `json:"delta,omitempty"`
	Logprobs     any      `json:"logprobs"`
	FinishReason *string  `json:"finish_reason"`
}

type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *openaiUsage `json:"usage,omitempty"`
}

func (g *Gateway) serveChatCompletions(w http.ResponseWriter, r *http.Request) {
	var body chatBody
	if err := decodeBody(w, r, &body); err != nil {
		writeOpenAIError(w, err)
		return
	}
	prompt, err := renderChat(body.Messages)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	maxTokens := body.MaxCompletionTokens
	if maxTokens == nil {
		maxTokens = body.MaxTokens
	}
	req, stops, err := body.request(maxTokens, prompt)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	stops = append(stops, chatStops...)
	req.Stop = stops
	if _, err := g.bus.GetModel(r.Context(), req.Model); err != nil {
		writeOpenAIError(w, withParam(err, "model"))
		return
	}
	// The reply's leading spaces (after "assistant:") are not content.
	started := false
	trim := func(s string) string {
		if !started {
			s = strings.TrimLeft(s, " ")
			started = s != ""
		}
		return s
	}
	id, created := newID("chatcmpl-"), time.Now().Unix()
	if !body.Stream {
		var text strings.Builder
		finish, usage, err := g.generate(r, req, stops, func() error { return nil }, func(s string) error {
			text.WriteString(trim(s))
			return nil
		})
		if err != nil {
			writeOpenAIError(w, err)
			return
		}
		content := text.String()
		writeJSON(w, http.StatusOK, chatResponse{ID: id, Object: "chat.completion", Created: created, Model: req.Model,
			Choices: []chatChoice{{Message: &chatOut{Role: "assistant", Content: &content}, FinishReason: &finish}}, Usage: &usage})
		return
	}
	out := &openaiStream{w: w}
	send := func(delta chatOut, finish *string) error {
		return out.send(chatResponse{ID: id, Object: "chat.completion.chunk", Created: created, Model: req.Model,
			Choices: []chatChoice{{Delta: &delta, FinishReason: finish}}})
	}
	begin := func() error {
		out.begin()
		empty := ""
		return send(chatOut{Role: "assistant", Content: &empty}, nil)
	}
	finish, usage, err := g.generate(r, req, stops, begin, func(s string) error {
		if s = trim(s); s == "" {
			return nil
		}
		return send(chatOut{Content: &s}, nil)
	})
	if err == nil {
		err = send(chatOut{}, &finish)
	}
	if err == nil && body.StreamOptions != nil && body.StreamOptions.IncludeUsage {
		err = out.send(chatResponse{ID: id, Object: "chat.completion.chunk", Created: created, Model: req.Model,
			Choices: []chatChoice{}, Usage: &usage})
	}
	out.end(err)
}
