package accel_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
	"github.com/llmesh/llmesh/accel/stub"
)

// shim serves b in-process over a real gRPC connection and returns the
// host-side Backend and a func that stops the server.
func shim(t *testing.T, b accel.Backend) (accel.Backend, func()) {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{
		accel.PluginName: &accel.GRPCPlugin{Impl: b},
	})
	t.Cleanup(func() {
		// Close asks the server to shut down (go-plugin's controller);
		// stopping it here as well would race with that.
		client.Close()
		select {
		case <-server.DoneCh:
		case <-time.After(5 * time.Second):
			t.Errorf("in-process plugin server did not stop")
		}
	})
	raw, err := client.Dispense(accel.PluginName)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	t.Cleanup(func() { accel.CloseBulkForTest(raw.(accel.Backend)) })
	return raw.(accel.Backend), server.Stop
}

func TestShimConformanceBigram(t *testing.T) {
	b, _ := shim(t, acceltest.NewBigram())
	acceltest.Run(t, b, acceltest.Options{Reference: acceltest.NewBigram(), Tolerance: 1e-6})
}

func TestShimConformanceStub(t *testing.T) {
	b, _ := shim(t, stub.New("tpu", tpuReason))
	acceltest.Run(t, b, acceltest.Options{})
}

// errBackend fails every call with err.
type errBackend struct {
	accel.Backend
	err error
}

func (e errBackend) DecodeStep(context.Context, accel.DecodeRequest) (accel.DecodeResult, error) {
	return accel.DecodeResult{}, e.err
}

func TestShimErrorMapping(t *testing.T) {
	tests := map[string]struct {
		err      error
		sentinel error
	}{
		"not implemented":  {fmt.Errorf("tpu backend: DecodeStep not implemented: stub: %w", accel.ErrNotImplemented), accel.ErrNotImplemented},
		"unknown model":    {fmt.Errorf("engine: model %q: %w", "m1", accel.ErrUnknownModel), accel.ErrUnknownModel},
		"invalid argument": {fmt.Errorf("engine: %w: token 99 outside vocabulary", accel.ErrInvalidArgument), accel.ErrInvalidArgument},
		"other":            {errors.New("engine: out of memory allocating 3 GiB"), nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, _ := shim(t, errBackend{Backend: acceltest.NewBigram(), err: tc.err})
			_, err := b.DecodeStep(t.Context(), accel.DecodeRequest{ModelID: "m1"})
			if err == nil {
				t.Fatal("DecodeStep: no error")
			}
			if err.Error() != tc.err.Error() {
				t.Errorf("message changed across the boundary:\n got %q\nwant %q", err, tc.err)
			}
			for _, s := range []error{accel.ErrNotImplemented, accel.ErrUnknownModel, accel.ErrInvalidArgument, accel.ErrPluginDied} {
				if got, want := errors.Is(err, s), s == tc.sentinel; got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, want)
				}
			}
		})
	}
}

func TestShimCallerCancelled(t *testing.T) {
	b, _ := shim(t, testBigram{acceltest.NewBigram()})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := b.Evaluate(ctx, accel.EvalRequest{ModelID: "block"})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, accel.ErrPluginDied) {
		t.Fatalf("Evaluate past its deadline: err = %v, want context.DeadlineExceeded and not ErrPluginDied", err)
	}
	ctx, cancel = context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = b.Evaluate(ctx, accel.EvalRequest{ModelID: "block"})
	if !errors.Is(err, context.Canceled) || errors.Is(err, accel.ErrPluginDied) {
		t.Fatalf("cancelled Evaluate: err = %v, want context.Canceled and not ErrPluginDied", err)
	}
}

func TestShimServerGone(t *testing.T) {
	b, stop := shim(t, acceltest.NewBigram())
	if _, err := b.Info(t.Context()); err != nil {
		t.Fatalf("Info: %v", err)
	}
	stop()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := b.Info(ctx)
	if !errors.Is(err, accel.ErrPluginDied) {
		t.Fatalf("Info after the server stopped: err = %v, want ErrPluginDied", err)
	}
}

// recorder keeps the last requests it was given.
type recorder struct {
	accel.Backend
	load   accel.LoadRequest
	decode accel.DecodeRequest
}

func (r *recorder) LoadModel(_ context.Context, req accel.LoadRequest) (accel.LoadResult, error) {
	r.load = req
	return accel.LoadResult{Parameters: 7, Step: 3}, nil
}

func (r *recorder) DecodeStep(_ context.Context, req accel.DecodeRequest) (accel.DecodeResult, error) {
	r.decode = req
	return accel.DecodeResult{Logits: [][]float32{{1, 2}}, CachedTokens: []int{5}, ExitLayers: []int{2}, Tokens: [][]int32{{4, 5, 6}}}, nil
}

// Every field of the load and decode requests crosses the gRPC boundary.
func TestShimCarriesEveryField(t *testing.T) {
	rec := &recorder{Backend: acceltest.NewBigram()}
	b, _ := shim(t, rec)
	ctx := t.Context()
	opt := accel.OptimizerConfig{Beta1: 0.8, Beta2: 0.9, Eps: 1e-6, WeightDecay: 0.05, GradClip: 2, LabelSmoothing: 0.1, Precision: accel.PrecisionBF16}
	load := accel.LoadRequest{ModelID: "m", ConfigJSON: []byte("{}"), Weights: []byte{1, 2}, Seed: 9, Optimizer: &opt}
	if res, err := b.LoadModel(ctx, load); err != nil || res.Parameters != 7 || res.Step != 3 {
		t.Fatalf("LoadModel = %+v, %v", res, err)
	}
	if got := rec.load; got.ModelID != "m" || got.Seed != 9 || got.Optimizer == nil || *got.Optimizer != opt {
		t.Errorf("plugin got %+v (optimizer %+v), want %+v", got, got.Optimizer, opt)
	}
	dec := accel.DecodeRequest{ModelID: "m", Sequences: [][]int32{{1, 2, 3}}, CacheIDs: []uint64{42}, Release: []uint64{7, 8}, ExitThreshold: 0.9, Steps: 5, StopTokens: []int32{3, 9}}
	res, err := b.DecodeStep(ctx, dec)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.decode; got.ModelID != "m" || len(got.CacheIDs) != 1 || got.CacheIDs[0] != 42 || len(got.Release) != 2 || got.ExitThreshold != 0.9 || got.Steps != 5 || len(got.StopTokens) != 2 {
		t.Errorf("plugin got %+v, want %+v", got, dec)
	}
	if len(res.CachedTokens) != 1 || res.CachedTokens[0] != 5 || len(res.ExitLayers) != 1 || res.ExitLayers[0] != 2 || len(res.Tokens) != 1 || len(res.Tokens[0]) != 3 {
		t.Errorf("DecodeStep = %+v", res)
	}
}
