// Package tensor is llmesh's Arrow IPC codec for tensors on the bus.
//
// A payload is one Arrow IPC stream holding one schema and one record batch
// of one row. Every column is one tensor, typed with the canonical
// arrow.fixed_shape_tensor extension type (storage
// FixedSizeList<value_type>[product(shape)], extension metadata
// {"shape":[...]}), so pyarrow and other Arrow readers see tensors, not
// lists. The dtype is the list's value type; bfloat16, which Arrow has no
// type for, is stored as uint16 with the field metadata
// "llmesh.dtype"="bfloat16" (other readers see uint16 bits). Free-form
// metadata (name, step, rank, ...) travels as schema metadata.
//
// # Ownership and lifetimes
//
// Encode copies each tensor's Data once, into the returned payload; the
// caller keeps its tensors. Decode does not copy: every decoded Tensor's
// Data is a slice of the payload passed to Decode, so the decoded tensors
// are valid exactly as long as that payload is neither modified nor reused.
// Copy (Tensor.Clone) what must outlive it. The typed views (Float32s,
// Int32s, ...) alias Data in turn where its address is aligned for the
// element type, and copy otherwise.
//
// # Hostile input
//
// Decode treats the payload as untrusted: the IPC framing and the Arrow
// flatbuffer metadata are checked before arrow-go parses them, declared
// shapes are checked against list sizes and buffer lengths, and limits
// (Limits) bound the number and size of tensors. Errors wrap ErrMalformed,
// ErrUnsupported or ErrTooLarge; a panic inside arrow-go is recovered and
// returned as an ErrMalformed error.
package tensor
