package acceltest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/llmesh/llmesh/accel"
)

// BuildPlugin builds the plugin main package pkg (an import path or a
// directory) with CGO_ENABLED=0 into a temporary directory as
// accel.BinaryPrefix+name and returns that directory, for a HostConfig's
// PluginDir. It skips t when no go command is on PATH.
func BuildPlugin(t *testing.T, pkg, name string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("building plugin %s needs the go command: %v", name, err)
	}
	dir := t.TempDir()
	cmd := exec.Command(goBin, "build", "-o", filepath.Join(dir, accel.BinaryPrefix+name), pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return dir
}
