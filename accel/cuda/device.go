package cuda

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Device is one CUDA device with its primary context made current on a
// dedicated, locked OS thread. Every driver, cuBLAS and module call runs on
// that thread (calls from any goroutine are handed to it and wait), so a
// Device is safe for concurrent use and its calls are serialised.
type Device struct {
	Ordinal       int
	Name          string // e.g. "NVIDIA H200"
	Major, Minor  int    // compute capability
	TotalMem      uint64 // bytes
	SMs           int    // multiprocessors
	DriverVersion int    // e.g. 12040 for 12.4

	drv *driver
	dev int32
	ctx uintptr

	mu     sync.RWMutex // held for reading while a call is handed over; Close takes it for writing
	closed bool
	calls  chan func()
	done   chan struct{}

	cleanup []func() // run on the thread by Close, last first

	kmu     sync.Mutex
	kernels *Kernels

	nvOnce sync.Once
	nv     *nvrtc
	nvErr  error
}

// Option configures Open.
type Option func(*openCfg)

type openCfg struct {
	ordinal int
	lib     string
}

// WithOrdinal selects the device (default 0).
func WithOrdinal(i int) Option { return func(c *openCfg) { c.ordinal = i } }

// WithDriverLibrary loads the driver from lib instead of DriverLibrary.
func WithDriverLibrary(lib string) Option { return func(c *openCfg) { c.lib = lib } }

// Open loads the CUDA driver, initialises it and makes the device's
// primary context current on the Device's own thread. Every reason there
// is no usable device (no library, cuInit failing, no such ordinal) wraps
// ErrNoDevice. Close releases the context.
func Open(opts ...Option) (*Device, error) {
	cfg := openCfg{lib: DriverLibrary}
	for _, o := range opts {
		o(&cfg)
	}
	drv, err := loadDriver(cfg.lib)
	if err != nil {
		return nil, err
	}
	d := &Device{Ordinal: cfg.ordinal, drv: drv, calls: make(chan func()), done: make(chan struct{})}
	ready := make(chan error, 1)
	go d.loop(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return d, nil
}

// loop is the Device's thread: it initialises the context, then runs
// handed-over calls until Close closes d.calls. It never unlocks the OS
// thread, so the thread (with the context current on it) exits with it.
func (d *Device) loop(ready chan<- error) {
	runtime.LockOSThread()
	defer close(d.done)
	if err := d.init(); err != nil {
		d.runCleanup()
		ready <- err
		return
	}
	ready <- nil
	for f := range d.calls {
		f()
	}
	d.runCleanup()
}

func (d *Device) runCleanup() {
	for i := len(d.cleanup) - 1; i >= 0; i-- {
		d.cleanup[i]()
	}
	d.cleanup = nil
}

func (d *Device) init() error {
	drv := d.drv
	var v int32
	if drv.cuDriverGetVersion(&v) == cudaSuccess {
		d.DriverVersion = int(v)
	}
	if err := drv.check("cuInit", drv.cuInit(0)); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNoDevice, drv.lib, err)
	}
	var n int32
	if err := drv.check("cuDeviceGetCount", drv.cuDeviceGetCount(&n)); err != nil {
		return fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	if d.Ordinal < 0 || d.Ordinal >= int(n) {
		return fmt.Errorf("%w: device %d asked for, the driver reports %d", ErrNoDevice, d.Ordinal, n)
	}
	if err := drv.check("cuDeviceGet", drv.cuDeviceGet(&d.dev, int32(d.Ordinal))); err != nil {
		return fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	name := make([]byte, 256)
	if err := drv.check("cuDeviceGetName", drv.cuDeviceGetName(&name[0], int32(len(name)), d.dev)); err != nil {
		return err
	}
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	d.Name = string(name)
	for _, a := range []struct {
		attr int32
		dst  *int
	}{{attrComputeMajor, &d.Major}, {attrComputeMinor, &d.Minor}, {attrMultiprocessorCount, &d.SMs}} {
		var x int32
		if err := drv.check("cuDeviceGetAttribute", drv.cuDeviceGetAttribute(&x, a.attr, d.dev)); err != nil {
			return err
		}
		*a.dst = int(x)
	}
	var mem uintptr
	if err := drv.check("cuDeviceTotalMem_v2", drv.cuDeviceTotalMem(&mem, d.dev)); err != nil {
		return err
	}
	d.TotalMem = uint64(mem)
	if err := drv.check("cuDevicePrimaryCtxRetain", drv.cuDevicePrimaryCtxRetain(&d.ctx, d.dev)); err != nil {
		return err
	}
	dev := d.dev
	d.cleanup = append(d.cleanup, func() { drv.cuDevicePrimaryCtxRelease(dev) })
	return drv.check("cuCtxSetCurrent", drv.cuCtxSetCurrent(d.ctx))
}

// String describes the device, e.g. "cuda:0 NVIDIA H200 (sm_90, 139 GiB)".
func (d *Device) String() string {
	return fmt.Sprintf("cuda:%d %s (sm_%d%d, %d GiB)", d.Ordinal, d.Name, d.Major, d.Minor, d.TotalMem>>30)
}

// do runs fn on the Device's thread and returns its error.
func (d *Device) do(fn func() error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrClosed
	}
	errc := make(chan error, 1)
	d.calls <- func() { errc <- fn() }
	return <-errc
}

