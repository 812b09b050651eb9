// Package stub provides an accelerator backend that handshakes and
// describes itself but computes nothing: every compute call fails with an
// error wrapping accel.ErrNotImplemented that names the backend, the call
// and the reason. The tpu plugin serves it by design; the cuda plugin
// serves one like it when no device is usable.
//
// A stub holds no state: it owns no models, so Unload always succeeds, and
// it may be used from any number of goroutines for as long as you like.
package stub
