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

func TestProbeMissingDriver(t *testing.T) {
	p := probe("libcuda-llmesh-missing.so.1")
	if !strings.Contains(p.Err, "dlopen") || len(p.Devices) != 0 {
		t.Fatalf("probe of a missing library = %+v, want a dlopen error and no devices", p)
	}
}

func TestBackendNoDevice(t *testing.T) {
	b := newBackend(Probe{Err: "dlopen: libcuda.so.1: cannot open shared object file"})
	info, _ := b.Info(t.Context())
	if info.Device != "none" || !info.Stub || info.Name != "cuda" {
		t.Errorf("Info = %+v, want cuda stub on device none", info)
	}
	_, err := b.LoadModel(t.Context(), accel.LoadRequest{ModelID: "m"})
	if !errors.Is(err, accel.ErrNotImplemented) || !strings.Contains(err.Error(), "no CUDA device: dlopen: libcuda.so.1") {
		t.Errorf("LoadModel: err = %v, want ErrNotImplemented saying no CUDA device and why", err)
	}
	acceltest.Run(t, b, acceltest.Options{})
}

func TestBackendDeviceWithoutKernels(t *testing.T) {
	b := newBackend(Probe{DriverVersion: 12040, Devices: []Device{{0, "NVIDIA H200"}}})
	info, _ := b.Info(t.Context())
	if info.Device != "cuda:0 NVIDIA H200" {
		t.Errorf("Info.Device = %q", info.Device)
	}
	_, err := b.TrainStep(t.Context(), accel.TrainStepRequest{ModelID: "m"})
	if !errors.Is(err, accel.ErrNotImplemented) || !strings.Contains(err.Error(), "kernels are not written yet") {
		t.Errorf("TrainStep: err = %v, want ErrNotImplemented saying the kernels are missing", err)
	}
}

// TestPluginBinary builds llmesh-plugin-cuda and launches it through the
// host by discovery.
func TestPluginBinary(t *testing.T) {
	dir := acceltest.BuildPlugin(t, ".", "cuda")
	h, err := accel.NewHost(accel.HostConfig{PluginDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p, err := h.Launch(ctx, "cuda")
	if err != nil {
		t.Fatalf("Launch cuda: %v", err)
	}
	info, _ := p.Info(ctx)
	t.Logf("cuda plugin: %+v", info)
	local := probe(driverLib)
	if local.Err != "" && info.Device != "none" {
		t.Errorf("no driver here (%s) but the plugin reports device %q", local.Err, info.Device)
	}
	acceltest.Run(t, p, acceltest.Options{})
}
