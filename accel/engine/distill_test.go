package engine

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/transformer"
)

// A teacher's top-K from Evaluate drives a student's TrainStep: the
// engine's numbers are the transformer's, and the student's distillation
// loss falls.
func TestDistillThroughEngine(t *testing.T) {
	ctx := context.Background()
	e := New("cpu", nil)
	load(t, e, "teacher", false)
	req := accel.LoadRequest{ModelID: "student", ConfigJSON: []byte(tinyJSON), Seed: 2}
	o := accel.DefaultOptimizer()
	req.Optimizer = &o
	if _, err := e.LoadModel(ctx, req); err != nil {
		t.Fatal(err)
	}
	in, tg := batch(3)
	const K = 5
	ev, err := e.Evaluate(ctx, accel.EvalRequest{ModelID: "teacher", Batch: 2, SeqLen: 6, Inputs: in, Targets: tg, TopK: K})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := transformer.ParseConfig([]byte(tinyJSON))
	if err != nil {
		t.Fatal(err)
	}
	ref := transformer.New(cfg, nil, 1)
	want, err := ref.TopK(in, tg, 2, 6, K)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Loss != want.Loss || ev.Tokens != 12 || !slices.Equal(ev.TopKIndices, want.Indices) || !slices.Equal(ev.TopKLogits, want.Logits) {
		t.Fatalf("evaluate: loss %v, %d indices; want %v, %d", ev.Loss, len(ev.TopKIndices), want.Loss, len(want.Indices))
	}
	teacher := &accel.SoftTargets{K: K, Indices: ev.TopKIndices, Logits: ev.TopKLogits, Temperature: 2, Alpha: 0.8}
	student := transformer.New(cfg, nil, 2)
	wantLoss, err := student.DistillObjective(in, tg, 2, 6, &transformer.SoftTargets{K: K, Indices: ev.TopKIndices, Logits: ev.TopKLogits, Temperature: 2, Alpha: 0.8})
	if err != nil {
		t.Fatal(err)
	}
	var first, last float64
	for step := range 30 {
		tr, err := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: "student", Batch: 2, SeqLen: 6, Inputs: in, Targets: tg, Teacher: teacher})
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = tr.Loss
			if d := tr.Loss - wantLoss; d > 1e-6*wantLoss || d < -1e-6*wantLoss {
				t.Fatalf("first distillation loss %v, transformer %v", tr.Loss, wantLoss)
			}
		}
		last = tr.Loss
		if _, err := e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "student", LearningRate: 1e-2}); err != nil {
			t.Fatal(err)
		}
	}
	if !(last < first/2) {
		t.Fatalf("distillation loss %v -> %v, want halved", first, last)
	}
}

func TestDistillErrors(t *testing.T) {
	ctx := context.Background()
	e := New("cpu", nil)
	load(t, e, "m", true)
	in, tg := batch(0)
	good := func() *accel.SoftTargets {
		st := &accel.SoftTargets{K: 2, Indices: make([]int32, 24), Logits: make([]float32, 24), Temperature: 1, Alpha: 0.5}
		for i := range st.Indices {
			st.Indices[i] = int32(i % 2)
		}
		return st
	}
	if _, err := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: "m", Batch: 2, SeqLen: 6, Inputs: in, Targets: tg, Teacher: good()}); err != nil {
		t.Fatal(err)
	}
	train := map[string]func(*accel.SoftTargets){
		"k zero":          func(s *accel.SoftTargets) { s.K = 0 },
		"k above max":     func(s *accel.SoftTargets) { s.K = accel.MaxTopK + 1 },
		"k above vocab":   func(s *accel.SoftTargets) { s.K = 14 },
		"short logits":    func(s *accel.SoftTargets) { s.Logits = s.Logits[:23] },
		"index range":     func(s *accel.SoftTargets) { s.Indices[7] = 13 },
		"duplicate index": func(s *accel.SoftTargets) { s.Indices[1] = 0 },
		"temperature":     func(s *accel.SoftTargets) { s.Temperature = 0 },
		"alpha":           func(s *accel.SoftTargets) { s.Alpha = 2 },
	}
	for name, mod := range train {
		t.Run("train/"+name, func(t *testing.T) {
			st := good()
			mod(st)
			_, err := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: "m", Batch: 2, SeqLen: 6, Inputs: in, Targets: tg, Teacher: st})
			if !errors.Is(err, accel.ErrInvalidArgument) {
				t.Fatalf("error %v, want ErrInvalidArgument", err)
			}
		})
	}
	for _, k := range []int{-1, 14, accel.MaxTopK + 1} {
		_, err := e.Evaluate(ctx, accel.EvalRequest{ModelID: "m", Batch: 2, SeqLen: 6, Inputs: in, Targets: tg, TopK: k})
		if !errors.Is(err, accel.ErrInvalidArgument) {
			t.Fatalf("top_k %d: error %v, want ErrInvalidArgument", k, err)
		}
	}
}

// A pruned model loaded with KeepSparsity comes back from fine-tuning with
// the same zeros; without it the zeros fill in.
func TestKeepSparsity(t *testing.T) {
	ctx := context.Background()
	cfg, err := transformer.ParseConfig([]byte(tinyJSON))
	if err != nil {
		t.Fatal(err)
	}
	m := transformer.New(cfg, nil, 4)
	rep, err := transformer.PruneMagnitude(m, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	var ck bytes.Buffer
	if err := transformer.WriteCheckpoint(&ck, m, 0, nil); err != nil {
		t.Fatal(err)
	}
	mask := transformer.ZeroMask(m)
	in, tg := batch(1)
	for _, keep := range []bool{true, false} {
		e := New("cpu", nil)
		o := accel.DefaultOptimizer()
		o.KeepSparsity = keep
		if _, err := e.LoadModel(ctx, accel.LoadRequest{ModelID: "p", ConfigJSON: []byte(tinyJSON), Weights: ck.Bytes(), Optimizer: &o}); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if _, err := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: "p", Batch: 2, SeqLen: 6, Inputs: in, Targets: tg}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "p", LearningRate: 1e-2}); err != nil {
				t.Fatal(err)
			}
		}
		saved, err := e.SaveWeights(ctx, accel.SaveRequest{ModelID: "p", WithOptimizer: true})
		if err != nil {
			t.Fatal(err)
		}
		back, err := transformer.ReadCheckpoint(saved.Safetensors, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := transformer.SparsityOf(back.Model)
		kept := true
		for i, v := range back.Model.ParamData() {
			if mask.Has(i) && (v != 0 || back.Optimizer.M[i] != 0 || back.Optimizer.V[i] != 0) {
				kept = false
			}
		}
		if keep && (!kept || got.Nonzero != rep.Nonzero) {
			t.Fatalf("KeepSparsity: %d nonzero weights after fine-tuning, %d before; masked entries zero: %v", got.Nonzero, rep.Nonzero, kept)
		}
		if !keep && got.Nonzero == rep.Nonzero {
			t.Fatal("without KeepSparsity the pruned weights stayed zero")
		}
	}
}
