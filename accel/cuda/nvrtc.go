package cuda

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"
)

// nvrtc is libnvrtc's entry points.
type nvrtc struct {
	lib            string
	version        func(major, minor *int32) int32
	create         func(prog *uintptr, src *byte, name *byte, numHeaders int32, headers, includeNames unsafe.Pointer) int32
	compile        func(prog uintptr, numOptions int32, options unsafe.Pointer) int32
	logSize        func(prog uintptr, n *uintptr) int32
	log            func(prog uintptr, buf *byte) int32
	ptxSize        func(prog uintptr, n *uintptr) int32
	ptx            func(prog uintptr, buf *byte) int32
	destroy        func(prog *uintptr) int32
	getErrorString func(rc int32) string
}

func loadNVRTC() (*nvrtc, error) {
	h, lib, err := dlopenFirst(NVRTCLibraries)
	if err != nil {
		return nil, fmt.Errorf("%w: NVRTC: %v", ErrNoLibrary, err)
	}
	nv := &nvrtc{lib: lib}
	if err := bind(h, lib, map[string]any{
		"nvrtcVersion":           &nv.version,
		"nvrtcCreateProgram":     &nv.create,
		"nvrtcCompileProgram":    &nv.compile,
		"nvrtcGetProgramLogSize": &nv.logSize,
		"nvrtcGetProgramLog":     &nv.log,
		"nvrtcGetPTXSize":        &nv.ptxSize,
		"nvrtcGetPTX":            &nv.ptx,
		"nvrtcDestroyProgram":    &nv.destroy,
		"nvrtcGetErrorString":    &nv.getErrorString,
	}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoLibrary, err)
	}
	return nv, nil
}

func (nv *nvrtc) check(op string, rc int32) error {
	if rc == 0 {
		return nil
	}
	return &Error{Op: op, Code: rc, Name: nv.getErrorString(rc)}
}

// build compiles src to PTX (NUL-terminated, ready for cuModuleLoadData).
// A failed compile returns an *Error carrying NVRTC's log.
func (nv *nvrtc) build(src, name string, opts []string) ([]byte, error) {
	csrc, cname := cString(src), cString(name)
	var prog uintptr
	if err := nv.check("nvrtcCreateProgram", nv.create(&prog, &csrc[0], &cname[0], 0, nil, nil)); err != nil {
		return nil, err
	}
	defer nv.destroy(&prog)

	// options is a C array of C strings held in Go memory: pin each
	// string so the array may point at them.
	var pin runtime.Pinner
	defer pin.Unpin()
	copts := make([]*byte, len(opts)+1)
	for i, o := range opts {
		b := cString(o)
		pin.Pin(&b[0])
		copts[i] = &b[0]
	}
	rc := nv.compile(prog, int32(len(opts)), unsafe.Pointer(&copts[0]))
	runtime.KeepAlive(copts)
	if rc != 0 {
		e := nv.check("nvrtcCompileProgram "+name, rc).(*Error)
		var n uintptr
		if nv.logSize(prog, &n) == 0 && n > 1 {
			buf := make([]byte, n)
			if nv.log(prog, &buf[0]) == 0 {
				e.Log = string(buf[:n-1])
			}
		}
		return nil, e
	}
	var n uintptr
	if err := nv.check("nvrtcGetPTXSize", nv.ptxSize(prog, &n)); err != nil {
		return nil, err
	}
	ptx := make([]byte, n+1) // n counts the NUL; one spare keeps &ptx[0] valid
	if err := nv.check("nvrtcGetPTX", nv.ptx(prog, &ptx[0])); err != nil {
		return nil, err
	}
	return ptx, nil
}

// Module is compiled device code loaded into the Device's context. It
// lives until the Device is closed.
type Module struct {
	d     *Device
	h     uintptr
	mu    sync.Mutex
	funcs map[string]uintptr
}

// Dim3 is a grid or block size; zero fields count as 1.
type Dim3 struct{ X, Y, Z uint32 }

func (v Dim3) dims() (uint32, uint32, uint32) {
	one := func(x uint32) uint32 { return max(x, 1) }
	return one(v.X), one(v.Y), one(v.Z)
}

// nvrtcLib loads NVRTC once per Device.
func (d *Device) nvrtcLib() (*nvrtc, error) {
	d.nvOnce.Do(func() { d.nv, d.nvErr = loadNVRTC() })
	return d.nv, d.nvErr
}

