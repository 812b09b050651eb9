// Command llmesh-plugin-cuda is the CUDA accelerator plugin. At startup it
// opens the first CUDA device and cuBLAS through accel/cuda, which loads
// the driver, cuBLAS and NVRTC at run time with purego — no cgo, so it
// builds everywhere with CGO_ENABLED=0 — and serves the transformer
// engine on the device's kernels (engine.New("cuda", kernels)); Info
// reports the GPU as its device, with its compute capability and the
// libraries loaded as features.
//
// Where there is no driver or no device it still handshakes and reports
// device "none", and every compute call fails with a "no CUDA device: …"
// error wrapping accel.ErrNotImplemented. Where a device is present but
// cuBLAS is missing it reports the device and fails compute calls saying
// so.
//
// Run with -probe it prints what it found (devices, driver version, the
// cuBLAS and NVRTC libraries) as JSON and exits, without the plugin
// handshake. The device and its context live as long as the process.
package main
