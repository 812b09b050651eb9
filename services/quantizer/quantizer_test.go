package quantizer

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	"github.com/llmesh/llmesh/services/internal/finetune"
	"github.com/llmesh/llmesh/services/internal/finetune/finetunetest"
	"github.com/llmesh/llmesh/services/internal/jobspec"
)

const tinyConfig = `{"vocab_size":64,"n_ctx":16,"n_embd":64,"n_layer":2,"n_head":2}`

const ref1 = "sha256-0000000000000000000000000000000000000000000000000000000000000001"

func TestSpecValidate(t *testing.T) {
	tests := map[string]struct {
		spec string
		want string // "" for valid
	}{
		"defaults":              {spec: `{"model":"m"}`},
		"w8a8":                  {spec: `{"model":"m","mode":"w8a8","calib_batches":2}`},
		"checkpoint":            {spec: `{"checkpoint":"` + ref1 + `","config":` + tinyConfig + `}`},
		"neither":               {spec: `{}`, want: "one of them"},
		"both":                  {spec: `{"model":"m","checkpoint":"` + ref1 + `","config":{}}`, want: "one of them"},
		"checkpoint no config":  {spec: `{"checkpoint":"` + ref1 + `"}`, want: "needs config"},
		"bad ref":               {spec: `{"checkpoint":"sha256-zz","config":{}}`, want: "checkpoint"},
		"model with config":     {spec: `{"model":"m","config":{}}`, want: "goes with checkpoint"},
		"mode":                  {spec: `{"model":"m","mode":"int4"}`, want: `mode "int4"`},
		"calib without w8a8":    {spec: `{"model":"m","calib_batches":3}`, want: "calib_batches needs mode"},
		"output is source":      {spec: `{"model":"m","output":"m"}`, want: "is the source model"},
		"bad output":            {spec: `{"model":"m","output":"../x"}`, want: "output"},
		"negative qat":          {spec: `{"model":"m","qat_steps":-1}`, want: "qat_steps"},
		"unknown field":         {spec: `{"model":"m","bits":4}`, want: "unknown field"},
		"backend path":          {spec: `{"model":"m","backend":"../cpu"}`, want: "plain name"},
		"lr":                    {spec: `{"model":"m","lr":2}`, want: "lr"},
		"warmup beyond the qat": {spec: `{"model":"m","qat_steps":10,"warmup":11}`, want: "warmup"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var sp Spec
			err := jobspec.Decode("quantize", []byte(tc.spec), &sp)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid spec refused: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, jobspec.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want an invalid spec saying %q", err, tc.want)
			}
		})
	}
	var sp Spec
	if err := jobspec.Decode("quantize", []byte(`{"model":"m","mode":"w8a8"}`), &sp); err != nil {
		t.Fatal(err)
	}
	if sp.Output != "m-w8a8" || sp.CalibBatches != 8 || sp.Backend != "cpu" || sp.Batch != 8 {
		t.Errorf("defaults: %+v", sp)
	}
}

// env is a bus, a quantizer serving it and a trained tiny model "tiny"
// registered with its token shards.
type env struct {
	b                *bus.Bus
	trainRef, valRef string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	b := bustest.New(t)
	s, err := New(Config{Bus: b, Host: finetunetest.Host(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("quantizer Run: %v", err)
		}
	})
	ids := finetunetest.Pattern(3000, 11, 64)
	e := &env{b: b, trainRef: finetunetest.Shard(t, b, ids[:2400]), valRef: finetunetest.Shard(t, b, ids[2400:])}
	w := finetunetest.Train(t, tinyConfig, ids[:2400], 60, 1)
	finetunetest.Register(t, b, "tiny", tinyConfig, w, "", e.trainRef, e.valRef)
	return e
}

