package bustest

import (
	"context"
	"testing"
	"time"

	"github.com/llmesh/llmesh/bus"
)

// NewServer starts an embedded server (Port -1, data under t.TempDir())
// that is shut down when the test ends.
func NewServer(t testing.TB) *bus.Server {
	t.Helper()
	srv, err := bus.StartServer(bus.ServerConfig{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatalf("start bus server: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// Connect opens another connection to srv, closed when the test ends. It
// does not run Setup.
func Connect(t testing.TB, srv *bus.Server) *bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Config{URL: srv.ClientURL(), Name: t.Name()})
	if err != nil {
		t.Fatalf("connect to bus: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// New starts a server, connects to it and runs Setup.
func New(t testing.TB) *bus.Bus {
	t.Helper()
	b := Connect(t, NewServer(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Setup(ctx); err != nil {
		t.Fatalf("set up bus: %v", err)
	}
	return b
}

// WaitFor polls cond until it returns nil or timeout passes, then fails the
// test with cond's last error.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
