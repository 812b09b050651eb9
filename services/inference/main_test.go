package inference

import (
	"os"
	"testing"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
	"github.com/llmesh/llmesh/accel/engine"
	"github.com/llmesh/llmesh/accel/stub"
	"github.com/llmesh/llmesh/accel/transformer"
)

// TestMain doubles as the cpu plugin (or the tpu stub, which launches but
// loads nothing) when the host in these tests launches the test binary
// (acceltest.Reexec).
func TestMain(m *testing.M) {
	acceltest.ServeIfReexec(map[string]func() accel.Backend{
		// A small KV-cache budget: the cache keeps released prefixes until
		// it is full, so the soak sees the plugin's memory level off.
		"cpu": func() accel.Backend {
			return engine.New("cpu", transformer.PortableKernels(), engine.WithKVCacheBytes(16<<20))
		},
		"tpu": func() accel.Backend { return stub.New("tpu", "the TPU backend is a stub by design") },
	})
	os.Exit(m.Run())
}

// reexec launches this test binary as the plugin for backend name.
var reexec = acceltest.Reexec
