package inference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/internal/bpe"
)

// testFilter is a Filter whose behaviour the test sets between requests:
// it holds back the last hold runes of the output, blocks a prompt or an
// output that contains ban, rewrites prompts through redact, and fails
// (as a filter that is down) when down is set.
type testFilter struct {
	mu     sync.Mutex
	hold   int
	ban    string
	redact func(string) string
	down   string // "", "open" or "push"
}

type blockedError struct{ what string }

func (e *blockedError) Error() string     { return "blocked: " + e.what }
func (e *blockedError) ErrorCode() string { return "blocked" }

func (f *testFilter) set(fn func(*testFilter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold, f.ban, f.redact, f.down = 0, "", nil, ""
	fn(f)
}

func (f *testFilter) CheckPrompt(_ context.Context, model, prompt string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ban != "" && strings.Contains(prompt, f.ban) {
		return "", &blockedError{"prompt"}
	}
	if f.redact != nil {
		prompt = f.redact(prompt)
	}
	return prompt, nil
}

func (f *testFilter) OpenStream(_ context.Context, model string) (FilterStream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down == "open" {
		return nil, errors.New("filter service did not answer")
	}
	return &testStream{hold: f.hold, ban: f.ban, down: f.down == "push"}, nil
}

type testStream struct {
	hold    int
	ban     string
	down    bool
	pending string
	out     string // everything released
}

func (s *testStream) Push(text string) (string, error) {
	if s.down {
		return "", errors.New("filter service did not answer")
	}
	s.pending += text
	if s.ban != "" && strings.Contains(s.out+s.pending, s.ban) {
		return "", &blockedError{"output"}
	}
	n := utf8.RuneCountInString(s.pending) - s.hold
	if n <= 0 {
		return "", nil
	}
	cut := 0
	for range n {
		_, size := utf8.DecodeRuneInString(s.pending[cut:])
		cut += size
	}
	r := s.pending[:cut]
	s.pending = s.pending[cut:]
	s.out += r
	return r, nil
}

func (s *testStream) Close() (string, error) {
	r := s.pending
	s.pending = ""
	s.out += r
	return r, nil
}

// newFilterEnv is newEnv with f as the service's filter.
func newFilterEnv(t *testing.T, f Filter) *env {
	t.Helper()
	b := bustest.New(t)
	h, err := accel.NewHost(accel.HostConfig{Command: reexec, RestartBackoff: time.Millisecond, StartTimeout: 20 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	s, err := New(Config{Bus: b, Host: h, Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("inference Run: %v", err)
		}
	})
	tok, err := bpe.Train(t.Context(), corpus, bpe.TrainOptions{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	js, err := tok.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	info, err := b.PutBytes(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{b: b, s: s, tok: tok, tokRef: info.Ref,
		config: fmt.Appendf(nil, `{"vocab_size":%d,"n_ctx":32,"n_embd":16,"n_layer":1,"n_head":2}`, tok.VocabSize())}
	bustest.WaitFor(t, 10*time.Second, func() error {
		_, err := e.generate(t, &busv1.GenerateRequest{Model: "not-registered"})
		if errors.Is(err, bus.ErrNoResponders) {
			return err
		}
		return nil
	})
	return e
}

func TestGenerateFilter(t *testing.T) {
	f := &testFilter{}
	e := newFilterEnv(t, f)
	e.register(t, "tiny", e.checkpoint(t, 1, 60))
	req := &busv1.GenerateRequest{Model: "tiny", Prompt: "the cat sat", MaxTokens: 24}

	// A filter that releases everything at once gives the model's text.
	f.set(func(*testFilter) {})
	plain := e.mustGenerate(t, req)
	if utf8.RuneCountInString(plain.text) < 6 {
		t.Fatalf("the trained model generated too little to test with: %q", plain.text)
	}

	// Holding back a window changes when text is sent, not what.
	f.set(func(f *testFilter) { f.hold = 4 })
	chunks, err := e.generate(t, req)
	if err != nil {
		t.Fatal(err)
	}
	var held string
	for _, c := range chunks {
		held += c.Text
		if len(c.TokenIds) != 0 {
			t.Errorf("chunk %d carries token ids %v with a filter set", c.Seq, c.TokenIds)
		}
	}
	if held != plain.text {
		t.Errorf("held-back output %q, want %q", held, plain.text)
	}
	if last := chunks[len(chunks)-1]; !last.Done || last.Text == "" {
		t.Errorf("last chunk %v: want done with the held-back text", last)
	}

	// An output ban stops the stream with "blocked" before the phrase is
	// released; what was released is a prefix of the model's text.
	runes := []rune(plain.text)
	ban := string(runes[len(runes)/2 : len(runes)/2+2])
	f.set(func(f *testFilter) { f.hold = 2; f.ban = ban })
	chunks, err = e.generate(t, req)
	var ge *bus.GenerateError
	if !errors.As(err, &ge) || ge.Code != "blocked" {
		t.Fatalf("output ban %q: err = %v, want code blocked", ban, err)
	}
	var released string
	for _, c := range chunks {
		released += c.Text
	}
	if strings.Contains(released, ban) || !strings.HasPrefix(plain.text, released) {
		t.Errorf("blocked stream released %q (ban %q, full text %q)", released, ban, plain.text)
	}

	// A banned prompt is refused before any decoding.
	f.set(func(f *testFilter) { f.ban = "cat" })
	chunks, err = e.generate(t, req)
	if !errors.As(err, &ge) || ge.Code != "blocked" || len(chunks) != 0 {
		t.Errorf("prompt ban: %d chunks, err = %v, want code blocked and none", len(chunks), err)
	}

	// A redacting filter's prompt is the one the model runs.
	f.set(func(f *testFilter) { f.redact = func(string) string { return "the dog sat on the log." } })
	g := e.mustGenerate(t, req)
	if want := int32(len(e.tok.Encode("the dog sat on the log."))); g.last.PromptTokens != want {
		t.Errorf("redacted prompt: prompt_tokens = %d, want %d", g.last.PromptTokens, want)
	}

	// A filter that is down fails the request closed: nothing is released.
	for _, down := range []string{"open", "push"} {
		f.set(func(f *testFilter) { f.down = down })
		chunks, err = e.generate(t, req)
		if !errors.As(err, &ge) || ge.Code != "unavailable" {
			t.Errorf("filter down at %s: err = %v, want code unavailable", down, err)
		}
		for _, c := range chunks {
			if c.Text != "" {
				t.Errorf("filter down at %s: released %q", down, c.Text)
			}
		}
	}
}
