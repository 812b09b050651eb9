package accel_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
)

// rangeBackend returns n gradients (value i*0.25 at i) and reports them
// to GradientsReady in ranges of width chunk from the top down, as a
// backward pass does; after the first range it waits until the host has
// seen it (or gives up after a while), so a host that only reports at the
// end fails. chunk 0 reports nothing; stopAfter > 0 reports only that many
// ranges.
type rangeBackend struct {
	accel.Backend
	n, chunk, stopAfter int
	seen                chan struct{} // closed by the test's callback
	overlapped          bool          // the host saw a range while the step ran
}

func gradValue(i int) float32 { return float32(i) * 0.25 }

func (r *rangeBackend) TrainStep(_ context.Context, req accel.TrainStepRequest) (accel.TrainStepResult, error) {
	g := make([]float32, r.n)
	for i := range g {
		g[i] = gradValue(i)
	}
	if req.GradientsReady != nil && r.chunk > 0 {
		k := 0
		for hi := r.n; hi > 0 && (r.stopAfter == 0 || k < r.stopAfter); hi -= r.chunk {
			lo := max(0, hi-r.chunk)
			req.GradientsReady(lo, hi, g[lo:hi])
			if k == 0 {
				select {
				case <-r.seen:
					r.overlapped = true
				case <-time.After(10 * time.Second):
				}
			}
			k++
		}
	}
	return accel.TrainStepResult{Loss: 0.5, Gradients: g}, nil
}

// Through the plugin protocol, GradientsReady hears every gradient exactly
// once with its value, while the step still runs when the plugin reports
// ranges (TrainStepStream), and once at the end otherwise: inline, before
// the host knows the size, with bulk files off, and when the plugin
// reports only part of the vector.
func TestShimGradientsReady(t *testing.T) {
	const n = 1<<18 + 5
	tests := map[string]struct {
		chunk, stopAfter int
		inline           bool
		wantOverlap      bool
	}{
		"streamed":       {chunk: 40000, wantOverlap: true},
		"one range":      {chunk: n, wantOverlap: true},
		"not reported":   {chunk: 0},
		"partly":         {chunk: 30000, stopAfter: 2, wantOverlap: true},
		"inline":         {chunk: 40000, inline: true},
		"inline nothing": {chunk: 0, inline: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			be := &rangeBackend{Backend: acceltest.NewBigram(), n: n, chunk: tc.chunk, stopAfter: tc.stopAfter}
			b, _ := shim(t, be)
			if tc.inline {
				accel.DisableBulkForTest(b)
			}
			ctx := t.Context()
			for call := range 3 { // the first call learns the size and goes unary
				be.seen, be.overlapped = make(chan struct{}), false
				count := make([]int, n)
				calls := 0
				var bad error
				req := accel.TrainStepRequest{ModelID: "m", Batch: 1, SeqLen: 1, Inputs: []int32{0}, Targets: []int32{0}, ReturnGradients: true,
					GradientsReady: func(lo, hi int, vals []float32) {
						if calls == 0 {
							close(be.seen)
						}
						calls++
						if len(vals) != hi-lo {
							bad = fmt.Errorf("range [%d, %d) with %d values", lo, hi, len(vals))
							return
						}
						for i, v := range vals {
							count[lo+i]++
							if v != gradValue(lo+i) {
								bad = fmt.Errorf("gradient %d = %v, want %v", lo+i, v, gradValue(lo+i))
							}
						}
					}}
				res, err := b.TrainStep(ctx, req)
				if err != nil {
					t.Fatalf("call %d: %v", call, err)
				}
				if bad != nil {
					t.Fatalf("call %d: %v", call, bad)
				}
				if len(res.Gradients) != n || res.Gradients[n-1] != gradValue(n-1) || res.Loss != 0.5 {
					t.Fatalf("call %d: result has %d gradients, loss %v", call, len(res.Gradients), res.Loss)
				}
				for i, c := range count {
					if c != 1 {
						t.Fatalf("call %d: gradient %d reported %d times, want once", call, i, c)
					}
				}
				if want := tc.wantOverlap && call > 0; be.overlapped != want {
					t.Errorf("call %d: host saw a range while the step ran: %v, want %v", call, be.overlapped, want)
				}
			}
		})
	}
}

// A failing step reports its error through the stream like TrainStep; a
// backend that cannot stream (the bigram) reports the whole vector once.
func TestShimGradientsReadyError(t *testing.T) {
	b, _ := shim(t, acceltest.NewBigram())
	ctx := t.Context()
	loadTiny(t, ctx, b, "m", `{"vocab_size":300,"n_ctx":4}`) // 90,000 gradients: a bulk file
	var got [][2]int
	req := accel.TrainStepRequest{ModelID: "m", Batch: 1, SeqLen: 2, Inputs: []int32{1, 2}, Targets: []int32{2, 3}, ReturnGradients: true,
		GradientsReady: func(lo, hi int, _ []float32) { got = append(got, [2]int{lo, hi}) }}
	for range 2 { // the first call learns the size
		got = nil
		if _, err := b.TrainStep(ctx, req); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != [2]int{0, 300 * 300} {
			t.Fatalf("bigram reported %v, want [[0 90000]]", got)
		}
	}
	req.ModelID = "nope"
	if _, err := b.TrainStep(ctx, req); !errors.Is(err, accel.ErrUnknownModel) {
		t.Errorf("TrainStep of an unknown model: %v, want ErrUnknownModel", err)
	}
}
