package bus

import "errors"

// Sentinel errors. Functions wrap them with %w and name the thing and the
// limit, e.g. `job spec of 2097152 bytes exceeds 1 MiB: too large`; test
// with errors.Is.
var (
	// ErrUnknownKind: a job kind that is not one of Kinds().
	ErrUnknownKind = errors.New("unknown job kind")
	// ErrInvalidName: a dataset, model, tokenizer name or job id that
	// ValidName / ValidJobID refuse.
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidRef: an object reference that is not "sha256-<64 hex>".
	ErrInvalidRef = errors.New("invalid object ref")
	// ErrNotFound: no job, record or object under that name.
	ErrNotFound = errors.New("not found")
	// ErrTooLarge: a spec, result or object above its limit.
	ErrTooLarge = errors.New("too large")
	// ErrMalformed: bytes that do not decode (a job spec that is not a JSON
	// object, a stored record or envelope that is not its protobuf).
	ErrMalformed = errors.New("malformed")
	// ErrInvalidConfig: a ServerConfig or Config that Validate refuses.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrFinished: CancelJob of a job that already succeeded, failed or was
	// cancelled.
	ErrFinished = errors.New("job already finished")
	// ErrCancelled is the cause (context.Cause) of a handler's ctx when its
	// job was cancelled.
	ErrCancelled = errors.New("job cancelled")
	// ErrWorkerStopped is the cause of a handler's ctx when its worker is
	// shutting down; the job will be redelivered.
	ErrWorkerStopped = errors.New("worker stopped")
)

// retryableError marks an error a worker should retry rather than fail on.
type retryableError struct{ err error }

func (e retryableError) Error() string { return e.err.Error() }
func (e retryableError) Unwrap() error { return e.err }

// Retryable marks err as transient: a handler that returns it has its job
// redelivered (after a short delay) instead of failed, until the worker's
// MaxDeliver is reached. Retryable(nil) is nil.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return retryableError{err}
}

// IsRetryable reports whether err was marked with Retryable.
func IsRetryable(err error) bool {
	var r retryableError
	return errors.As(err, &r)
}
