package trainer

import (
	"os"
	"testing"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
	"github.com/llmesh/llmesh/accel/engine"
	"github.com/llmesh/llmesh/accel/transformer"
)

// TestMain doubles as the cpu plugin when the host in these tests launches
// the test binary (acceltest.Reexec), and as a shard or checkpoint-writer
// process for the fault tests (roleEnv).
func TestMain(m *testing.M) {
	acceltest.ServeIfReexec(map[string]func() accel.Backend{
		"cpu": func() accel.Backend { return engine.New("cpu", transformer.PortableKernels()) },
	})
	runRoleIfReexec()
	os.Exit(m.Run())
}

// reexec launches this test binary as the plugin for backend name.
var reexec = acceltest.Reexec
