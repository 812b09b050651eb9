package main

import (
	"context"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
	"github.com/llmesh/llmesh/accel/engine"
	"github.com/llmesh/llmesh/accel/transformer"
)

// TestPluginBinary builds llmesh-plugin-cpu, launches it through the host
// by discovery and runs the suite against the runtime in-process.
func TestPluginBinary(t *testing.T) {
	dir := acceltest.BuildPlugin(t, ".", "cpu")
	h, err := accel.NewHost(accel.HostConfig{PluginDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p, err := h.Launch(ctx, "cpu")
	if err != nil {
		t.Fatalf("Launch cpu: %v", err)
	}
	acceltest.Run(t, p, acceltest.Options{Reference: engine.New("cpu", transformer.PortableKernels())})
}
