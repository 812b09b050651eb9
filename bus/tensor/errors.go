package tensor

import "errors"

var (
	// ErrMalformed is wrapped by every error about a payload or tensor whose
	// bytes do not say what they claim: truncated framing, a shape that
	// disagrees with its list size or buffer length, broken metadata.
	ErrMalformed = errors.New("malformed tensor payload")

	// ErrUnsupported is wrapped when a payload is valid Arrow but uses a
	// type or feature this codec does not carry (dictionaries, nulls,
	// compression, a value type that is not a tensor dtype, a permutation).
	ErrUnsupported = errors.New("unsupported tensor payload")

	// ErrTooLarge is wrapped when a payload or a tensor exceeds a Limits
	// bound. The message names the tensor, its shape and the limit.
	ErrTooLarge = errors.New("tensor payload too large")

	// ErrDType is wrapped when a typed view is asked of a tensor of another
	// dtype, or a tensor's dtype is unknown.
	ErrDType = errors.New("tensor dtype mismatch")
)
