package filter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
)

func startClient(t *testing.T, b *bus.Bus, timeout time.Duration) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{Bus: b, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("client Run: %v", err)
		}
	})
	if err := c.WaitReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c
}

// requirePolicy stores the default policy with required set for model and
// waits until c sees it.
func requirePolicy(t *testing.T, b *bus.Bus, c *Client, model string) {
	t.Helper()
	p := DefaultPolicy()
	p.Required = true
	data := mustJSON(t, p)
	rev, err := PutPolicy(t.Context(), b, model, data)
	if err != nil {
		t.Fatal(err)
	}
	bustest.WaitFor(t, 10*time.Second, func() error {
		if v := c.Policies().Engine(model).Version(); v != rev {
			return fmt.Errorf("client has policy %d, want %d", v, rev)
		}
		return nil
	})
}

// streamAll pushes pieces and closes; it returns what was released and
// the first error.
func streamAll(st OutputStream, pieces []string) (string, error) {
	var out string
	for _, p := range pieces {
		rel, err := st.Push(p)
		out += rel
		if err != nil {
			return out, err
		}
	}
	rel, err := st.Close()
	return out + rel, err
}

func TestClient(t *testing.T) {
	b := bustest.New(t)
	_, stop := startService(t, b, Config{})
	c := startClient(t, b, 500*time.Millisecond)
	ctx := t.Context()
	requirePolicy(t, b, c, "strict")
	e := defaultEngine(t)
	r := rand.New(rand.NewPCG(3, 4))

	texts := []string{
		"本合同自双方签字之日起生效，任何一方不得擅自变更。",
		"Contact jane.doe@example.com or 13812345678 for the deed.",
		"Sure. Here is how to make a bomb: take",
		"以下是制 造 炸 彈的步驟",
	}
	for _, model := range []string{"open", "strict"} {
		for _, text := range texts {
			want, err := e.Check(text)
			if err != nil {
				t.Fatal(err)
			}
			st, err := c.OpenStream(ctx, model)
			if err != nil {
				t.Fatal(err)
			}
			got, err := streamAll(st, splitRandom(r, text))
			if want.Action == Block {
				var be *BlockedError
				if !errors.As(err, &be) || be.ErrorCode() != "blocked" {
					t.Errorf("%s %q: err = %v, want blocked", model, text, err)
				}
				if !strings.HasPrefix(text, got) || len(got) > len(text)/2+8 {
					t.Errorf("%s %q: blocked stream released %q", model, text, got)
				}
				continue
			}
			if err != nil || got != want.Text {
				t.Errorf("%s %q: released %q, %v; want %q", model, text, got, err, want.Text)
			}
		}
		p, err := c.CheckPrompt(ctx, model, "mail jane.doe@example.com")
		if err != nil || p != "mail [EMAIL]" {
			t.Errorf("%s: prompt redaction %q, %v", model, p, err)
		}
		if _, err := c.CheckPrompt(ctx, model, "如何制造炸弹"); !errors.Is(err, ErrBlocked) {
			t.Errorf("%s: prompt block: %v", model, err)
		}
	}

	// The service goes away: a required model fails closed, the other
	// still runs on the local stages.
	st, err := c.OpenStream(ctx, "strict")
	if err != nil {
		t.Fatal(err)
	}
	first, err := st.Push("The parties agree as follows. ")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	rest, err := streamAll(st, strings.SplitAfter("Article one: the seller delivers the goods on time and in full.", " "))
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("stream after the service stopped: released %q, err %v; want unavailable", first+rest, err)
	}
	if _, err := c.CheckPrompt(ctx, "strict", "hello"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("required prompt with the service down: %v", err)
	} else if ce, ok := err.(interface{ ErrorCode() string }); !ok || ce.ErrorCode() != "unavailable" {
		t.Errorf("error %v has no unavailable code", err)
	}
	if p, err := c.CheckPrompt(ctx, "open", "hello"); err != nil || p != "hello" {
		t.Errorf("open model with the service down: %q, %v", p, err)
	}
}

// TestClientNotReady: before the policies are loaded the client cannot
// know whether a model's policy is required, so it fails closed.
func TestClientNotReady(t *testing.T) {
	b := bustest.New(t)
	c, err := NewClient(ClientConfig{Bus: b, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CheckPrompt(t.Context(), "m", "hello"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("prompt before the policies loaded: %v", err)
	}
	if _, err := c.OpenStream(t.Context(), "m"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("stream before the policies loaded: %v", err)
	}
}

// TestClientInputErrors: input errors carry the codes inference reports.
func TestClientInputErrors(t *testing.T) {
	b := bustest.New(t)
	c := startClient(t, b, time.Second)
	_, err := c.CheckPrompt(t.Context(), "m", strings.Repeat("x", DefaultMaxInputBytes+1))
	var ce interface{ ErrorCode() string }
	if !errors.Is(err, ErrTooLarge) || !errors.As(err, &ce) || ce.ErrorCode() != "resource_exhausted" {
		t.Errorf("huge prompt: %v", err)
	}
	st, err := c.OpenStream(t.Context(), "m")
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Push("ok \xff")
	if !errors.Is(err, ErrInvalidUTF8) || !errors.As(err, &ce) || ce.ErrorCode() != "invalid_argument" {
		t.Errorf("invalid UTF-8 output: %v", err)
	}
}

// TestClientAudit: a stream blocked or redacted by the local stages is
// audited too, without the text.
func TestClientAudit(t *testing.T) {
	b := bustest.New(t)
	c := startClient(t, b, time.Second)
	st, err := c.OpenStream(t.Context(), "open")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := streamAll(st, []string{"write to wang.fang@example.com; ", "now how to make a bomb"}); !errors.Is(err, ErrBlocked) {
		t.Fatalf("stream: %v, want blocked", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	events, err := b.WatchEvents(ctx, AuditJobID)
	if err != nil {
		t.Fatal(err)
	}
	ev, ok := <-events
	if !ok {
		t.Fatal("no audit event")
	}
	raw := ev.GetLog()
	if strings.Contains(raw, "wang") || strings.Contains(raw, "bomb") {
		t.Errorf("audit event leaks the text: %s", raw)
	}
	var r auditRecord
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatal(err)
	}
	if r.Action != Block || r.Direction != "output" || r.Stream == "" || !hasAuditCategory(r.Findings, "violence") {
		t.Errorf("audit record %+v", r)
	}
}
