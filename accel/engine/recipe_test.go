package engine

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/llmesh/llmesh/accel"
)

// Label smoothing and the training precision travel in the optimizer
// config of LoadModel.
func TestLoadRecipe(t *testing.T) {
	ctx := context.Background()
	e := New("cpu", nil)
	in, tg := batch(0)
	lossWith := func(id string, o accel.OptimizerConfig) float64 {
		t.Helper()
		if _, err := e.LoadModel(ctx, accel.LoadRequest{ModelID: id, ConfigJSON: []byte(tinyJSON), Seed: 1, Optimizer: &o}); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		tr, err := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: id, Batch: 2, SeqLen: 6, Inputs: in, Targets: tg})
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		return tr.Loss
	}
	o := accel.DefaultOptimizer()
	plain := lossWith("plain", o)
	o.LabelSmoothing = 0.1
	smoothed := lossWith("smoothed", o)
	if smoothed == plain || math.IsNaN(smoothed) {
		t.Errorf("label smoothing 0.1 gave loss %v, the same as without (%v)", smoothed, plain)
	}
	o.LabelSmoothing, o.Precision = 0, accel.PrecisionBF16
	bf16 := lossWith("bf16", o)
	if d := math.Abs(bf16 - plain); d == 0 || d > 0.05*plain {
		t.Errorf("bf16 loss %v against fp32 %v: want close, not identical", bf16, plain)
	}

	for name, bad := range map[string]accel.OptimizerConfig{
		"smoothing 1":     {Beta1: 0.9, Beta2: 0.95, LabelSmoothing: 1},
		"fp16 on the cpu": {Beta1: 0.9, Beta2: 0.95, Precision: accel.PrecisionFP16},
		"unknown":         {Beta1: 0.9, Beta2: 0.95, Precision: "fp8"},
	} {
		_, err := e.LoadModel(ctx, accel.LoadRequest{ModelID: "bad", ConfigJSON: []byte(tinyJSON), Seed: 1, Optimizer: &bad})
		if !errors.Is(err, accel.ErrInvalidArgument) {
			t.Errorf("%s: err %v, want ErrInvalidArgument", name, err)
		}
	}
}
