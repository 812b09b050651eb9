package engine

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/llmesh/llmesh/accel"
)

const tinyJSON = `{"vocab_size":13,"n_ctx":8,"n_embd":16,"n_layer":2,"n_head":2}`

func load(t *testing.T, e *Engine, id string, opt bool) accel.LoadResult {
	t.Helper()
	req := accel.LoadRequest{ModelID: id, ConfigJSON: []byte(tinyJSON), Seed: 1}
	if opt {
		o := accel.DefaultOptimizer()
		req.Optimizer = &o
	}
	res, err := e.LoadModel(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func batch(seed int32) (in, tg []int32) {
	for i := range int32(2 * 6) {
		in = append(in, (i*5+seed)%13)
		tg = append(tg, (i*5+seed+1)%13)
	}
	return in, tg
}

func TestInfo(t *testing.T) {
	info, err := New("cpu", nil).Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "cpu" || info.ProtocolVersion != accel.ProtocolVersion || !strings.HasPrefix(info.Device, "cpu: ") || info.Stub {
		t.Fatalf("info %+v", info)
	}
}

func TestTrainLoop(t *testing.T) {
	ctx := context.Background()
	e := New("cpu", nil)
	res := load(t, e, "m", true)
	if res.Parameters == 0 || res.Step != 0 {
		t.Fatalf("load result %+v", res)
	}
	in, tg := batch(0)
	var first, last float64
	for step := range 40 {
		tr, err := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: "m", Batch: 2, SeqLen: 6, Inputs: in, Targets: tg})
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = tr.Loss
		}
		last = tr.Loss
		up, err := e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "m", LearningRate: 1e-2})
		if err != nil {
			t.Fatal(err)
		}
		if up.Step != int64(step+1) || !(up.GradNorm > 0) {
			t.Fatalf("update %+v at step %d", up, step)
		}
	}
	if !(last < first/2) {
		t.Fatalf("loss %v -> %v, want halved", first, last)
	}
	ev, err := e.Evaluate(ctx, accel.EvalRequest{ModelID: "m", Batch: 2, SeqLen: 6, Inputs: in, Targets: tg})
	if err != nil || ev.Tokens != 12 || math.IsNaN(ev.Loss) {
		t.Fatalf("eval %+v, %v", ev, err)
	}
	dec, err := e.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", Sequences: [][]int32{{1, 2}, {3, 4, 5, 6, 7, 8, 9, 10, 11, 12}}})
	if err != nil || len(dec.Logits) != 2 || len(dec.Logits[1]) != 13 {
		t.Fatalf("decode %v, %v", dec, err)
	}
}

// Two micro-batches of equal size, averaged, give the gradient of the
// combined batch; ReturnGradients returns each micro-batch's own.
func TestAccumulation(t *testing.T) {
	ctx := context.Background()
	e := New("cpu", nil)
	load(t, e, "a", true)
	load(t, e, "b", true)
	in1, tg1 := batch(0)
	in2, tg2 := batch(3)
	r1, _ := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: "a", Batch: 2, SeqLen: 6, Inputs: in1, Targets: tg1, ReturnGradients: true})
	r2, _ := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: "a", Batch: 2, SeqLen: 6, Inputs: in2, Targets: tg2, ReturnGradients: true})
	rb, err := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: "b", Batch: 4, SeqLen: 6, Inputs: append(in1, in2...), Targets: append(tg1, tg2...), ReturnGradients: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range rb.Gradients {
		avg := (r1.Gradients[i] + r2.Gradients[i]) / 2
		if d := math.Abs(float64(avg - rb.Gradients[i])); d > 1e-6+1e-4*math.Abs(float64(avg)) {
			t.Fatalf("grad %d: averaged micro-batches %v, full batch %v", i, avg, rb.Gradients[i])
		}
	}
	ua, _ := e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "a", LearningRate: 1e-3})
	ub, _ := e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "b", LearningRate: 1e-3})
	if math.Abs(ua.GradNorm-ub.GradNorm) > 1e-4*ub.GradNorm {
		t.Fatalf("grad norms %v and %v differ", ua.GradNorm, ub.GradNorm)
	}
	// Explicit gradients replace the accumulator and are not modified.
	g := append([]float32(nil), r1.Gradients...)
	for i := range g {
		g[i] *= 1000
	}
	keep := append([]float32(nil), g...)
	if _, err := e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "a", LearningRate: 1e-3, Gradients: g}); err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(g, keep) {
		t.Fatal("ApplyUpdate modified the caller's gradients")
	}
}

