package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
)

// TestPluginBinary builds llmesh-plugin-tpu and launches it through the
// host by discovery.
func TestPluginBinary(t *testing.T) {
	dir := acceltest.BuildPlugin(t, ".", "tpu")
	h, err := accel.NewHost(accel.HostConfig{PluginDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p, err := h.Launch(ctx, "tpu")
	if err != nil {
		t.Fatalf("Launch tpu: %v", err)
	}
	_, err = p.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", Sequences: [][]int32{{1}}})
	if !errors.Is(err, accel.ErrNotImplemented) || !strings.Contains(err.Error(), "tpu backend: DecodeStep not implemented: the TPU backend is a stub by design") {
		t.Errorf("DecodeStep: err = %v", err)
	}
	acceltest.Run(t, p, acceltest.Options{})
}
