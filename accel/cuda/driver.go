package cuda

import (
	"fmt"
	"unsafe"

	"github.com/ebitengine/purego"
)

// DevicePtr is an address in device memory (CUdeviceptr).
type DevicePtr uint64

// driver is libcuda's entry points, resolved once by loadDriver.
type driver struct {
	lib string

	cuInit                    func(flags uint32) int32
	cuDriverGetVersion        func(v *int32) int32
	cuDeviceGetCount          func(n *int32) int32
	cuDeviceGet               func(dev *int32, ordinal int32) int32
	cuDeviceGetName           func(name *byte, n int32, dev int32) int32
	cuDeviceGetAttribute      func(v *int32, attr int32, dev int32) int32
	cuDeviceTotalMem          func(bytes *uintptr, dev int32) int32
	cuDevicePrimaryCtxRetain  func(ctx *uintptr, dev int32) int32
	cuDevicePrimaryCtxRelease func(dev int32) int32
	cuCtxSetCurrent           func(ctx uintptr) int32
	cuCtxSynchronize          func() int32
	cuMemAlloc                func(p *DevicePtr, bytes uintptr) int32
	cuMemFree                 func(p DevicePtr) int32
	cuMemcpyHtoD              func(dst DevicePtr, src unsafe.Pointer, bytes uintptr) int32
	cuMemcpyDtoH              func(dst unsafe.Pointer, src DevicePtr, bytes uintptr) int32
	cuModuleLoadData          func(mod *uintptr, image unsafe.Pointer) int32
	cuModuleUnload            func(mod uintptr) int32
	cuModuleGetFunction       func(fn *uintptr, mod uintptr, name *byte) int32
	cuLaunchKernel            func(fn uintptr, gx, gy, gz, bx, by, bz, sharedMem uint32, stream uintptr, params unsafe.Pointer, extra unsafe.Pointer) int32
	cuGetErrorName            func(rc int32, name **byte) int32 // optional
}

// CUdevice_attribute values used here.
const (
	attrMultiprocessorCount = 16
	attrComputeMajor        = 75
	attrComputeMinor        = 76
)

// loadDriver opens lib and resolves the driver API; any failure wraps
// ErrNoDevice.
func loadDriver(lib string) (*driver, error) {
	h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("%w: dlopen %s: %v", ErrNoDevice, lib, err)
	}
	d := &driver{lib: lib}
	err = bind(h, lib, map[string]any{
		"cuInit":                       &d.cuInit,
		"cuDriverGetVersion":           &d.cuDriverGetVersion,
		"cuDeviceGetCount":             &d.cuDeviceGetCount,
		"cuDeviceGet":                  &d.cuDeviceGet,
		"cuDeviceGetName":              &d.cuDeviceGetName,
		"cuDeviceGetAttribute":         &d.cuDeviceGetAttribute,
		"cuDeviceTotalMem_v2":          &d.cuDeviceTotalMem,
		"cuDevicePrimaryCtxRetain":     &d.cuDevicePrimaryCtxRetain,
		"cuDevicePrimaryCtxRelease_v2": &d.cuDevicePrimaryCtxRelease,
		"cuCtxSetCurrent":              &d.cuCtxSetCurrent,
		"cuCtxSynchronize":             &d.cuCtxSynchronize,
		"cuMemAlloc_v2":                &d.cuMemAlloc,
		"cuMemFree_v2":                 &d.cuMemFree,
		"cuMemcpyHtoD_v2":              &d.cuMemcpyHtoD,
		"cuMemcpyDtoH_v2":              &d.cuMemcpyDtoH,
		"cuModuleLoadData":             &d.cuModuleLoadData,
		"cuModuleUnload":               &d.cuModuleUnload,
		"cuModuleGetFunction":          &d.cuModuleGetFunction,
		"cuLaunchKernel":               &d.cuLaunchKernel,
		"cuGetErrorName?":              &d.cuGetErrorName,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: driver too old or not CUDA: %v", ErrNoDevice, err)
	}
	return d, nil
}

// check turns a CUresult into nil or an *Error naming op.
func (d *driver) check(op string, rc int32) error {
	if rc == cudaSuccess {
		return nil
	}
	e := &Error{Op: op, Code: rc, Name: cuResultNames[rc]}
	if d.cuGetErrorName != nil {
		var p *byte
		if d.cuGetErrorName(rc, &p) == cudaSuccess && p != nil {
			e.Name = goString(p)
		}
	}
	return e
}
