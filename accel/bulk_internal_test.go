package accel

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCheckBulkPath(t *testing.T) {
	good := filepath.Join(os.TempDir(), bulkPrefix+"123")
	if err := checkBulkPath(good); err != nil {
		t.Fatalf("checkBulkPath(%q) = %v", good, err)
	}
	for _, p := range []string{
		"", "llmesh-bulk-1", "./llmesh-bulk-1", "/tmp/../etc/passwd", "/tmp/x/../llmesh-bulk-1",
		"/etc/passwd", "/tmp/llmesh-bulk-1/", "/tmp/other-llmesh-bulk-1", "/tmp/llmesh-bulk-\x00",
	} {
		if err := checkBulkPath(p); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("checkBulkPath(%q) = %v, want ErrInvalidArgument", p, err)
		}
	}
}

// The plugin side maps the host's region and sees what the host wrote;
// it refuses symlinks, directories, short files and missing files.
func TestBulkMapsView(t *testing.T) {
	r, err := newRegion(minBulkBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	for i := range floats(r.mem, 100) {
		floats(r.mem, 100)[i] = float32(i)
	}
	var s bulkMaps
	mem, release, err := s.view(r.path, 400)
	if err != nil {
		t.Fatal(err)
	}
	if got := floats(mem, 100)[99]; got != 99 {
		t.Fatalf("plugin view reads %v, want 99", got)
	}
	floats(mem, 1)[0] = -1 // and the host sees the plugin's writes
	if floats(r.mem, 1)[0] != -1 {
		t.Fatal("host does not see the plugin's write")
	}
	release()
	// Growing the region: the plugin maps the longer file.
	if err := r.grow(4 * minBulkBytes); err != nil {
		t.Fatal(err)
	}
	if _, release, err := s.view(r.path, 4*minBulkBytes); err != nil {
		t.Fatal(err)
	} else {
		release()
	}
	if _, _, err := s.view(r.path, 8*minBulkBytes); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("view past the file's end = %v, want ErrInvalidArgument", err)
	}

	dir := t.TempDir()
	link := filepath.Join(dir, bulkPrefix+"link")
	if err := os.Symlink(r.path, link); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.view(link, 4); err == nil {
		t.Error("view followed a symlink")
	}
	sub := filepath.Join(dir, bulkPrefix+"dir")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.view(sub, 4); err == nil {
		t.Error("view mapped a directory")
	}
	if _, _, err := s.view(filepath.Join(dir, bulkPrefix+"missing"), 4); !errors.Is(err, errBulkUnavailable) {
		t.Errorf("view of a missing file = %v, want errBulkUnavailable", err)
	}
}

// A pool never lends one region to two calls, and close removes the files.
func TestBulkPool(t *testing.T) {
	var p bulkPool
	if r := p.get(minBulkBytes - 1); r != nil {
		t.Fatal("a small vector got a region")
	}
	a, b := p.get(minBulkBytes), p.get(minBulkBytes)
	if a == nil || b == nil || a == b {
		t.Fatalf("regions %p and %p", a, b)
	}
	p.put(a)
	if c := p.get(2 * minBulkBytes); c != a || len(c.mem) < 2*minBulkBytes {
		t.Fatalf("the free region was not reused and grown")
	}
	p.put(a)
	p.close()
	if _, err := os.Stat(a.path); !os.IsNotExist(err) {
		t.Errorf("free region %s survives close: %v", a.path, err)
	}
	p.put(b) // lent out during close: removed when it comes back
	if _, err := os.Stat(b.path); !os.IsNotExist(err) {
		t.Errorf("returned region %s survives close: %v", b.path, err)
	}
	if r := p.get(minBulkBytes); r != nil {
		t.Error("a closed pool lent a region")
	}
}
