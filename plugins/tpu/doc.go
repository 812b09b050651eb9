// Command llmesh-plugin-tpu is the TPU accelerator plugin. It is a stub by
// design: it handshakes, lists itself with device "none", and answers every
// compute call with an error wrapping accel.ErrNotImplemented. It holds no
// state; it lives until the host closes it.
package main
