package gateway

import (
	"context"
	"fmt"
	"sort"

	"connectrpc.com/connect"

	"github.com/llmesh/llmesh/bus"
	apiv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/api/v1"
)

// SwapBackend asks every inference instance to move the model to backend
// and waits for all of them. Any instance's failure fails the call, with
// the first failure's code; the instances that failed keep serving the
// model on their old plugin.
func (h *models) SwapBackend(ctx context.Context, req *connect.Request[apiv1.SwapBackendRequest]) (*connect.Response[apiv1.SwapBackendResponse], error) {
	m := req.Msg
	if err := bus.ValidName(m.Model); err != nil {
		return nil, connectError(err)
	}
	if m.Backend == "" {
		return nil, connectError(fmt.Errorf("%w: backend is empty", errInvalid))
	}
	if _, err := h.g.bus.GetModel(ctx, m.Model); err != nil {
		return nil, connectError(err)
	}
	replies, err := h.g.bus.SwapBackend(ctx, m.Model, m.Backend)
	out := &apiv1.SwapBackendResponse{}
	code := connect.CodeInternal
	failed := false
	for _, r := range replies {
		if r.Error != "" {
			if !failed && code.UnmarshalText([]byte(r.ErrorCode)) != nil {
				code = connect.CodeInternal
			}
			failed = true
			continue
		}
		out.Swaps = append(out.Swaps, &apiv1.BackendSwap{
			Instance: r.Instance, Model: r.Model, Backend: r.Backend, OldBackend: r.OldBackend,
			Millis: r.Millis, Pid: r.Pid, OldPid: r.OldPid,
		})
	}
	if err != nil {
		if failed {
			return nil, connect.NewError(code, err)
		}
		return nil, connectError(err)
	}
	sort.Slice(out.Swaps, func(i, j int) bool { return out.Swaps[i].Instance < out.Swaps[j].Instance })
	h.g.log.Info("backend swapped", "model", m.Model, "backend", m.Backend, "instances", len(out.Swaps))
	return connect.NewResponse(out), nil
}
