// Package cuda runs the transformer runtime's kernels on an NVIDIA GPU
// without cgo: the CUDA driver (libcuda.so.1), cuBLAS and NVRTC are loaded
// at run time with purego, so the package builds with CGO_ENABLED=0 and no
// CUDA headers, and where there is no driver or no device Open fails
// cleanly with an error wrapping ErrNoDevice.
//
// # What it owns
//
// A Device (from Open) owns one device's primary context, made current on
// a dedicated goroutine locked to its OS thread; every driver, cuBLAS and
// module call is handed to that goroutine, so a Device and everything made
// from it is safe for concurrent use, with calls serialised. Device.Close
// frees everything made from it — the cuBLAS handle, device buffers,
// modules — and releases the context; calls after it fail with ErrClosed.
//
// Device.Kernels loads cuBLAS and returns a transformer.Kernels whose
// Sgemm runs cublasSgemm_v2 in fp32 (row-major operands are passed
// swapped, Cᵀ = op(B)ᵀ·op(A)ᵀ, see colMajorArgs). Operands are copied to
// device buffers that grow to the largest call and are reused, and C is
// copied back, on every call. Serve it with engine.New("cuda", kernels).
//
// Device.Compile compiles CUDA C with NVRTC for the device's compute
// capability and loads it as a Module; Module.Launch runs a kernel. The
// kernels kept in kernels/*.cu (embedded as Sources) — GELU forward and
// backward, row softmax with cross-entropy, LayerNorm (and RMSNorm)
// forward, the AdamW update, all fp32 — are methods of *Kernels behind
// the optional interfaces GELUKernels, CrossEntropyKernels,
// LayerNormKernels and AdamWKernels, compiled on first use.
//
// # What the runtime uses today
//
// The transformer runtime calls only Sgemm: everything else still runs on
// the CPU, and every Sgemm pays a host↔device round trip, so this backend
// is correct but not yet fast. The optional interfaces are proposals for
// the runtime to adopt (defined where consumed, found by type assertion);
// after that, activations should stay on the device. Not done here: fused
// attention, LayerNorm backward, cuBLASLt, BF16 compute, and FP16 with
// dynamic loss scaling for training — all out of scope for now.
//
// # Testing
//
// Without a GPU, go test checks the no-device path, the row-major to
// column-major Sgemm mapping against a CPU model of cuBLAS's column-major
// semantics, the host side of Sgemm (copy spans, strides, beta) over a
// simulated device, kernel argument packing and the embedded sources;
// GPU tests skip with "no CUDA device: …". On a machine with an NVIDIA
// GPU, driver, cuBLAS and NVRTC (CUDA 11.2 or newer), run
//
//	CGO_ENABLED=0 go test -count=1 -v ./accel/cuda/ ./plugins/cuda/
//
// which also runs Sgemm against the portable kernels, every NVRTC kernel
// against a float64 reference, and the acceltest conformance suite on
// engine.New("cuda", kernels) with the cpu engine as reference.
// `go run ./plugins/cuda -probe` prints what the plugin finds.
package cuda
