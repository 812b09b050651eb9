package gateway

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/tensor"
)

// connectError maps bus and spec errors to Connect codes, in one place.
func connectError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	var ge *bus.GenerateError
	switch {
	case errors.As(err, &ge):
		var code connect.Code
		switch {
		case ge.Code == "blocked":
			// The filter refused the prompt or stopped the output.
			code = connect.CodePermissionDenied
		case code.UnmarshalText([]byte(ge.Code)) != nil:
			code = connect.CodeInternal
		}
		return connect.NewError(code, err)
	case errors.As(err, &ce):
		return err
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	case errors.Is(err, bus.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, bus.ErrTooLarge), errors.Is(err, tensor.ErrTooLarge):
		return connect.NewError(connect.CodeResourceExhausted, err)
	case errors.Is(err, bus.ErrUnknownKind), errors.Is(err, bus.ErrInvalidName), errors.Is(err, bus.ErrInvalidRef),
		errors.Is(err, bus.ErrMalformed), errors.Is(err, tensor.ErrMalformed), errors.Is(err, errInvalid):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, bus.ErrFinished):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, bus.ErrNoResponders):
		return connect.NewError(connect.CodeUnavailable, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}

// errInvalid marks a request the gateway itself refuses.
var errInvalid = errors.New("invalid request")
