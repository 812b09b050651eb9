package gateway

import (
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/llmesh/llmesh/bus"
	apiv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/api/v1"
	"github.com/llmesh/llmesh/contracts/gen/llmesh/api/v1/apiv1connect"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// swapInstance answers inference.status and inference.swap like an
// inference instance named name would; it refuses backend "cuda" when
// refuse is set.
func swapInstance(t *testing.T, b *bus.Bus, name string, pid int32, refuse bool) {
	t.Helper()
	reply := func(m *nats.Msg, msg proto.Message) {
		data, _ := proto.Marshal(msg)
		_ = m.Respond(data)
	}
	st, err := b.Conn().Subscribe(bus.InferenceStatusSubject, func(m *nats.Msg) {
		reply(m, &busv1.InferenceStatus{Instance: name})
	})
	if err != nil {
		t.Fatal(err)
	}
	sw, err := b.Conn().Subscribe(bus.InferenceSwapSubject, func(m *nats.Msg) {
		var req busv1.SwapBackendRequest
		if err := proto.Unmarshal(m.Data, &req); err != nil {
			t.Error(err)
			return
		}
		r := &busv1.SwapBackendReply{Instance: name, Model: req.Model, Backend: req.Backend, OldBackend: "cpu", Millis: 12, Pid: pid + 1, OldPid: pid}
		if refuse && req.Backend == "cuda" {
			r = &busv1.SwapBackendReply{Instance: name, Model: req.Model, Backend: req.Backend, ErrorCode: "not_found",
				Error: `accelerator plugin "cuda": no executable llmesh-plugin-cuda; the model stays on cpu (pid 7)`}
		}
		reply(m, r)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Unsubscribe(); sw.Unsubscribe() })
	if err := b.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestSwapBackend(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if err := e.b.PutModel(ctx, &busv1.ModelRecord{Name: "m", Checkpoint: bus.RefOf([]byte("m"))}); err != nil {
		t.Fatal(err)
	}
	models := apiv1connect.NewModelServiceClient(e.hc, e.url)
	swap := func(model, backend string) (*apiv1.SwapBackendResponse, error) {
		res, err := models.SwapBackend(ctx, connect.NewRequest(&apiv1.SwapBackendRequest{Model: model, Backend: backend}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	}

	_, err := swap("m", "cpu")
	wantCode(t, "swap without an inference service", err, connect.CodeUnavailable)

	swapInstance(t, e.b, "b", 20, true)
	swapInstance(t, e.b, "a", 10, false)
	got, err := swap("m", "cpu")
	if err != nil {
		t.Fatal(err)
	}
	want := &apiv1.SwapBackendResponse{Swaps: []*apiv1.BackendSwap{
		{Instance: "a", Model: "m", Backend: "cpu", OldBackend: "cpu", Millis: 12, Pid: 11, OldPid: 10},
		{Instance: "b", Model: "m", Backend: "cpu", OldBackend: "cpu", Millis: 12, Pid: 21, OldPid: 20},
	}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("swap reached every instance (-want +got):\n%s", diff)
	}

	tests := map[string]struct {
		model, backend string
		code           connect.Code
		msg            string
	}{
		"one instance refuses": {"m", "cuda", connect.CodeNotFound, "failed on 1 of 2 instances: b: accelerator plugin \"cuda\""},
		"unknown model":        {"nope", "cpu", connect.CodeNotFound, "not found"},
		"invalid model":        {"../m", "cpu", connect.CodeInvalidArgument, "invalid name"},
		"empty backend":        {"m", "", connect.CodeInvalidArgument, "backend is empty"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := swap(tc.model, tc.backend)
			wantCode(t, fmt.Sprintf("swap %s to %s", tc.model, tc.backend), err, tc.code)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %v, want it to contain %q", err, tc.msg)
			}
		})
	}
}
