// Command llmesh-plugin-cuda is the CUDA accelerator plugin. At startup it
// loads the CUDA driver (libcuda.so.1) at run time through purego — no cgo,
// so it builds everywhere with CGO_ENABLED=0 — and counts the devices.
//
// Where there is no driver or no device it still handshakes and reports
// device "none", and every compute call fails with a "no CUDA device"
// error wrapping accel.ErrNotImplemented. Where a device is present it
// reports it, but the CUDA kernels are a later issue: compute calls fail
// with an error that says so.
//
// Run with -probe it prints what it found as JSON and exits, without the
// plugin handshake. The driver handle lives as long as the process.
package main