// Close waits for calls in flight, frees everything the Device allocated
// (cuBLAS handle, buffers, modules) and releases the primary context.
// Calls after Close fail with ErrClosed.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.calls)
	d.mu.Unlock()
	<-d.done
	return nil
}

// Alloc allocates bytes of device memory, freed by Free (or by Close).
func (d *Device) Alloc(bytes int) (DevicePtr, error) {
	var p DevicePtr
	err := d.do(func() error { return d.drv.check("cuMemAlloc_v2", d.drv.cuMemAlloc(&p, uintptr(bytes))) })
	return p, err
}

// Free frees memory from Alloc.
func (d *Device) Free(p DevicePtr) error {
	return d.do(func() error { return d.drv.check("cuMemFree_v2", d.drv.cuMemFree(p)) })
}

// Upload copies src to device memory at dst.
func (d *Device) Upload(dst DevicePtr, src []float32) error {
	return d.do(func() error { return d.htod(dst, src) })
}

// Download copies device memory at src into dst.
func (d *Device) Download(dst []float32, src DevicePtr) error {
	return d.do(func() error { return d.dtoh(dst, src) })
}

// htod and dtoh run on the thread. The Go slices they pass are heap
// memory (they reach this goroutine through a closure), which the Go
// collector does not move, and the copies are synchronous.
func (d *Device) htod(dst DevicePtr, src []float32) error {
	if len(src) == 0 {
		return nil
	}
	return d.drv.check("cuMemcpyHtoD_v2", d.drv.cuMemcpyHtoD(dst, unsafe.Pointer(&src[0]), uintptr(4*len(src))))
}

func (d *Device) dtoh(dst []float32, src DevicePtr) error {
	if len(dst) == 0 {
		return nil
	}
	return d.drv.check("cuMemcpyDtoH_v2", d.drv.cuMemcpyDtoH(unsafe.Pointer(&dst[0]), src, uintptr(4*len(dst))))
}

func (d *Device) htodBytes(dst DevicePtr, src unsafe.Pointer, n int) error {
	if n == 0 {
		return nil
	}
	return d.drv.check("cuMemcpyHtoD_v2", d.drv.cuMemcpyHtoD(dst, src, uintptr(n)))
}

// buffer is device memory that grows to the largest size asked for and is
// reused; it is freed by the Device's cleanup.
type buffer struct {
	ptr   DevicePtr
	bytes int
}

// ensure makes b hold at least n bytes (on the thread). Growth is by at
// least 1.5× so a slowly growing caller does not reallocate every call.
func (d *Device) ensure(b *buffer, n int) error {
	if n <= b.bytes {
		return nil
	}
	if b.ptr != 0 {
		if err := d.drv.check("cuMemFree_v2", d.drv.cuMemFree(b.ptr)); err != nil {
			return err
		}
		b.ptr, b.bytes = 0, 0
	}
	n = max(n, b.bytes*3/2, 1<<20)
	var p DevicePtr
	if err := d.drv.check("cuMemAlloc_v2", d.drv.cuMemAlloc(&p, uintptr(n))); err != nil {
		return fmt.Errorf("device buffer of %d bytes on %s: %w", n, d.Name, err)
	}
	b.ptr, b.bytes = p, n
	return nil
}

// free releases b (on the thread).
func (d *Device) free(b *buffer) {
	if b.ptr != 0 {
		d.drv.cuMemFree(b.ptr)
		b.ptr, b.bytes = 0, 0
	}
}

func (d *Device) dtohBytes(dst unsafe.Pointer, src DevicePtr, n int) error {
	if n == 0 {
		return nil
	}
	return d.drv.check("cuMemcpyDtoH_v2", d.drv.cuMemcpyDtoH(dst, src, uintptr(n)))
}
