package quantizer

import (
	"os"
	"testing"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
	"github.com/llmesh/llmesh/accel/engine"
	"github.com/llmesh/llmesh/accel/transformer"
)

// TestMain doubles as the cpu plugin when the host in these tests launches
// the test binary.
func TestMain(m *testing.M) {
	acceltest.ServeIfReexec(map[string]func() accel.Backend{
		"cpu": func() accel.Backend { return engine.New("cpu", transformer.PortableKernels()) },
	})
	os.Exit(m.Run())
}
