package accel_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmesh/llmesh/accel"
)

// writeRoleScript writes an executable plugin named BinaryPrefix+name in
// dir that re-execs this test binary as role.
func writeRoleScript(t *testing.T, dir, name, role string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, accel.BinaryPrefix+name)
	script := fmt.Sprintf("#!/bin/sh\n%s=%s exec %q \"$@\"\n", testRoleEnv, role, os.Args[0])
	if err := os.WriteFile(path, []byte(script), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCatalog(t *testing.T) {
	tpu := buildTPU(t) // a real plugin binary
	dir := filepath.Dir(tpu)
	bigram := writeRoleScript(t, dir, "bigram", "bigram", 0o755)
	writeRoleScript(t, dir, "oldinfo", "badinfo", 0o755)
	writeRoleScript(t, dir, "oldshake", "badversion", 0o755)
	writeRoleScript(t, dir, "pinned", "bigram", 0o755)
	writeRoleScript(t, dir, "noexec", "bigram", 0o644)
	if err := os.WriteFile(filepath.Join(dir, "not-a-plugin"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	// On PATH: one more plugin, and a tpu that the plugin dir's shadows.
	pathDir := t.TempDir()
	onPath := writeRoleScript(t, pathDir, "onpath", "tpu", 0o755)
	writeRoleScript(t, pathDir, "tpu", "bigram", 0o755)
	t.Setenv("PATH", pathDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	// Configured: one that points at the bigram script, one that is missing.
	configured := map[string]string{"mine": bigram, "gone": filepath.Join(dir, "nonexistent")}

	tpuSum, err := accel.FileChecksum(tpu)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := newHost(t, func(c *accel.HostConfig) {
		c.Command = nil
		c.PluginDir = dir
		c.Plugins = configured
		c.Checksums = map[string]string{"tpu": tpuSum, "pinned": strings.Repeat("ab", 32)}
	})

	type want struct {
		path, source string
		pinned       bool
		err          error // matched with errors.Is
		stub         bool  // when probed
	}
	wants := map[string]want{
		"tpu":      {path: tpu, source: accel.SourcePluginDir, pinned: true, stub: true},
		"bigram":   {path: bigram, source: accel.SourcePluginDir},
		"mine":     {path: bigram, source: accel.SourceConfig},
		"gone":     {path: configured["gone"], source: accel.SourceConfig, err: accel.ErrPluginNotFound},
		"pinned":   {path: filepath.Join(dir, accel.BinaryPrefix+"pinned"), source: accel.SourcePluginDir, pinned: true, err: accel.ErrChecksumMismatch},
		"oldinfo":  {path: filepath.Join(dir, accel.BinaryPrefix+"oldinfo"), source: accel.SourcePluginDir},
		"oldshake": {path: filepath.Join(dir, accel.BinaryPrefix+"oldshake"), source: accel.SourcePluginDir},
		"onpath":   {path: onPath, source: accel.SourcePath, stub: true},
	}
	for _, probe := range []bool{false, true} {
		t.Run(fmt.Sprintf("probe=%v", probe), func(t *testing.T) {
			entries, err := h.Catalog(t.Context(), accel.CatalogOptions{Probe: probe})
			if err != nil {
				t.Fatalf("Catalog: %v", err)
			}
			got := make(map[string]accel.CatalogEntry)
			for i, e := range entries {
				if i > 0 && entries[i-1].Name >= e.Name {
					t.Errorf("entries not sorted by name: %q before %q", entries[i-1].Name, e.Name)
				}
				got[e.Name] = e
			}
			for _, name := range []string{"noexec", "not-a-plugin"} {
				if _, ok := got[name]; ok {
					t.Errorf("Catalog lists %q", name)
				}
			}
			for name, w := range wants {
				e, ok := got[name]
				if !ok {
					t.Errorf("Catalog does not list %q", name)
					continue
				}
				if e.Path != w.path || e.Source != w.source || e.Pinned != w.pinned {
					t.Errorf("%s: path %s source %s pinned %v, want %s %s %v", name, e.Path, e.Source, e.Pinned, w.path, w.source, w.pinned)
				}
				wantErr := w.err
				if probe && (name == "oldinfo" || name == "oldshake") {
					wantErr = accel.ErrIncompatiblePlugin
				}
				if wantErr == nil && e.Err != nil || wantErr != nil && !errors.Is(e.Err, wantErr) {
					t.Errorf("%s: Err = %v, want %v", name, e.Err, wantErr)
				}
				if w.err == nil {
					if sum, _ := accel.FileChecksum(w.path); e.SHA256 != sum {
						t.Errorf("%s: SHA256 %q, want %q", name, e.SHA256, sum)
					}
				}
				switch {
				case !probe || e.Err != nil:
					if e.Info != nil {
						t.Errorf("%s: Info %+v without a successful probe", name, e.Info)
					}
				case e.Info == nil:
					t.Errorf("%s: probed without Info", name)
				case e.Info.Stub != w.stub || e.Info.ProtocolVersion != accel.ProtocolVersion || e.Info.Version == "":
					t.Errorf("%s: Info %+v, want stub %v at protocol %d", name, *e.Info, w.stub, accel.ProtocolVersion)
				}
			}
			if e := got["oldinfo"]; probe && e.Err != nil && !strings.Contains(e.Err.Error(), "protocol version") {
				t.Errorf("oldinfo: error %q does not name the protocol version", e.Err)
			}
		})
	}
}
