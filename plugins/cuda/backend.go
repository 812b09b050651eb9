package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/cuda"
	"github.com/llmesh/llmesh/accel/engine"
	"github.com/llmesh/llmesh/accel/stub"
	"github.com/llmesh/llmesh/accel/transformer"
)

// newBackend opens the CUDA device and its kernels and returns the engine
// on them; where that fails, a stub that says why (see stubFor) and the
// reason as a warning for the log.
func newBackend() (accel.Backend, string) {
	d, err := cuda.Open()
	if err != nil {
		return stubFor("", err)
	}
	k, err := d.Kernels()
	if err != nil {
		name := deviceName(d)
		d.Close()
		return stubFor(name, err)
	}
	feats := []string{
		fmt.Sprintf("sm_%d%d", d.Major, d.Minor),
		fmt.Sprintf("memory-gib-%d", d.TotalMem>>30),
		fmt.Sprintf("cuda-driver-%d.%d", d.DriverVersion/1000, d.DriverVersion%1000/10),
	}
	if ck, ok := k.(*cuda.Kernels); ok {
		feats = append(feats, "cublas:"+ck.CUBLAS())
	}
	if lib, err := cuda.Find(cuda.NVRTCLibraries); err == nil {
		feats = append(feats, "nvrtc:"+lib)
	}
	// d lives as long as the process.
	return newGPUBackend(deviceName(d), feats, k), ""
}

func deviceName(d *cuda.Device) string { return fmt.Sprintf("cuda:%d %s", d.Ordinal, d.Name) }

// stubFor is the backend served when there is no usable device, with its
// reason: device "none" and "no CUDA device: <why>" when device is empty,
// otherwise the device and why its kernels cannot run (cuBLAS missing,
// say). Every compute call fails with the reason, wrapping
// accel.ErrNotImplemented.
func stubFor(device string, err error) (*stub.Backend, string) {
	if device == "" {
		reason := "no CUDA device: " + strings.TrimPrefix(err.Error(), cuda.ErrNoDevice.Error()+": ")
		return stub.New("cuda", reason), reason
	}
	what := "the CUDA kernels cannot run"
	if errors.Is(err, cuda.ErrNoLibrary) {
		what = "cuBLAS is missing"
	}
	reason := fmt.Sprintf("found %s but %s: %v", device, what, err)
	return stub.New("cuda", reason, stub.WithDevice(device)), reason
}

// gpuBackend is the transformer engine on the device's kernels, reporting
// the GPU as its device.
type gpuBackend struct {
	*engine.Engine
	device   string
	features []string
}

var _ accel.Backend = (*gpuBackend)(nil)

func newGPUBackend(device string, features []string, k transformer.Kernels) *gpuBackend {
	return &gpuBackend{Engine: engine.New("cuda", k), device: device, features: features}
}

// Info is the engine's, with the GPU as device and its features.
func (g *gpuBackend) Info(ctx context.Context) (accel.Info, error) {
	info, err := g.Engine.Info(ctx)
	if err != nil {
		return info, err
	}
	info.Device = g.device
	info.Features = g.features
	return info, nil
}
