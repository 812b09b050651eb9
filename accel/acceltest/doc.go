// Package acceltest is the conformance suite every accelerator backend
// runs: in-process runtimes, plugins through the host, stubs. Run
// exercises every Backend call on a tiny model (TinyConfigJSON) and, when
// Options.Reference is set, compares the numbers with a reference backend.
// A backend whose Info reports Stub is checked to refuse every compute call
// with accel.ErrNotImplemented instead.
//
// Run loads models under ids prefixed with Options.ModelPrefix and unloads
// them before it returns; the backend stays owned by the caller.
package acceltest
