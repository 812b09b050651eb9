// Command llmesh-plugin-cpu is the CPU accelerator plugin: it serves the
// shared transformer runtime (accel/engine) with the portable kernels
// (accel/transformer), picked at run time for the CPU's features. Loaded
// models live in this process until unloaded or until the host closes it.
package main
