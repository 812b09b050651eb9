// Package engine implements accel.Backend in-process over the transformer
// runtime; the cpu plugin serves it over go-plugin, and tests and
// single-process setups call it directly.
//
// An Engine owns the models loaded into it, keyed by model id, each with
// its optimizer state, gradient accumulator and micro-step count. Calls on
// different models run in parallel; calls on one model are serialised by
// that model's mutex. Loading an id that is already loaded replaces the
// old model. Everything an Engine returns is a copy the caller owns.
package engine
