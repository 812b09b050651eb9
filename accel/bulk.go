package accel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Bulk floats between the host and its own plugin process — the gradients
// a TrainStep returns and an ApplyUpdate takes — travel through a shared
// memory file instead of gRPC messages (DESIGN.md, "Tensors"): the host
// creates the file (under /dev/shm where it can, mode 0600), the plugin
// maps the path it is given, and only the path and a count cross the
// connection. A 17 MB gradient costs two memory copies this way against
// protobuf encoding, TLS and HTTP/2 flow control the other. Small vectors,
// hosts without a writable temporary directory and plugins that cannot open
// the file fall back to the message itself. A TrainStep whose request has
// GradientsReady goes through TrainStepStream: the plugin writes each
// finished range of gradients into the file and then sends its bounds, so
// the host can use it while the backward pass goes on.

const (
	// bulkPrefix starts the name of every bulk file; the plugin side opens
	// nothing else.
	bulkPrefix = "llmesh-bulk-"
	// minBulkBytes: smaller vectors travel inline, where a message is
	// cheaper than a shared file.
	minBulkBytes = 256 << 10
	// maxBulkBytes bounds a mapping (the gradients of MaxParams-sized
	// models in float32 fit).
	maxBulkBytes = 1 << 34
	// maxBulkMaps bounds the mappings a plugin keeps open.
	maxBulkMaps = 16
)

// errBulkUnavailable marks a bulk file the plugin could not open (another
// mount namespace, another user): the host stops using bulk files and
// repeats the call inline.
var errBulkUnavailable = errors.New("accel: bulk file unavailable")

// region is one host-side bulk file, mapped read-write.
type region struct {
	f    *os.File
	path string
	mem  []byte
}

func bulkDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() && unix.Access("/dev/shm", unix.W_OK) == nil {
		return "/dev/shm"
	}
	return os.TempDir()
}

func newRegion(size int) (*region, error) {
	f, err := os.CreateTemp(bulkDir(), bulkPrefix+"*")
	if err != nil {
		return nil, err
	}
	r := &region{f: f, path: f.Name()}
	if err := r.grow(size); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// grow makes the region at least size bytes. It never shrinks: a plugin
// may still map the old length.
func (r *region) grow(size int) error {
	if size <= len(r.mem) {
		return nil
	}
	if size > maxBulkBytes {
		return fmt.Errorf("bulk region of %d bytes is over the %d limit", size, maxBulkBytes)
	}
	if r.mem != nil {
		if err := unix.Munmap(r.mem); err != nil {
			return err
		}
		r.mem = nil
	}
	if err := r.f.Truncate(int64(size)); err != nil {
		return err
	}
	mem, err := unix.Mmap(int(r.f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	r.mem = mem
	return nil
}

func (r *region) close() {
	if r.mem != nil {
		_ = unix.Munmap(r.mem)
		r.mem = nil
	}
	_ = r.f.Close()
	_ = os.Remove(r.path)
}

// floats views the first n float32 values of mem (n*4 <= len(mem)).
func floats(mem []byte, n int) []float32 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&mem[0])), n)
}

// bulkPool hands each call its own region, so concurrent calls never
// share one. The host side of one plugin process owns one pool.
type bulkPool struct {
	mu       sync.Mutex
	free     []*region
	hint     int // bytes of the last gradients seen: the size to create
	disabled bool
	closed   bool
}

// get returns a region of at least size bytes, or nil when bulk files are
// off or cannot be made (the caller goes inline).
func (p *bulkPool) get(size int) *region {
	if size < minBulkBytes {
		return nil
	}
	p.mu.Lock()
	if p.disabled || p.closed {
		p.mu.Unlock()
		return nil
	}
	var r *region
	if n := len(p.free); n > 0 {
		r, p.free = p.free[n-1], p.free[:n-1]
	}
	p.mu.Unlock()
	var err error
	if r == nil {
		if r, err = newRegion(size); err != nil {
			p.disable()
			return nil
		}
	} else if err = r.grow(size); err != nil {
		p.put(r)
		return nil
	}
	return r
}

func (p *bulkPool) put(r *region) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		r.close()
		return
	}
	p.free = append(p.free, r)
}

