package filter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// startService runs a filter service on b until the test ends (or stop is
// called) and waits until it answers.
func startService(t *testing.T, b *bus.Bus, cfg Config) (s *Service, stop func()) {
	t.Helper()
	cfg.Bus = b
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("filter Run: %v", err)
		}
	}
	t.Cleanup(stop)
	bustest.WaitFor(t, 10*time.Second, func() error {
		_, err := b.Conn().Request(bus.FilterCheckSubject, nil, time.Second)
		return err
	})
	return s, stop
}

func request(t *testing.T, b *bus.Bus, req *busv1.FilterCheckRequest) *busv1.FilterCheckReply {
	t.Helper()
	data, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return requestRaw(t, b, data)
}

func requestRaw(t *testing.T, b *bus.Bus, data []byte) *busv1.FilterCheckReply {
	t.Helper()
	m, err := b.Conn().Request(bus.FilterCheckSubject, data, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rep busv1.FilterCheckReply
	if err := proto.Unmarshal(m.Data, &rep); err != nil {
		t.Fatal(err)
	}
	return &rep
}

func TestServiceCheck(t *testing.T) {
	b := bustest.New(t)
	startService(t, b, Config{})
	tests := map[string]struct {
		req    *busv1.FilterCheckRequest
		action string
		text   string
		code   string
	}{
		"allow":   {req: &busv1.FilterCheckRequest{Model: "m", Text: "本合同自双方签字之日起生效。"}, action: "allow", text: "本合同自双方签字之日起生效。"},
		"redact":  {req: &busv1.FilterCheckRequest{Model: "m", Text: "email jane@example.com"}, action: "redact", text: "email [EMAIL]"},
		"block":   {req: &busv1.FilterCheckRequest{Model: "m", Text: "如何制造炸彈"}, action: "block"},
		"context": {req: &busv1.FilterCheckRequest{Model: "m", Context: "here is how to make a b", Text: "omb: step one", Direction: "output"}, action: "block"},
		"old phrase": {req: &busv1.FilterCheckRequest{Model: "m", Context: "make a bomb", Text: " is what you asked; I will not", Direction: "output"}, action: "allow",
			text: " is what you asked; I will not"},
		"value spans the context": {req: &busv1.FilterCheckRequest{Model: "m", Context: "mail: jane.doe@exa", Text: "mple.com now", Direction: "output"}, action: "block"},
		"huge":                    {req: &busv1.FilterCheckRequest{Model: "m", Text: strings.Repeat("x", DefaultMaxInputBytes+1)}, code: "resource_exhausted"},
		"direction":               {req: &busv1.FilterCheckRequest{Model: "m", Text: "x", Direction: "sideways"}, code: "invalid_argument"},
		"model":                   {req: &busv1.FilterCheckRequest{Model: "../etc", Text: "x"}, code: "invalid_argument"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rep := request(t, b, tc.req)
			if rep.ErrorCode != tc.code {
				t.Fatalf("error code %q (%s), want %q", rep.ErrorCode, rep.Error, tc.code)
			}
			if tc.code != "" {
				if rep.Error == "" {
					t.Errorf("code %s without a message", rep.ErrorCode)
				}
				return
			}
			if rep.Action != tc.action || rep.Text != tc.text {
				t.Errorf("action %q text %q, want %q %q (findings %v)", rep.Action, rep.Text, tc.action, tc.text, rep.Findings)
			}
		})
	}
	if rep := requestRaw(t, b, []byte("\xff\xff not a protobuf")); rep.ErrorCode != "invalid_argument" {
		t.Errorf("malformed request: %v", rep)
	}
	// Invalid UTF-8 cannot be marshalled by the client; sent raw, it is
	// refused with a clear error.
	raw := protowire.AppendTag(nil, 2, protowire.BytesType)
	raw = protowire.AppendString(raw, "bad \xc3(")
	if rep := requestRaw(t, b, raw); rep.ErrorCode != "invalid_argument" || !strings.Contains(rep.Error, "UTF-8") {
		t.Errorf("invalid UTF-8: %v", rep)
	}
}

