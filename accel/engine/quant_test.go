package engine

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
	"github.com/llmesh/llmesh/accel/transformer"
)

// trainedCheckpoint trains the tiny model for a few steps (with QAT when
// asked) and returns its fp32 checkpoint.
func trainedCheckpoint(t *testing.T, e *Engine, id string, qat bool) []byte {
	t.Helper()
	ctx := context.Background()
	o := accel.DefaultOptimizer()
	o.QAT = qat
	if _, err := e.LoadModel(ctx, accel.LoadRequest{ModelID: id, ConfigJSON: []byte(tinyJSON), Seed: 1, Optimizer: &o}); err != nil {
		t.Fatal(err)
	}
	in, tg := batch(0)
	for range 30 {
		if _, err := e.TrainStep(ctx, accel.TrainStepRequest{ModelID: id, Batch: 2, SeqLen: 6, Inputs: in, Targets: tg}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: id, LearningRate: 1e-2}); err != nil {
			t.Fatal(err)
		}
	}
	sv, err := e.SaveWeights(ctx, accel.SaveRequest{ModelID: id})
	if err != nil {
		t.Fatal(err)
	}
	return sv.Safetensors
}

func evalLoss(t *testing.T, b accel.Backend, id string, stats bool) accel.EvalResult {
	t.Helper()
	in, tg := batch(0)
	ev, err := b.Evaluate(context.Background(), accel.EvalRequest{ModelID: id, Batch: 2, SeqLen: 6, Inputs: in, Targets: tg, ActivationStats: stats})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestQuantizedModelInEngine: calibration through Evaluate, a W8A8
// checkpoint and a dynamic one loaded into the engine, evaluated and
// decoded on the INT8 kernels, saved back quantized, and refused for
// training.
func TestQuantizedModelInEngine(t *testing.T) {
	ctx := context.Background()
	e := New("cpu", nil)
	fp := trainedCheckpoint(t, e, "fp", false)
	ev := evalLoss(t, e, "fp", true)
	if len(ev.ActivationMax) != 1+4*2 {
		t.Fatalf("activation maxima %v: want wte and four matrices per layer", ev.ActivationMax)
	}
	for name, v := range ev.ActivationMax {
		if !(v > 0) {
			t.Fatalf("activation maximum of %q is %v", name, v)
		}
	}
	if again := evalLoss(t, e, "fp", false); again.ActivationMax != nil || again.Loss != ev.Loss {
		t.Fatalf("plain Evaluate after a calibration one: %+v (want loss %v, no maxima)", again, ev.Loss)
	}
	for name, opt := range map[string]transformer.QuantOptions{"dynamic": {}, "static": {ActivationMax: ev.ActivationMax}} {
		t.Run(name, func(t *testing.T) {
			q, rep, err := transformer.Quantize(fp, transformer.Config{}, opt)
			if err != nil {
				t.Fatal(err)
			}
			if rep.BytesAfter >= rep.BytesBefore {
				t.Fatalf("report %+v", rep)
			}
			o := accel.DefaultOptimizer()
			if _, err := e.LoadModel(ctx, accel.LoadRequest{ModelID: "q", ConfigJSON: []byte(tinyJSON), Weights: q, Optimizer: &o}); err != nil {
				t.Fatal(err)
			}
			ql := evalLoss(t, e, "q", false).Loss
			if math.Abs(ql-ev.Loss) > 0.03*ev.Loss || ql == ev.Loss {
				t.Fatalf("INT8 loss %v, fp32 %v: want within 3%% and not identical", ql, ev.Loss)
			}
			in, tg := batch(0)
			_, err = e.TrainStep(ctx, accel.TrainStepRequest{ModelID: "q", Batch: 2, SeqLen: 6, Inputs: in, Targets: tg})
			if !errors.Is(err, accel.ErrInvalidArgument) || !strings.Contains(err.Error(), "training needs the fp32 checkpoint") {
				t.Fatalf("TrainStep of an INT8 model: %v", err)
			}
			_, err = e.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "q", LearningRate: 1e-2, Gradients: make([]float32, rep.Tensors[0].Shape[0])})
			if !errors.Is(err, accel.ErrInvalidArgument) || !strings.Contains(err.Error(), "INT8") {
				t.Fatalf("ApplyUpdate of an INT8 model: %v", err)
			}
			sv, err := e.SaveWeights(ctx, accel.SaveRequest{ModelID: "q"})
			if err != nil || !bytes.Equal(sv.Safetensors, q) {
				t.Fatalf("SaveWeights of an INT8 model: %v (equal to the checkpoint: %v)", err, err == nil && bytes.Equal(sv.Safetensors, q))
			}
			// Cached decoding runs, and its first step is the recomputation.
			seq := []int32{1, 2, 3, 4}
			rec, err := e.DecodeStep(ctx, accel.DecodeRequest{ModelID: "q", Sequences: [][]int32{seq}})
			if err != nil {
				t.Fatal(err)
			}
			dec, err := e.DecodeStep(ctx, accel.DecodeRequest{ModelID: "q", Sequences: [][]int32{seq}, CacheIDs: []uint64{1}})
			if err != nil {
				t.Fatal(err)
			}
			closeRows(t, "INT8 cached decode", dec.Logits, rec.Logits, 1e-4)
		})
	}
	// A quantized checkpoint quantized again, and QAT on an INT8 model.
	q, _, _ := transformer.Quantize(fp, transformer.Config{}, transformer.QuantOptions{})
	if _, _, err := transformer.Quantize(q, transformer.Config{}, transformer.QuantOptions{}); !errors.Is(err, transformer.ErrAlreadyQuantized) {
		t.Fatalf("quantizing twice: %v", err)
	}
	o := accel.DefaultOptimizer()
	o.QAT = true
	_, err := e.LoadModel(ctx, accel.LoadRequest{ModelID: "q2", ConfigJSON: []byte(tinyJSON), Weights: q, Optimizer: &o})
	if !errors.Is(err, accel.ErrInvalidArgument) {
		t.Fatalf("QAT on an INT8 checkpoint: %v, want ErrInvalidArgument", err)
	}
}