func TestSaveLoadResumes(t *testing.T) {
	ctx := context.Background()
	e := New("cpu", nil)
	load(t, e, "m", true)
	in, tg := batch(1)
	step := func(id string) accel.UpdateResult {
		if _, err := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: id, Batch: 2, SeqLen: 6, Inputs: in, Targets: tg}); err != nil {
			t.Fatal(err)
		}
		u, err := e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: id, LearningRate: 1e-2})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	step("m")
	step("m")
	saved, err := e.SaveWeights(ctx, accel.SaveRequest{ModelID: "m", WithOptimizer: true})
	if err != nil || saved.Step != 2 {
		t.Fatalf("save step %d, %v", saved.Step, err)
	}
	o := accel.DefaultOptimizer()
	res, err := e.LoadModel(ctx, accel.LoadRequest{ModelID: "copy", ConfigJSON: saved.ConfigJSON, Weights: saved.Safetensors, Optimizer: &o})
	if err != nil || res.Step != 2 {
		t.Fatalf("reload %+v, %v", res, err)
	}
	u1, u2 := step("m"), step("copy")
	if u1 != u2 {
		t.Fatalf("next step differs after reload: %+v vs %+v", u1, u2)
	}
	s1, _ := e.SaveWeights(ctx, accel.SaveRequest{ModelID: "m"})
	s2, _ := e.SaveWeights(ctx, accel.SaveRequest{ModelID: "copy"})
	if !cmp.Equal(s1, s2) {
		t.Fatal("weights differ after one more identical step")
	}
}

