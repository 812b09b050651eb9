package main

import (
	"fmt"
	"strings"

	"github.com/llmesh/llmesh/accel/stub"
)

// newBackend returns the backend to serve for what probe found: a stub that
// says device "none" and why, or one that names the devices and says the
// kernels are missing.
func newBackend(p Probe) *stub.Backend {
	if p.Err != "" || len(p.Devices) == 0 {
		return stub.New("cuda", "no CUDA device: "+p.Err)
	}
	names := make([]string, len(p.Devices))
	for i, d := range p.Devices {
		names[i] = fmt.Sprintf("cuda:%d %s", d.Ordinal, d.Name)
	}
	reason := fmt.Sprintf("found %d CUDA device(s) (%s) but the CUDA kernels are not written yet (a later issue)",
		len(p.Devices), strings.Join(names, ", "))
	return stub.New("cuda", reason,
		stub.WithDevice(names[0]),
		stub.WithFeatures(fmt.Sprintf("cuda-driver-%d.%d", p.DriverVersion/1000, p.DriverVersion%1000/10)))
}
