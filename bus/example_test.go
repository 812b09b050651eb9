package bus_test

import (
	"context"
	"fmt"
	"os"

	"github.com/llmesh/llmesh/bus"
)

func Example() {
	dir, _ := os.MkdirTemp("", "llmesh-bus-example")
	defer os.RemoveAll(dir)
	srv, err := bus.StartServer(bus.ServerConfig{DataDir: dir, InProcess: true})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := bus.Connect(ctx, bus.Config{Server: srv, Name: "example"})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	if err := b.Setup(ctx); err != nil {
		panic(err)
	}

	go b.ServeJobs(ctx, bus.KindEval, func(ctx context.Context, job *bus.Job) ([]byte, error) {
		job.Progress("score", 1, 1, "")
		return []byte(`{"accuracy":0.9}`), nil
	}, bus.WorkerOptions{})

	rec, err := b.SubmitJob(ctx, bus.KindEval, []byte(`{"model":"legal-gpt"}`), bus.SubmitOptions{ID: "eval-1"})
	if err != nil {
		panic(err)
	}
	events, err := b.WatchEvents(ctx, rec.Id)
	if err != nil {
		panic(err)
	}
	for ev := range events {
		fmt.Println(ev.Type)
	}
	done, _ := b.GetJob(ctx, rec.Id)
	fmt.Println(done.State, string(done.ResultJson))
	// Output:
	// progress
	// done
	// JOB_STATE_SUCCEEDED {"accuracy":0.9}
}
