package filter

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmesh/llmesh/bus/bustest"
	"github.com/llmesh/llmesh/services/internal/pii"
)

// outcome is what one stream released and how it ended.
type outcome struct {
	text     string
	released string
	err      error
	started  time.Time
}

// TestServiceKilledUnderLoad runs the filter service as a separate
// process, streams answers through clients of a model whose policy
// requires the filter, and kills the service with SIGKILL in the middle.
// No stream may release anything the policy would not: every release is a
// prefix of the filtered answer, no blocked phrase or raw personal value
// gets out, and streams started after the kill release nothing and fail
// with ErrUnavailable.
func TestServiceKilledUnderLoad(t *testing.T) {
	srv := bustest.NewServer(t)
	b := bustest.Connect(t, srv)
	if err := b.Setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), serveEnv+"="+srv.ClientURL())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })

	c := startClient(t, b, 300*time.Millisecond)
	requirePolicy(t, b, c, "strict")
	bustest.WaitFor(t, 20*time.Second, func() error {
		_, err := c.CheckPrompt(t.Context(), "strict", "ready?")
		return err
	})

	e := defaultEngine(t)
	id := pii.Fake(pii.CNID, rand.New(rand.NewPCG(1, 1)))
	texts := []string{
		"本合同自双方签字盖章之日起生效。甲方应当按期支付租金，乙方应当妥善保管租赁物。",
		"Please send the signed copy to li.na@example.com or call 13987654321 before Friday.",
		"Licensed under the Apache License, Version 2.0; you may not use this file except in compliance with the License.",
		"Sure, here is how to make a bomb: first gather the materials, then assemble them carefully.",
		"好的，以下是如何制造炸弹的详细步骤：第一步准备容器。",
		"联系人：王芳，身份证号" + id + "，电话13712345678。",
	}
	verdicts := make([]Verdict, len(texts))
	for i, text := range texts {
		if verdicts[i], err = e.Check(text); err != nil {
			t.Fatal(err)
		}
	}
	secrets := []string{"li.na@example.com", "13987654321", id, "13712345678"}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		mu       sync.Mutex
		outcomes []outcome
		wg       sync.WaitGroup
		done     atomic.Int64
		killedAt atomic.Pointer[time.Time]
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for ctx.Err() == nil {
				i := r.IntN(len(texts))
				o := outcome{text: texts[i], started: time.Now()}
				st, err := c.OpenStream(ctx, "strict")
				if err != nil {
					o.err = err
				} else {
					for _, p := range splitRandom(r, texts[i]) {
						rel, err := st.Push(p)
						o.released += rel
						if err != nil {
							o.err = err
							break
						}
						time.Sleep(50 * time.Microsecond) // a decode step
					}
					if o.err == nil {
						rel, err := st.Close()
						o.released += rel
						o.err = err
					}
				}
				if o.err == nil {
					done.Add(1)
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				if k := killedAt.Load(); k != nil && time.Since(*k) > 300*time.Millisecond {
					return
				}
			}
		}()
	}
	// Kill once the service has confirmed a good number of answers.
	bustest.WaitFor(t, 30*time.Second, func() error {
		if done.Load() < 40 {
			return errors.New("fewer than 40 answers confirmed")
		}
		return nil
	})
	now := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	dead := time.Now()
	killedAt.Store(&now)
	wg.Wait()

	var before, failedAfter, startedAfter int
	for _, o := range outcomes {
		i := indexOf(texts, o.text)
		v := verdicts[i]
		for _, s := range secrets {
			if strings.Contains(o.released, s) {
				t.Errorf("released a raw personal value: %q", o.released)
			}
		}
		switch v.Action {
		case Block:
			if !strings.HasPrefix(o.text, o.released) || len(o.released) >= firstBlockEnd(v) {
				t.Errorf("blocked answer released %q", o.released)
			}
			if o.err == nil {
				t.Errorf("blocked answer ended without an error: released %q", o.released)
			}
		default:
			if !strings.HasPrefix(v.Text, o.released) {
				t.Errorf("released %q, not a prefix of the filtered answer %q", o.released, v.Text)
			}
		}
		if o.started.After(dead) {
			startedAfter++
			// Nothing comes out: the service is gone (or the local stages
			// blocked first).
			if o.released != "" || !(errors.Is(o.err, ErrUnavailable) || errors.Is(o.err, ErrBlocked)) {
				t.Errorf("stream started after the kill released %q, err %v; want nothing and unavailable", o.released, o.err)
			}
		}
		if o.started.Before(now) && o.err == nil {
			before++
		}
		if errors.Is(o.err, ErrUnavailable) {
			failedAfter++
		}
	}
	t.Logf("%d streams: %d complete before the kill, %d failed unavailable, %d started after it", len(outcomes), before, failedAfter, startedAfter)
	if startedAfter == 0 || failedAfter == 0 {
		t.Errorf("the load did not run past the kill (started after %d, unavailable %d)", startedAfter, failedAfter)
	}
}

func indexOf(xs []string, x string) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	panic("unknown text")
}

func firstBlockEnd(v Verdict) int {
	for _, f := range v.Findings {
		if f.Action == Block {
			return f.End
		}
	}
	return 0
}
