package accel_test

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
)

// fastHealth checks every 50ms and counts a process dead after 3 failures.
func fastHealth(c *accel.HostConfig) {
	c.HealthInterval = 50 * time.Millisecond
	c.HealthTimeout = 300 * time.Millisecond
	c.HealthFailures = 3
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkReplaced checks that the next call reports the restart, and that the
// one after it runs on the new process.
func checkReplaced(t *testing.T, p *accel.Plugin) {
	t.Helper()
	ctx := t.Context()
	_, err := p.SaveWeights(ctx, accel.SaveRequest{ModelID: "m"})
	if !errors.Is(err, accel.ErrPluginRestarted) || !errors.Is(err, accel.ErrPluginDied) {
		t.Fatalf("first call after the supervisor's restart: err = %v, want ErrPluginRestarted", err)
	}
	if _, err := p.SaveWeights(ctx, accel.SaveRequest{ModelID: "m"}); !errors.Is(err, accel.ErrUnknownModel) {
		t.Fatalf("second call: err = %v, want ErrUnknownModel from the new process", err)
	}
	loadTiny(t, ctx, p, "m", acceltest.TinyConfigJSON)
	if p.Health() != accel.HealthServing {
		t.Errorf("Health = %v after the restart, want serving", p.Health())
	}
}

func TestHealthNotServingRestarts(t *testing.T) {
	h, logs := newHost(t, fastHealth)
	p := launch(t, h, "sickly")
	old := p.Pid()
	if p.Health() != accel.HealthServing {
		t.Fatalf("Health = %v at launch, want serving", p.Health())
	}
	loadTiny(t, t.Context(), p, "sick", acceltest.TinyConfigJSON) // NOT_SERVING from now on
	waitFor(t, 5*time.Second, "restart of a NOT_SERVING plugin", func() bool { return p.Restarts() == 1 })
	if p.Pid() == old {
		t.Fatalf("restarted, but pid is still %d", old)
	}
	if !strings.Contains(logs.String(), "NOT_SERVING") {
		t.Errorf("the logs do not say the plugin reported NOT_SERVING")
	}
	checkReplaced(t, p)
}

func TestHealthDeadProcessReplaced(t *testing.T) {
	tests := map[string]struct {
		signal syscall.Signal
	}{
		"killed":  {syscall.SIGKILL},
		"stopped": {syscall.SIGSTOP}, // alive but hung: only the health check tells
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h, _ := newHost(t, fastHealth)
			p := launch(t, h, "bigram")
			old := p.Pid()
			t.Cleanup(func() {
				syscall.Kill(old, syscall.SIGCONT)
				syscall.Kill(old, syscall.SIGKILL)
			})
			if err := syscall.Kill(old, tc.signal); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the supervisor replacing the process", func() bool {
				return p.Restarts() == 1 && p.Health() == accel.HealthServing
			})
			if p.Pid() == old || p.Pid() <= 0 {
				t.Fatalf("Pid %d after the restart (was %d)", p.Pid(), old)
			}
			// The old process was killed and reaped.
			waitFor(t, 5*time.Second, "the old process to go", func() bool { return syscall.Kill(old, 0) != nil })
			checkReplaced(t, p)
		})
	}
}

func TestHealthGivesUp(t *testing.T) {
	h, _ := newHost(t, func(c *accel.HostConfig) {
		fastHealth(c)
		c.MaxRestarts = 2
	})
	p := launch(t, h, "neverhealthy")
	waitFor(t, 10*time.Second, "giving up on a plugin that is never healthy", func() bool { return p.Health() == accel.HealthDead })
	if p.Restarts() != 2 || p.Pid() != 0 {
		t.Errorf("after giving up: Restarts %d, Pid %d; want 2 and 0", p.Restarts(), p.Pid())
	}
	_, err := p.SaveWeights(t.Context(), accel.SaveRequest{ModelID: "m"})
	if !errors.Is(err, accel.ErrPluginDied) || !strings.Contains(err.Error(), "giving up") || !strings.Contains(err.Error(), "NOT_SERVING") {
		t.Fatalf("call after giving up: err = %v, want ErrPluginDied saying it gave up on NOT_SERVING", err)
	}
}

func TestHealthAfterClose(t *testing.T) {
	h, _ := newHost(t, fastHealth)
	p := launch(t, h, "bigram")
	p.Close()
	if p.Health() != accel.HealthDead {
		t.Errorf("Health after Close = %v, want dead", p.Health())
	}
}
