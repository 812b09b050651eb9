// Command llmesh-plugin-cpu is the CPU accelerator plugin: it serves the
// shared transformer runtime (accel/engine) on the accel/simd kernels —
// AVX-512 (with VNNI and BF16), AVX2+FMA or portable Go, picked at run time
// for the CPU's features (AMX behind LLMESH_SIMD_AMX=1). Loaded
// models live in this process until unloaded or until the host closes it.
package main