// Arch is the NVRTC architecture option for the device, e.g.
// "--gpu-architecture=compute_90".
func (d *Device) Arch() string {
	return fmt.Sprintf("--gpu-architecture=compute_%d%d", d.Major, d.Minor)
}

// Compile compiles the CUDA C src (name is its file name in messages)
// with NVRTC for this device's architecture plus opts, and loads the PTX
// into the context. Kernels looked up by Launch must be extern "C". A
// compile error carries NVRTC's log.
func (d *Device) Compile(src, name string, opts ...string) (*Module, error) {
	nv, err := d.nvrtcLib()
	if err != nil {
		return nil, err
	}
	ptx, err := nv.build(src, name, append([]string{d.Arch()}, opts...))
	if err != nil {
		return nil, fmt.Errorf("compile %s for sm_%d%d with %s: %w", name, d.Major, d.Minor, nv.lib, err)
	}
	m := &Module{d: d, funcs: map[string]uintptr{}}
	err = d.do(func() error {
		if err := d.drv.check("cuModuleLoadData", d.drv.cuModuleLoadData(&m.h, unsafe.Pointer(&ptx[0]))); err != nil {
			return fmt.Errorf("load %s: %w", name, err)
		}
		h := m.h
		d.cleanup = append(d.cleanup, func() { d.drv.cuModuleUnload(h) })
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Launch runs kernel fn on grid×block threads, no dynamic shared memory,
// on the default stream, and waits for it. args are the kernel's
// parameters in order: DevicePtr, int (passed as a C int), int32,
// uint32, float32 or bool (passed as a C int).
func (m *Module) Launch(fn string, grid, block Dim3, args ...any) error {
	return m.d.do(func() error {
		if err := m.launch(fn, grid, block, args...); err != nil {
			return err
		}
		return m.d.drv.check("cuCtxSynchronize", m.d.drv.cuCtxSynchronize())
	})
}

// launch runs on the Device's thread and does not wait for the kernel.
func (m *Module) launch(fn string, grid, block Dim3, args ...any) error {
	f, err := m.function(fn)
	if err != nil {
		return err
	}
	vals, err := packArgs(args)
	if err != nil {
		return fmt.Errorf("launch %s: %w", fn, err)
	}
	// kernelParams is an array of pointers to each value, all in Go
	// memory: pin the values so the array may point at them.
	var pin runtime.Pinner
	defer pin.Unpin()
	ptrs := make([]unsafe.Pointer, len(vals)+1)
	for i := range vals {
		pin.Pin(&vals[i])
		ptrs[i] = unsafe.Pointer(&vals[i])
	}
	gx, gy, gz := grid.dims()
	bx, by, bz := block.dims()
	rc := m.d.drv.cuLaunchKernel(f, gx, gy, gz, bx, by, bz, 0, 0, unsafe.Pointer(&ptrs[0]), nil)
	runtime.KeepAlive(ptrs)
	return m.d.drv.check("cuLaunchKernel "+fn, rc)
}

func (m *Module) function(fn string) (uintptr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.funcs[fn]; ok {
		return f, nil
	}
	var f uintptr
	cname := cString(fn)
	if err := m.d.drv.check("cuModuleGetFunction "+fn, m.d.drv.cuModuleGetFunction(&f, m.h, &cname[0])); err != nil {
		return 0, err
	}
	m.funcs[fn] = f
	return f, nil
}

// kernelArg is one kernel parameter, stored in 8 bytes (cuLaunchKernel
// reads as many bytes as the kernel's parameter type has, from the
// start: little-endian hosts only, like every CUDA host).
type kernelArg [8]byte

// packArgs lays out kernel parameters as their C types.
func packArgs(args []any) ([]kernelArg, error) {
	vals := make([]kernelArg, len(args))
	for i, a := range args {
		p := unsafe.Pointer(&vals[i])
		switch v := a.(type) {
		case DevicePtr:
			*(*uint64)(p) = uint64(v)
		case int:
			if v < math.MinInt32 || v > math.MaxInt32 {
				return nil, fmt.Errorf("argument %d: int %d does not fit a C int", i, v)
			}
			*(*int32)(p) = int32(v)
		case int32:
			*(*int32)(p) = v
		case uint32:
			*(*uint32)(p) = v
		case float32:
			*(*float32)(p) = v
		case bool:
			if v {
				*(*int32)(p) = 1
			}
		default:
			return nil, fmt.Errorf("argument %d: unsupported type %T (want DevicePtr, int, int32, uint32, float32 or bool)", i, a)
		}
	}
	return vals, nil
}
