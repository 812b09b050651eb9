package gateway

import (
	"os"
	"testing"

	"github.com/llmesh/llmesh/services/inference/inferencetest"
)

// TestMain doubles as the cpu plugin when the inference service in these
// tests launches the test binary.
func TestMain(m *testing.M) {
	inferencetest.ServeIfReexec()
	os.Exit(m.Run())
}