func TestQuantize(t *testing.T) {
	e := newEnv(t)
	// The token shards come from the job that made the model.
	id := finetunetest.Submit(t, e.b, bus.KindQuantize, map[string]any{"model": "tiny", "eval_batches": 4})
	var res Result
	finetunetest.Succeeded(t, e.b, id, &res)

	if res.Model != "tiny-int8" || res.Mode != ModeInt8 || res.ValRef != e.valRef || res.Parameters == 0 || res.EvalTokens != 4*8*16 {
		t.Errorf("result %+v", res)
	}
	// Weights are 1 byte instead of 4, plus a float32 scale per output
	// channel, biases and norms in FP32: well over 3x on this tiny model.
	if res.Ratio < 3 || res.BytesAfter*3 > res.BytesBefore {
		t.Errorf("%d -> %d bytes (%.2fx): want over 3x smaller", res.BytesBefore, res.BytesAfter, res.Ratio)
	}
	if !(res.ValLossBefore < math.Log(64)-0.5) {
		t.Errorf("the source model is not trained: validation loss %.4f", res.ValLossBefore)
	}
	// INT8 rounding moves the loss, but not by much.
	if math.Abs(res.PerplexityChange) > 0.05 || res.ValLossAfter == res.ValLossBefore {
		t.Errorf("perplexity %.4f -> %.4f (%+.2f%%): want a small, nonzero change", res.PerplexityBefore, res.PerplexityAfter, 100*res.PerplexityChange)
	}
	if got := math.Exp(res.ValLossAfter); math.Abs(got-res.PerplexityAfter) > 1e-9 {
		t.Errorf("perplexity %v is not exp(loss %v)", res.PerplexityAfter, res.ValLossAfter)
	}
	// The quantized model is registered and its checkpoint is int8.
	rec, err := e.b.GetModel(t.Context(), "tiny-int8")
	if err != nil {
		t.Fatal(err)
	}
	q, err := e.b.GetObject(t.Context(), rec.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := finetune.IsQuantized(q); !ok || err != nil || rec.Checkpoint != res.Checkpoint || int64(len(q)) != res.BytesAfter {
		t.Errorf("registered checkpoint %s (%d bytes, quantized %v, %v), result says %s (%d bytes)", rec.Checkpoint, len(q), ok, err, res.Checkpoint, res.BytesAfter)
	}

	// Quantizing it again is refused, and the model stays as it is.
	id = finetunetest.Submit(t, e.b, bus.KindQuantize, map[string]any{"model": "tiny-int8"})
	finetunetest.Failed(t, e.b, id, "already quantized", `"tiny-int8"`, "FP32 source")
	if again, err := e.b.GetModel(t.Context(), "tiny-int8"); err != nil || again.Checkpoint != rec.Checkpoint {
		t.Errorf("the quantized model changed: %v, %v", again, err)
	}
}

func TestQuantizeBadInput(t *testing.T) {
	e := newEnv(t)
	tests := map[string]struct {
		spec map[string]any
		want []string
	}{
		"unknown model":      {map[string]any{"model": "nope"}, []string{`"nope"`, "not found"}},
		"unknown checkpoint": {map[string]any{"checkpoint": ref1, "config": json.RawMessage(tinyConfig)}, []string{ref1[:20]}},
		"bad options":        {map[string]any{"model": "tiny", "mode": "int3"}, []string{"invalid job spec", `mode "int3"`}},
		"seq_len":            {map[string]any{"model": "tiny", "seq_len": 17}, []string{"seq_len 17 exceeds", "n_ctx 16"}},
		"neither":            {map[string]any{"checkpoint": "", "config": nil}, []string{"one of them"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id := finetunetest.Submit(t, e.b, bus.KindQuantize, tc.spec)
			finetunetest.Failed(t, e.b, id, tc.want...)
		})
	}
	if _, err := e.b.GetModel(t.Context(), "tiny-int8"); !errors.Is(err, bus.ErrNotFound) {
		t.Errorf("a failed job registered a model: %v", err)
	}
}

// TestQuantizeW8A8QAT calibrates static activation scales and fine-tunes
// with quantization-aware training first; the backend must support both.
func TestQuantizeW8A8QAT(t *testing.T) {
	e := newEnv(t)
	id := finetunetest.Submit(t, e.b, bus.KindQuantize, map[string]any{
		"model": "tiny", "mode": "w8a8", "calib_batches": 2, "qat_steps": 20, "lr": 3e-3, "eval_batches": 2, "output": "tiny-qat"})
	var res Result
	finetunetest.Succeeded(t, e.b, id, &res)
	if res.Model != "tiny-qat" || res.Mode != ModeW8A8 || res.QATSteps != 20 || res.ActivationLayers < 8 || res.TrainRefs[0] != e.trainRef {
		t.Errorf("result %+v", res)
	}
	if res.ValLossQAT == 0 || math.Abs(res.PerplexityChange) > 0.1 || res.Ratio < 3 {
		t.Errorf("QAT loss %.4f, perplexity %.4f -> %.4f, %.2fx smaller", res.ValLossQAT, res.PerplexityBefore, res.PerplexityAfter, res.Ratio)
	}
}