func TestDuplicateIDReplaces(t *testing.T) {
	ctx := context.Background()
	e := New("cpu", nil)
	load(t, e, "m", true)
	in, tg := batch(0)
	e.TrainStep(ctx, accel.TrainStepRequest{ModelID: "m", Batch: 2, SeqLen: 6, Inputs: in, Targets: tg})
	load(t, e, "m", true)
	_, err := e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "m", LearningRate: 1e-3})
	if !errors.Is(err, accel.ErrInvalidArgument) {
		t.Fatalf("err = %v, want no accumulated gradients on the fresh model", err)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	e := New("cpu", nil)
	load(t, e, "m", true)
	load(t, e, "infer", false)
	in, tg := batch(0)
	saved, _ := e.SaveWeights(ctx, accel.SaveRequest{ModelID: "m"})
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	badOpt := accel.DefaultOptimizer()
	badOpt.Beta1 = 1
	tests := map[string]struct {
		call func() error
		want error
		msg  string
	}{
		"empty id": {func() error {
			_, err := e.LoadModel(ctx, accel.LoadRequest{ConfigJSON: []byte(tinyJSON)})
			return err
		}, accel.ErrInvalidArgument, "model id"},
		"bad config json": {func() error {
			_, err := e.LoadModel(ctx, accel.LoadRequest{ModelID: "x", ConfigJSON: []byte(`{"vocab_size":1,"bogus":2}`)})
			return err
		}, accel.ErrInvalidArgument, "bogus"},
		"bad config value": {func() error {
			_, err := e.LoadModel(ctx, accel.LoadRequest{ModelID: "x", ConfigJSON: []byte(`{"vocab_size":13,"n_ctx":8,"n_embd":15,"n_layer":1,"n_head":2}`)})
			return err
		}, accel.ErrInvalidArgument, "n_embd 15"},
		"bad weights": {func() error {
			_, err := e.LoadModel(ctx, accel.LoadRequest{ModelID: "x", ConfigJSON: []byte(tinyJSON), Weights: []byte("nope")})
			return err
		}, accel.ErrInvalidArgument, "safetensors"},
		"weights for other shape": {func() error {
			_, err := e.LoadModel(ctx, accel.LoadRequest{ModelID: "x", ConfigJSON: []byte(`{"vocab_size":14,"n_ctx":8,"n_embd":16,"n_layer":2,"n_head":2}`), Weights: saved.Safetensors})
			return err
		}, accel.ErrInvalidArgument, `"wte"`},
		"bad optimizer": {func() error {
			_, err := e.LoadModel(ctx, accel.LoadRequest{ModelID: "x", ConfigJSON: []byte(tinyJSON), Optimizer: &badOpt})
			return err
		}, accel.ErrInvalidArgument, "beta1"},
		"unknown train": {func() error {
			_, err := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: "nope", Batch: 2, SeqLen: 6, Inputs: in, Targets: tg})
			return err
		}, accel.ErrUnknownModel, `"nope"`},
		"unknown update": {func() error {
			_, err := e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "nope"})
			return err
		}, accel.ErrUnknownModel, `"nope"`},
		"unknown eval": {func() error {
			_, err := e.Evaluate(ctx, accel.EvalRequest{ModelID: "nope"})
			return err
		}, accel.ErrUnknownModel, `"nope"`},
		"unknown decode": {func() error {
			_, err := e.DecodeStep(ctx, accel.DecodeRequest{ModelID: "nope"})
			return err
		}, accel.ErrUnknownModel, `"nope"`},
		"unknown save": {func() error {
			_, err := e.SaveWeights(ctx, accel.SaveRequest{ModelID: "nope"})
			return err
		}, accel.ErrUnknownModel, `"nope"`},
		"unknown unload": {func() error { return e.Unload(ctx, "nope") }, accel.ErrUnknownModel, `"nope"`},
		"batch shape": {func() error {
			_, err := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: "m", Batch: 2, SeqLen: 5, Inputs: in, Targets: tg})
			return err
		}, accel.ErrInvalidArgument, "batch 2"},
		"seq too long": {func() error {
			x := make([]int32, 9)
			_, err := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: "m", Batch: 1, SeqLen: 9, Inputs: x, Targets: x})
			return err
		}, accel.ErrInvalidArgument, "n_ctx 8"},
		"token range": {func() error {
			bad := append([]int32(nil), in...)
			bad[3] = 13
			_, err := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: "m", Batch: 2, SeqLen: 6, Inputs: bad, Targets: tg})
			return err
		}, accel.ErrInvalidArgument, "vocab_size 13"},
		"target range": {func() error {
			bad := append([]int32(nil), tg...)
			bad[0] = -1
			_, err := e.Evaluate(ctx, accel.EvalRequest{ModelID: "m", Batch: 2, SeqLen: 6, Inputs: in, Targets: bad})
			return err
		}, accel.ErrInvalidArgument, "target token -1"},
		"no gradients": {func() error {
			_, err := e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "m", LearningRate: 1e-3})
			return err
		}, accel.ErrInvalidArgument, "no gradients"},
		"gradient length": {func() error {
			_, err := e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "m", LearningRate: 1e-3, Gradients: make([]float32, 3)})
			return err
		}, accel.ErrInvalidArgument, "3 gradients"},
		"bad learning rate": {func() error {
			_, err := e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "m", LearningRate: float32(math.NaN())})
			return err
		}, accel.ErrInvalidArgument, "learning rate"},
		"no optimizer": {func() error {
			_, err := e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "infer", LearningRate: 1e-3})
			return err
		}, accel.ErrInvalidArgument, "without an optimizer"},
		"save optimizer without one": {func() error {
			_, err := e.SaveWeights(ctx, accel.SaveRequest{ModelID: "infer", WithOptimizer: true})
			return err
		}, accel.ErrInvalidArgument, "no optimizer"},
		"empty sequence": {func() error {
			_, err := e.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", Sequences: [][]int32{{1}, {}}})
			return err
		}, accel.ErrInvalidArgument, "sequence 1 is empty"},
		"decode token range": {func() error {
			_, err := e.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", Sequences: [][]int32{{1, 99}}})
			return err
		}, accel.ErrInvalidArgument, "99"},
		"cancelled": {func() error {
			_, err := e.TrainStep(cancelled, accel.TrainStepRequest{ModelID: "m", Batch: 2, SeqLen: 6, Inputs: in, Targets: tg})
			return err
		}, context.Canceled, "canceled"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
	if err := e.Unload(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Evaluate(ctx, accel.EvalRequest{ModelID: "m", Batch: 2, SeqLen: 6, Inputs: in, Targets: tg}); !errors.Is(err, accel.ErrUnknownModel) {
		t.Fatalf("after unload: %v", err)
	}
}

func TestConcurrentModels(t *testing.T) {
	ctx := context.Background()
	e := New("cpu", nil)
	load(t, e, "a", true)
	load(t, e, "b", true)
	in, tg := batch(0)
	errs := make(chan error, 20)
	for i := range 20 {
		id := []string{"a", "b"}[i%2]
		go func() {
			_, err := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: id, Batch: 2, SeqLen: 6, Inputs: in, Targets: tg})
			if err == nil && i%4 == 0 {
				_, err = e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: id, LearningRate: 1e-3})
				if errors.Is(err, accel.ErrInvalidArgument) {
					err = nil // another goroutine applied our gradients first
				}
			}
			errs <- err
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
