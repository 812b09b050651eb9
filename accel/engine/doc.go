// Package engine implements accel.Backend in-process over the transformer
// runtime; the cpu plugin serves it over go-plugin, and tests and
// single-process setups call it directly.
//
// An Engine owns the models loaded into it, keyed by model id, each with
// its optimizer state, gradient accumulator and micro-step count. Calls on
// different models run in parallel; calls on one model are serialised by
// that model's mutex. Loading an id that is already loaded replaces the
// old model. Everything an Engine returns is a copy the caller owns.
//
// Each loaded model also owns a KV cache for DecodeStep calls with cache
// ids (a transformer.Decoder, made on the first such call, with a budget of
// WithKVCacheBytes, default DefaultKVCacheBytes): cached sequences live
// until released, until the model is unloaded or replaced, or until
// ApplyUpdate changes the weights (which drops every cached sequence, so
// the next append to an old id starts a new sequence). A step that needs
// more blocks than are free fails with transformer.ErrKVCacheFull (and
// accel.ErrInvalidArgument) and changes nothing. A step without cache ids
// but with an early-exit threshold prefills its sequences in a second,
// scratch decoder and releases them at once.
package engine