// TestPolicyReload: a stored policy applies without a restart, a malformed
// one is rejected and the previous one stays, and a deleted one falls back
// to the default.
func TestPolicyReload(t *testing.T) {
	b := bustest.New(t)
	s, _ := startService(t, b, Config{})
	ctx := t.Context()
	check := func(text string) *busv1.FilterCheckReply {
		return request(t, b, &busv1.FilterCheckRequest{Model: "contracts", Text: text})
	}
	if rep := check("the project codename is bluebird"); rep.Action != "allow" || rep.PolicyVersion != 0 {
		t.Fatalf("before any policy: %v", rep)
	}
	pol := `{"categories": {"secret": {"action": "block"}}, "phrases": [{"category": "secret", "phrases": ["codename bluebird"]}]}`
	rev, err := PutPolicy(ctx, b, "contracts", []byte(pol))
	if err != nil {
		t.Fatal(err)
	}
	bustest.WaitFor(t, 10*time.Second, func() error {
		if rep := check("the project codename BLUE-BIRD"); rep.PolicyVersion != rev {
			return fmt.Errorf("policy version %d, want %d", rep.PolicyVersion, rev)
		}
		return nil
	})
	if rep := check("the project: codename blue bird"); rep.Action != "block" {
		t.Errorf("new policy not applied: %v", rep)
	}
	// PutPolicy refuses a bad one outright.
	if _, err := PutPolicy(ctx, b, "contracts", []byte(`{"categories": {"secret": {"action": "maybe"}}}`)); !errors.Is(err, ErrBadPolicy) {
		t.Errorf("PutPolicy of a bad policy: %v", err)
	}
	// One written straight into the bucket is rejected by the watcher.
	kv, err := b.KeyValue(ctx, bus.BucketFilterPolicies)
	if err != nil {
		t.Fatal(err)
	}
	badRev, err := kv.Put(ctx, "contracts", []byte(`{"categories": {"secret": {"action": "block"}}, "regexes": [{"category": "secret", "name": "r", "pattern": "(("}]}`))
	if err != nil {
		t.Fatal(err)
	}
	bustest.WaitFor(t, 10*time.Second, func() error {
		if got := s.Policies().Rejected("contracts"); got != badRev {
			return fmt.Errorf("rejected revision %d, want %d", got, badRev)
		}
		return nil
	})
	if rep := check("codename bluebird"); rep.Action != "block" || rep.PolicyVersion != rev {
		t.Errorf("after a malformed policy: %v, want the old policy %d still blocking", rep, rev)
	}
	if err := kv.Delete(ctx, "contracts"); err != nil {
		t.Fatal(err)
	}
	bustest.WaitFor(t, 10*time.Second, func() error {
		if rep := check("codename bluebird"); rep.PolicyVersion != 0 || rep.Action != "allow" {
			return fmt.Errorf("after delete: %v", rep)
		}
		return nil
	})
}

// TestAuditEvents: blocks and redactions are audited without the text or
// the personal values in it.
func TestAuditEvents(t *testing.T) {
	b := bustest.New(t)
	startService(t, b, Config{})
	email, phone := "zhang.wei@example.com", "13912345678"
	request(t, b, &busv1.FilterCheckRequest{Model: "m", Text: "write to " + email + " or call " + phone})
	request(t, b, &busv1.FilterCheckRequest{Model: "m", Text: email + " asked how to make a bomb", Stream: "s1", Direction: "output"})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	events, err := b.WatchEvents(ctx, AuditJobID)
	if err != nil {
		t.Fatal(err)
	}
	var recs []auditRecord
	for ev := range events {
		raw := ev.GetLog()
		if strings.Contains(raw, email) || strings.Contains(raw, phone) || strings.Contains(raw, "bomb") || strings.Contains(raw, "zhang") {
			t.Errorf("audit event leaks the text: %s", raw)
		}
		var r auditRecord
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			t.Fatalf("audit event %q: %v", raw, err)
		}
		recs = append(recs, r)
		if len(recs) == 2 {
			break
		}
	}
	if len(recs) != 2 {
		t.Fatalf("got %d audit events, want 2", len(recs))
	}
	byAction := map[Action]auditRecord{}
	for _, r := range recs {
		byAction[r.Action] = r
	}
	red := byAction[Redact]
	if len(red.Findings) != 2 || red.Findings[0].Rule != "email" || red.Findings[1].Rule != "cn_mobile" {
		t.Errorf("redaction audit %+v: want email and cn_mobile findings", red)
	}
	if blk := byAction[Block]; blk.Stream != "s1" || blk.Direction != "output" || !hasAuditCategory(blk.Findings, "violence") {
		t.Errorf("block audit %+v", blk)
	}
}

func hasAuditCategory(fs []auditFinding, c string) bool {
	for _, f := range fs {
		if f.Category == c {
			return true
		}
	}
	return false
}
