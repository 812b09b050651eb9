package acceltest

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/llmesh/llmesh/accel"
)

// ReexecEnv names the backend a re-executed test binary serves: go-plugin's
// re-exec helper pattern, where a test's plugin host launches the test
// binary itself (Reexec) and its TestMain serves a backend (ServeIfReexec)
// instead of running tests.
const ReexecEnv = "LLMESH_TEST_PLUGIN"

// ServeIfReexec returns at once in a normal test run. In a test binary
// launched by Reexec it serves the backend named by ReexecEnv from backends
// and exits; an unknown name exits with status 2. Call it first in TestMain.
func ServeIfReexec(backends map[string]func() accel.Backend) {
	name := os.Getenv(ReexecEnv)
	if name == "" {
		return
	}
	mk, ok := backends[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "no test backend %q\n", name)
		os.Exit(2)
	}
	accel.Serve(mk())
	os.Exit(0)
}

// Reexec is a HostConfig.Command that launches this test binary as the
// plugin for backend name.
func Reexec(name string) (*exec.Cmd, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), ReexecEnv+"="+name)
	return cmd, nil
}
