package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
	"github.com/llmesh/llmesh/accel/cuda"
	"github.com/llmesh/llmesh/accel/engine"
	"github.com/llmesh/llmesh/accel/stub"
	"github.com/llmesh/llmesh/accel/transformer"
)

func TestProbeMissingDriver(t *testing.T) {
	p := probe("libcuda-llmesh-missing.so.1")
	if !strings.Contains(p.Err, "dlopen") || len(p.Devices) != 0 {
		t.Fatalf("probe of a missing library = %+v, want a dlopen error and no devices", p)
	}
}

func TestProbeLibraries(t *testing.T) {
	p := probe("libcuda-llmesh-missing.so.1")
	if (p.CUBLAS == "") == (p.CUBLASErr == "") || (p.NVRTC == "") == (p.NVRTCErr == "") {
		t.Fatalf("probe = %+v, want each of cuBLAS and NVRTC either found or with an error", p)
	}
	if p.CUBLASErr != "" && !strings.Contains(p.CUBLASErr, "libcublas.so") {
		t.Errorf("CUBLASErr = %q, want the libraries tried named", p.CUBLASErr)
	}
}

func TestBackendNoDevice(t *testing.T) {
	_, err := cuda.Open(cuda.WithDriverLibrary("libcuda-llmesh-missing.so.1"))
	b, reason := stubFor("", err)
	if !strings.HasPrefix(reason, "no CUDA device: dlopen libcuda-llmesh-missing.so.1") {
		t.Errorf("reason = %q", reason)
	}
	info, _ := b.Info(t.Context())
	if info.Device != "none" || !info.Stub || info.Name != "cuda" {
		t.Errorf("Info = %+v, want cuda stub on device none", info)
	}
	_, err = b.LoadModel(t.Context(), accel.LoadRequest{ModelID: "m"})
	if !errors.Is(err, accel.ErrNotImplemented) || !strings.Contains(err.Error(), "no CUDA device: dlopen libcuda-llmesh-missing.so.1") ||
		strings.Contains(err.Error(), "no CUDA device: no CUDA device") {
		t.Errorf("LoadModel: err = %v, want ErrNotImplemented saying no CUDA device and why, once", err)
	}
	acceltest.Run(t, b, acceltest.Options{})
}

func TestBackendDeviceWithoutCUBLAS(t *testing.T) {
	b, _ := stubFor("cuda:0 NVIDIA H200", fmt.Errorf("%w: cuBLAS: dlopen libcublas.so.12: not found", cuda.ErrNoLibrary))
	info, _ := b.Info(t.Context())
	if info.Device != "cuda:0 NVIDIA H200" {
		t.Errorf("Info.Device = %q", info.Device)
	}
	_, err := b.TrainStep(t.Context(), accel.TrainStepRequest{ModelID: "m"})
	if !errors.Is(err, accel.ErrNotImplemented) || !strings.Contains(err.Error(), "cuBLAS is missing") {
		t.Errorf("TrainStep: err = %v, want ErrNotImplemented saying cuBLAS is missing", err)
	}
}

// TestGPUBackend serves the engine the plugin builds on a device, here on
// the portable kernels: Info names the GPU, and the suite passes.
func TestGPUBackend(t *testing.T) {
	b := newGPUBackend("cuda:0 NVIDIA H200", []string{"sm_90"}, transformer.PortableKernels())
	info, err := b.Info(t.Context())
	if err != nil || info.Device != "cuda:0 NVIDIA H200" || info.Stub || info.Name != "cuda" || len(info.Features) != 1 {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	acceltest.Run(t, b, acceltest.Options{Reference: engine.New("cpu", nil)})
}

// TestNewBackend checks what main serves on this machine.
func TestNewBackend(t *testing.T) {
	b, warn := newBackend()
	info, _ := b.Info(t.Context())
	t.Logf("serving %+v (warning %q)", info, warn)
	if _, err := cuda.Open(); err != nil {
		if _, ok := b.(*stub.Backend); !ok || !strings.HasPrefix(warn, "no CUDA device: ") {
			t.Fatalf("no device here (%v) but newBackend gave %T, warning %q", err, b, warn)
		}
	}
	acceltest.Run(t, b, acceltest.Options{})
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
