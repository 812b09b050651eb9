package gateway

import (
	"net/http"
	"testing"

	"connectrpc.com/connect"

	"github.com/llmesh/llmesh/bus"
)

// A filter block is permission_denied on Connect and 403 content_filter on
// the OpenAI API; codes the gateway does not know are internal.
func TestGenerateErrorCodes(t *testing.T) {
	for code, want := range map[string]struct {
		connect connect.Code
		status  int
	}{
		"blocked":            {connect.CodePermissionDenied, http.StatusForbidden},
		"invalid_argument":   {connect.CodeInvalidArgument, http.StatusBadRequest},
		"resource_exhausted": {connect.CodeResourceExhausted, http.StatusTooManyRequests},
		"unavailable":        {connect.CodeUnavailable, http.StatusServiceUnavailable},
		"no_such_code":       {connect.CodeInternal, http.StatusInternalServerError},
	} {
		err := &bus.GenerateError{Code: code, Message: "m"}
		if got := connect.CodeOf(connectError(err)); got != want.connect {
			t.Errorf("%s: connect code %v, want %v", code, got, want.connect)
		}
		if got := toOpenAIError(err).status; got != want.status {
			t.Errorf("%s: HTTP status %d, want %d", code, got, want.status)
		}
	}
}
