package main

import (
	"bytes"
	"fmt"

	"github.com/ebitengine/purego"

	"github.com/llmesh/llmesh/accel/cuda"
)

// driverLib is the CUDA driver library, as installed by the NVIDIA driver.
const driverLib = "libcuda.so.1"

// Device is one CUDA device the driver reported.
type Device struct {
	Ordinal int    `json:"ordinal"`
	Name    string `json:"name"`
}

// Probe is what the driver reported at startup.
type Probe struct {
	DriverVersion int      `json:"driver_version,omitempty"` // e.g. 12040 for 12.4
	Devices       []Device `json:"devices"`
	Err           string   `json:"error,omitempty"` // why there is no usable device
	// The cuBLAS and NVRTC libraries found (the first of
	// cuda.CUBLASLibraries and cuda.NVRTCLibraries that loads), or why none did.
	CUBLAS    string `json:"cublas,omitempty"`
	CUBLASErr string `json:"cublas_error,omitempty"`
	NVRTC     string `json:"nvrtc,omitempty"`
	NVRTCErr  string `json:"nvrtc_error,omitempty"`
}

// probeLibraries fills in which cuBLAS and NVRTC load.
func (p *Probe) probeLibraries() {
	var err error
	if p.CUBLAS, err = cuda.Find(cuda.CUBLASLibraries); err != nil {
		p.CUBLASErr = err.Error()
	}
	if p.NVRTC, err = cuda.Find(cuda.NVRTCLibraries); err != nil {
		p.NVRTCErr = err.Error()
	}
}

// probe loads the driver from lib and lists its devices, and looks for
// cuBLAS and NVRTC. It never panics: a missing library or symbol is
// reported in Probe.Err (or CUBLASErr, NVRTCErr).
func probe(lib string) Probe {
	p := probeDriver(lib)
	p.probeLibraries()
	return p
}

func probeDriver(lib string) Probe {
	h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return Probe{Err: fmt.Sprintf("dlopen: %v", err)}
	}
	var (
		cuInit             func(flags uint32) int32
		cuDriverGetVersion func(v *int32) int32
		cuDeviceGetCount   func(n *int32) int32
		cuDeviceGet        func(dev *int32, ordinal int32) int32
		cuDeviceGetName    func(name *byte, n int32, dev int32) int32
	)
	for sym, fn := range map[string]any{
		"cuInit":             &cuInit,
		"cuDriverGetVersion": &cuDriverGetVersion,
		"cuDeviceGetCount":   &cuDeviceGetCount,
		"cuDeviceGet":        &cuDeviceGet,
		"cuDeviceGetName":    &cuDeviceGetName,
	} {
		addr, err := purego.Dlsym(h, sym)
		if err != nil {
			return Probe{Err: fmt.Sprintf("%s: symbol %s: %v", lib, sym, err)}
		}
		purego.RegisterFunc(fn, addr)
	}
	var p Probe
	var v int32
	if rc := cuDriverGetVersion(&v); rc == 0 {
		p.DriverVersion = int(v)
	}
	if rc := cuInit(0); rc != 0 {
		p.Err = fmt.Sprintf("cuInit: CUresult %d", rc)
		return p
	}
	var n int32
	if rc := cuDeviceGetCount(&n); rc != 0 {
		p.Err = fmt.Sprintf("cuDeviceGetCount: CUresult %d", rc)
		return p
	}
	for i := int32(0); i < n; i++ {
		var dev int32
		if rc := cuDeviceGet(&dev, i); rc != 0 {
			p.Err = fmt.Sprintf("cuDeviceGet %d: CUresult %d", i, rc)
			return p
		}
		name := make([]byte, 256)
		if rc := cuDeviceGetName(&name[0], int32(len(name)), dev); rc != 0 {
			p.Err = fmt.Sprintf("cuDeviceGetName %d: CUresult %d", i, rc)
			return p
		}
		if j := bytes.IndexByte(name, 0); j >= 0 {
			name = name[:j]
		}
		p.Devices = append(p.Devices, Device{Ordinal: int(i), Name: string(name)})
	}
	if len(p.Devices) == 0 {
		p.Err = "the driver reports 0 devices"
	}
	return p
}
