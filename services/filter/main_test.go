package filter

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/llmesh/llmesh/bus"
)

// serveEnv, when set to a NATS URL, makes this test binary a filter
// service on that server (the fault test runs it as a real process and
// kills it).
const serveEnv = "LLMESH_FILTER_TEST_SERVE"

func TestMain(m *testing.M) {
	if url := os.Getenv(serveEnv); url != "" {
		if err := serveChild(url); err != nil {
			fmt.Fprintln(os.Stderr, "filter child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func serveChild(url string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := bus.Connect(ctx, bus.Config{URL: url, Name: "filter-child"})
	if err != nil {
		return err
	}
	defer b.Close()
	s, err := New(Config{Bus: b})
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
