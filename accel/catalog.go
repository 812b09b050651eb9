package accel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Catalog sources: where a CatalogEntry's binary was found.
const (
	SourceConfig     = "config"     // HostConfig.Plugins
	SourcePluginDir  = "plugin_dir" // HostConfig.PluginDir
	SourceExecutable = "executable" // next to the running executable
	SourcePath       = "path"       // a directory on $PATH
)

// CatalogOptions configures Host.Catalog.
type CatalogOptions struct {
	// Probe launches each binary briefly (in parallel, each bounded by
	// HostConfig.StartTimeout) to fill in CatalogEntry.Info. Without it
	// the catalog only reads files.
	Probe bool
}

// CatalogEntry is one backend the host can launch.
type CatalogEntry struct {
	Name   string // backend name, for Launch
	Path   string // the binary Launch would start
	Source string // where Path was found: SourceConfig, SourcePluginDir, ...
	SHA256 string // hex SHA-256 of Path; empty when it cannot be read
	// Pinned: HostConfig.Checksums has a checksum for the backend. When the
	// binary does not match it, Err wraps ErrChecksumMismatch.
	Pinned bool
	// Info is what the plugin reported when probed; nil without
	// CatalogOptions.Probe or when Err is set.
	Info *Info
	// Err says why the backend cannot be launched: a configured binary
	// missing (ErrPluginNotFound), a checksum mismatch, or, when probed, an
	// incompatible protocol version (ErrIncompatiblePlugin) or a failed
	// start.
	Err error
}

// Catalog lists the backends the host can launch: the binaries named in
// HostConfig.Plugins and every executable BinaryPrefix+name found in
// PluginDir, next to the running executable and on PATH — for each name the
// one Launch would start — sorted by name. A backend that cannot be used
// is listed with its Err; Catalog itself fails only when ctx ends or
// PluginDir cannot be read. HostConfig.Command is not consulted: the
// catalog describes binaries.
func (h *Host) Catalog(ctx context.Context, opts CatalogOptions) ([]CatalogEntry, error) {
	byName := make(map[string]*CatalogEntry)
	for name, path := range h.cfg.Plugins {
		e := &CatalogEntry{Name: name, Path: path, Source: SourceConfig}
		if err := checkExecutable(path); err != nil {
			e.Err = fmt.Errorf("%w: accelerator plugin %q: %v", ErrPluginNotFound, name, err)
		}
		byName[name] = e
	}
	scan := func(dir, source string) error {
		des, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, de := range des {
			name, ok := strings.CutPrefix(de.Name(), BinaryPrefix)
			if !ok || !backendName.MatchString(name) || byName[name] != nil {
				continue
			}
			path := filepath.Join(dir, de.Name())
			if checkExecutable(path) != nil {
				continue
			}
			byName[name] = &CatalogEntry{Name: name, Path: path, Source: source}
		}
		return nil
	}
	if h.cfg.PluginDir != "" {
		if err := scan(h.cfg.PluginDir, SourcePluginDir); err != nil {
			return nil, fmt.Errorf("accelerator plugin catalog: plugin dir: %w", err)
		}
	}
	if exe, err := os.Executable(); err == nil {
		_ = scan(filepath.Dir(exe), SourceExecutable) // best effort
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir == "" {
			dir = "."
		}
		_ = scan(dir, SourcePath) // PATH often names missing directories
	}

	entries := make([]*CatalogEntry, 0, len(byName))
	for _, e := range byName {
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b *CatalogEntry) int { return strings.Compare(a.Name, b.Name) })

	var wg sync.WaitGroup
	sem := make(chan struct{}, 4) // a few at once on a small machine
	for _, e := range entries {
		if e.Err != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e.SHA256, e.Err = FileChecksum(e.Path)
		_, e.Pinned = h.cfg.Checksums[e.Name]
		if e.Err == nil && e.Pinned {
			_, e.Err = h.checkPinned(e.Name, e.Path)
		}
		if e.Err != nil || !opts.Probe {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			e.Info, e.Err = h.probe(ctx, e.Name, e.Path)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]CatalogEntry, len(entries))
	for i, e := range entries {
		out[i] = *e
	}
	return out, nil
}

// probe starts the binary at path as backend name, takes its Info and
// stops it.
func (h *Host) probe(ctx context.Context, name, path string) (*Info, error) {
	cmd := exec.Command(path)
	h.setEnv(cmd)
	proc, err := h.startCmd(ctx, name, cmd)
	if err != nil {
		return nil, err
	}
	proc.kill()
	info := proc.info
	return &info, nil
}
