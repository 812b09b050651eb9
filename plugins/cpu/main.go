package main

// The runtime runs on the fastest kernels this machine has (accel/simd:
// AVX-512 with VNNI and BF16, AVX2, or portable Go, picked at start).

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/engine"
	"github.com/llmesh/llmesh/accel/simd"
	"github.com/llmesh/llmesh/accel/transformer"
)

// LLMESH_CPU_KERNELS forces a kernel level (generic, avx2, avx512), for
// comparing levels or working around a bad one; unset picks the best.
const levelEnv = "LLMESH_CPU_KERNELS"

// LLMESH_CPU_PROFILE names a file prefix: the plugin writes a CPU profile
// of its run to <prefix>.<pid> (go tool pprof format), ended when the host
// shuts it down — for profiling the backend under `llmesh bench serve`,
// whose plugins inherit the environment.
const profileEnv = "LLMESH_CPU_PROFILE"

// startProfile starts the CPU profile LLMESH_CPU_PROFILE asks for and
// returns what ends it.
func startProfile() func() {
	prefix := os.Getenv(profileEnv)
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", prefix, os.Getpid()))
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		os.Stderr.WriteString("cpu plugin: " + profileEnv + ": " + err.Error() + "\n")
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// build names this build of the plugin (go build -ldflags "-X
// main.build=..."); Info lists it as a feature, so that a swap to a rebuilt
// binary shows which build serves.
var build = "dev"

// backend is the engine with the kernel level added to its features.
type backend struct {
	*engine.Engine
	kernels *simd.Kernels
}

var (
	_ accel.Backend       = backend{}
	_ transformer.Kernels = (*simd.Kernels)(nil)
)

func (b backend) Info(ctx context.Context) (accel.Info, error) {
	info, err := b.Engine.Info(ctx)
	if err != nil {
		return info, err
	}
	info.Features = append(info.Features, b.kernels.Describe()...)
	info.Features = append(info.Features, "build="+build)
	return info, nil
}

func kernels() (*simd.Kernels, error) {
	name := os.Getenv(levelEnv)
	if name == "" {
		return simd.New()
	}
	l, err := simd.ParseLevel(name)
	if err != nil {
		return nil, err
	}
	return simd.New(simd.WithLevel(l))
}

func main() {
	k, err := kernels()
	if err != nil {
		// A forced level this machine cannot run: say so on stderr (the
		// host logs it) and serve the best one instead of failing.
		os.Stderr.WriteString("cpu plugin: " + levelEnv + ": " + err.Error() + "; using the detected level\n")
		k = simd.Must()
	}
	stop := startProfile()
	accel.Serve(backend{Engine: engine.New("cpu", k), kernels: k})
	stop()
}