// TestQATInEngine: a QAT fine-tune through the engine; its INT8 model
// loses at most 1% against its own fp32 weights.
func TestQATInEngine(t *testing.T) {
	e := New("cpu", nil)
	fp := trainedCheckpoint(t, e, "qat", true)
	qatLoss := evalLoss(t, e, "qat", false).Loss // fake-quantized forward
	if _, err := e.LoadModel(context.Background(), accel.LoadRequest{ModelID: "fp", ConfigJSON: []byte(tinyJSON), Weights: fp}); err != nil {
		t.Fatal(err)
	}
	fl := evalLoss(t, e, "fp", false).Loss
	q, _, err := transformer.Quantize(fp, transformer.Config{}, transformer.QuantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.LoadModel(context.Background(), accel.LoadRequest{ModelID: "q", ConfigJSON: []byte(tinyJSON), Weights: q}); err != nil {
		t.Fatal(err)
	}
	ql := evalLoss(t, e, "q", false).Loss
	t.Logf("QAT through the engine: fp32 %.5f, fake-quant %.5f, INT8 %.5f", fl, qatLoss, ql)
	if ql > 1.01*fl || qatLoss == fl {
		t.Fatalf("INT8 loss %v vs fp32 %v (fake-quant %v)", ql, fl, qatLoss)
	}
}

// TestQuantizedThroughPlugin loads a W8A8 checkpoint into a real plugin
// process and calibrates through it: the loss and activation maxima
// cross the gRPC boundary and match the engine in process.
func TestQuantizedThroughPlugin(t *testing.T) {
	h, err := accel.NewHost(accel.HostConfig{Command: acceltest.Reexec, StartTimeout: 20 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := h.Launch(ctx, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	e := New("cpu", transformer.PortableKernels())
	fp := trainedCheckpoint(t, e, "fp", false)
	if _, err := p.LoadModel(ctx, accel.LoadRequest{ModelID: "fp", ConfigJSON: []byte(tinyJSON), Weights: fp}); err != nil {
		t.Fatal(err)
	}
	want, got := evalLoss(t, e, "fp", true), evalLoss(t, p, "fp", true)
	if len(got.ActivationMax) != len(want.ActivationMax) {
		t.Fatalf("activation maxima through the plugin: %v, in process %v", got.ActivationMax, want.ActivationMax)
	}
	for name, v := range want.ActivationMax {
		if math.Abs(float64(got.ActivationMax[name]-v)) > 1e-5*float64(v) {
			t.Fatalf("activation maximum of %q: %v through the plugin, %v in process", name, got.ActivationMax[name], v)
		}
	}
	q, _, err := transformer.Quantize(fp, transformer.Config{}, transformer.QuantOptions{ActivationMax: got.ActivationMax})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []accel.Backend{p, e} {
		if _, err := b.LoadModel(ctx, accel.LoadRequest{ModelID: "q", ConfigJSON: []byte(tinyJSON), Weights: q}); err != nil {
			t.Fatal(err)
		}
	}
	if pl, el := evalLoss(t, p, "q", false).Loss, evalLoss(t, e, "q", false).Loss; math.Abs(pl-el) > 1e-5*el {
		t.Fatalf("INT8 loss %v through the plugin, %v in process", pl, el)
	}
	_, err = p.TrainStep(ctx, accel.TrainStepRequest{ModelID: "q", Batch: 1, SeqLen: 2, Inputs: []int32{1, 2}, Targets: []int32{2, 3}})
	if !errors.Is(err, accel.ErrInvalidArgument) {
		t.Fatalf("training an INT8 model through the plugin: %v, want ErrInvalidArgument", err)
	}
}
