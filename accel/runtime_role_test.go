package accel_test

import (
	"testing"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
	"github.com/llmesh/llmesh/accel/engine"
	"github.com/llmesh/llmesh/accel/transformer"
)

// serveRuntimeRole serves the real runtime for role "cpu", as
// plugins/cpu does.
func serveRuntimeRole(role string) bool {
	if role != "cpu" {
		return false
	}
	accel.Serve(engine.New("cpu", transformer.PortableKernels()))
	return true
}

// TestConformanceCPU runs the suite on the runtime through a plugin process,
// against the same runtime in-process as the reference.
func TestConformanceCPU(t *testing.T) {
	h, _ := newHost(t, nil)
	p := launch(t, h, "cpu")
	acceltest.Run(t, p, acceltest.Options{Reference: engine.New("cpu", transformer.PortableKernels())})
}