func (p *bulkPool) disable() {
	p.mu.Lock()
	p.disabled = true
	p.mu.Unlock()
}

// sizeHint is the region size a TrainStep asks for (0 before any
// gradients came back).
func (p *bulkPool) sizeHint() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disabled {
		return 0
	}
	return p.hint
}

func (p *bulkPool) setHint(bytes int) {
	p.mu.Lock()
	p.hint = bytes
	p.mu.Unlock()
}

// close removes every region; regions still lent out are removed when
// they come back.
func (p *bulkPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, r := range p.free {
		r.close()
	}
	p.free = nil
}

// bulkMaps is the plugin side: the host's bulk files it has mapped, by
// path.
type bulkMaps struct {
	mu    sync.Mutex
	maps  map[string]*mapped
	order []string
}

type mapped struct {
	f    *os.File
	mem  []byte
	refs int // calls using the mapping now
}

// checkBulkPath refuses anything but a clean absolute path to a file named
// like a bulk file: no relative paths, no "..", no other names.
func checkBulkPath(path string) error {
	if path == "" || !filepath.IsAbs(path) || filepath.Clean(path) != path ||
		!strings.HasPrefix(filepath.Base(path), bulkPrefix) || strings.ContainsRune(path, 0) {
		return fmt.Errorf("%w: bulk path %q is not an absolute path to an %s* file", ErrInvalidArgument, path, bulkPrefix)
	}
	return nil
}

// view returns at least need bytes of the bulk file at path, mapping (or
// re-mapping a grown) file as needed, and the release the caller must call
// when it is done with them. The host never shrinks a file.
func (s *bulkMaps) view(path string, need int) ([]byte, func(), error) {
	mem, m, err := s.acquire(path, need)
	if err != nil {
		return nil, nil, err
	}
	return mem, func() {
		s.mu.Lock()
		m.refs--
		s.mu.Unlock()
	}, nil
}

func (s *bulkMaps) acquire(path string, need int) ([]byte, *mapped, error) {
	if err := checkBulkPath(path); err != nil {
		return nil, nil, err
	}
	if need < 0 || need > maxBulkBytes {
		return nil, nil, fmt.Errorf("%w: bulk of %d bytes is over the %d limit", ErrInvalidArgument, need, maxBulkBytes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.maps[path]; m != nil {
		if len(m.mem) >= need {
			m.refs++
			return m.mem, m, nil
		}
		if m.refs > 0 {
			return nil, nil, fmt.Errorf("%w: bulk file %s is in use by another call", ErrInvalidArgument, path)
		}
		s.drop(path)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: open %s: %v", errBulkUnavailable, path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%w: stat %s: %v", errBulkUnavailable, path, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		f.Close()
		return nil, nil, fmt.Errorf("%w: bulk path %s is not a regular file", ErrInvalidArgument, path)
	case int(st.Uid) != os.Getuid():
		f.Close()
		return nil, nil, fmt.Errorf("%w: bulk file %s belongs to uid %d, not this process's %d", ErrInvalidArgument, path, st.Uid, os.Getuid())
	case st.Size < int64(need) || st.Size > maxBulkBytes:
		f.Close()
		return nil, nil, fmt.Errorf("%w: bulk file %s has %d bytes, the call needs %d", ErrInvalidArgument, path, st.Size, need)
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%w: map %s: %v", errBulkUnavailable, path, err)
	}
	if s.maps == nil {
		s.maps = map[string]*mapped{}
	}
	// Make room: unmap the oldest mappings no call is using.
	for i := 0; len(s.order) >= maxBulkMaps && i < len(s.order); {
		if p := s.order[i]; s.maps[p].refs == 0 {
			s.drop(p)
			continue
		}
		i++
	}
	m := &mapped{f: f, mem: mem, refs: 1}
	s.maps[path] = m
	s.order = append(s.order, path)
	return mem, m, nil
}

// drop unmaps path (s.mu held; no call is using it).
func (s *bulkMaps) drop(path string) {
	if m := s.maps[path]; m != nil {
		_ = unix.Munmap(m.mem)
		_ = m.f.Close()
		delete(s.maps, path)
	}
	for i, p := range s.order {
		if p == path {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}
