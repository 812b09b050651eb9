package inference

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/engine"
	"github.com/llmesh/llmesh/accel/stub"
	"github.com/llmesh/llmesh/accel/transformer"
)

// pluginEnv names the backend a re-executed test binary serves (go-plugin's
// re-exec helper pattern): the host in these tests launches os.Args[0] with
// it set, and TestMain serves the cpu engine (or the tpu stub) instead of
// running tests.
const pluginEnv = "LLMESH_TEST_PLUGIN"

func TestMain(m *testing.M) {
	if name := os.Getenv(pluginEnv); name != "" {
		switch name {
		case "cpu":
			accel.Serve(engine.New("cpu", transformer.PortableKernels()))
		case "tpu": // launches, but loads nothing
			accel.Serve(stub.New("tpu", "the TPU backend is a stub by design"))
		default:
			fmt.Fprintf(os.Stderr, "no test backend %q\n", name)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// reexec launches this test binary as the plugin for backend name.
func reexec(name string) (*exec.Cmd, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), pluginEnv+"="+name)
	return cmd, nil
}
