package engine

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/llmesh/llmesh/accel"
)

// In process, GradientsReady hears each layer's range as the backward pass
// finishes it: more than one range, every gradient once, with the values
// the step returns; the step itself is unchanged, and the hook is gone
// for the next step that does not ask.
func TestGradientsReady(t *testing.T) {
	ctx := context.Background()
	plain, hooked := New("cpu", nil), New("cpu", nil)
	load(t, plain, "m", true)
	res := load(t, hooked, "m", true)
	in, tg := batch(3)
	want, err := plain.TrainStep(ctx, accel.TrainStepRequest{ModelID: "m", Batch: 2, SeqLen: 6, Inputs: in, Targets: tg, ReturnGradients: true})
	if err != nil {
		t.Fatal(err)
	}
	n := int(res.Parameters)
	got := make([]float32, n)
	count := make([]int, n)
	ranges := 0
	req := accel.TrainStepRequest{ModelID: "m", Batch: 2, SeqLen: 6, Inputs: in, Targets: tg, ReturnGradients: true,
		GradientsReady: func(lo, hi int, vals []float32) {
			ranges++
			copy(got[lo:hi], vals)
			for i := lo; i < hi; i++ {
				count[i]++
			}
		}}
	have, err := hooked.TrainStep(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if ranges < 4 { // ln_f, 2 layers, embeddings
		t.Errorf("%d ranges, want one per layer and more", ranges)
	}
	for i, c := range count {
		if c != 1 {
			t.Fatalf("gradient %d reported %d times, want once", i, c)
		}
	}
	if diff := cmp.Diff(have.Gradients, got); diff != "" {
		t.Errorf("reported gradients differ from the result (-result +reported):\n%s", diff)
	}
	if diff := cmp.Diff(want, have); diff != "" {
		t.Errorf("the hook changed the step (-plain +hooked):\n%s", diff)
	}
	ranges = 0
	req.ReturnGradients = false
	if _, err := hooked.TrainStep(ctx, req); err != nil {
		t.Fatal(err)
	}
	req.ReturnGradients, req.GradientsReady = true, nil
	if _, err := hooked.TrainStep(ctx, req); err != nil {
		t.Fatal(err)
	}
	if ranges != 0 {
		t.Errorf("%d ranges reported to steps that did not ask", ranges)
	}
}
