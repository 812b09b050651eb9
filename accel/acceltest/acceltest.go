package acceltest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel"
)

// TinyConfigJSON is the model every check loads: small enough that a whole
// run takes well under a second on a portable backend.
const TinyConfigJSON = `{"vocab_size":32,"n_ctx":8,"n_embd":16,"n_layer":1,"n_head":2}`

const (
	tinyVocab = 32
	tinyCtx   = 8
)

// Options configures Run.
type Options struct {
	// Reference, when set, is a trusted backend whose numbers this one must
	// match within Tolerance (losses, logits, gradients).
	Reference accel.Backend
	// Tolerance is the largest absolute difference allowed, relative to
	// max(1, |reference|). 0 means 1e-4.
	Tolerance float64
	// ModelPrefix prefixes the model ids Run loads (default "acceltest").
	ModelPrefix string
	// Timeout bounds each check (default 1 minute).
	Timeout time.Duration
	// TrainSteps is how many steps the training check takes (default 30).
	TrainSteps int
	// LearningRate for the training check (default 1e-2).
	LearningRate float32
}

func (o *Options) defaults() {
	if o.Tolerance == 0 {
		o.Tolerance = 1e-4
	}
	if o.ModelPrefix == "" {
		o.ModelPrefix = "acceltest"
	}
	if o.Timeout == 0 {
		o.Timeout = time.Minute
	}
	if o.TrainSteps == 0 {
		o.TrainSteps = 30
	}
	if o.LearningRate == 0 {
		o.LearningRate = 1e-2
	}
}

type suite struct {
	b    accel.Backend
	opts Options
}

// Run runs the conformance suite against b as subtests of t.
func Run(t *testing.T, b accel.Backend, opts Options) {
	t.Helper()
	opts.defaults()
	s := &suite{b: b, opts: opts}

	ctx, cancel := s.ctx(t)
	info, err := b.Info(ctx)
	cancel()
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	t.Run("Info", func(t *testing.T) {
		if info.Name == "" {
			t.Errorf("Info.Name is empty")
		}
		if info.ProtocolVersion != accel.ProtocolVersion {
			t.Errorf("Info.ProtocolVersion = %d, want %d", info.ProtocolVersion, accel.ProtocolVersion)
		}
		if info.Device == "" {
			t.Errorf("Info.Device is empty")
		}
	})
	if info.Stub {
		t.Run("StubRefusesCompute", s.stubRefusesCompute)
		return
	}
	t.Run("LoadFresh", s.loadFresh)
	t.Run("TrainReducesLoss", s.trainReducesLoss)
	t.Run("ApplyGivenGradients", s.applyGivenGradients)
	t.Run("Evaluate", s.evaluate)
	t.Run("DecodeStepShapes", s.decodeShapes)
	t.Run("SaveLoadSameLogits", s.saveLoad)
	t.Run("UnloadThenCall", s.unloadThenCall)
	t.Run("InvalidArgument", s.invalidArgument)
	if opts.Reference != nil {
		t.Run("MatchesReference", s.matchesReference)
	}
}

func (s *suite) ctx(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), s.opts.Timeout)
}

func (s *suite) id(t *testing.T, suffix string) string {
	return fmt.Sprintf("%s-%s-%s", s.opts.ModelPrefix, t.Name(), suffix)
}

// load loads a fresh tiny model and unloads it when t ends.
func load(t *testing.T, ctx context.Context, b accel.Backend, id string, seed uint64, weights []byte) accel.LoadResult {
	t.Helper()
	opt := accel.DefaultOptimizer()
	res, err := b.LoadModel(ctx, accel.LoadRequest{
		ModelID: id, ConfigJSON: []byte(TinyConfigJSON), Weights: weights, Seed: seed, Optimizer: &opt,
	})
	if err != nil {
		t.Fatalf("LoadModel %q: %v", id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Unload(ctx, id); err != nil && !errors.Is(err, accel.ErrUnknownModel) {
			t.Errorf("Unload %q: %v", id, err)
		}
	})
	return res
}

// batch is a repeated sequence: rows of 0..n_ctx-1 shifted by one.
func batch(rows int) (inputs, targets []int32) {
	for r := 0; r < rows; r++ {
		for i := 0; i < tinyCtx; i++ {
			inputs = append(inputs, int32((i+r)%tinyVocab))
			targets = append(targets, int32((i+r+1)%tinyVocab))
		}
	}
	return inputs, targets
}

func finite(t *testing.T, what string, xs []float32) {
	t.Helper()
	for i, x := range xs {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			t.Fatalf("%s[%d] = %v, want finite", what, i, x)
		}
	}
}

func (s *suite) stubRefusesCompute(t *testing.T) {
	ctx, cancel := s.ctx(t)
	defer cancel()
	in, tg := batch(1)
	opt := accel.DefaultOptimizer()
	calls := map[string]func() error{
		"LoadModel": func() error {
			_, err := s.b.LoadModel(ctx, accel.LoadRequest{ModelID: "m", ConfigJSON: []byte(TinyConfigJSON), Optimizer: &opt})
			return err
		},
		"TrainStep": func() error {
			_, err := s.b.TrainStep(ctx, accel.TrainStepRequest{ModelID: "m", Batch: 1, SeqLen: tinyCtx, Inputs: in, Targets: tg})
			return err
		},
		"ApplyUpdate": func() error {
			_, err := s.b.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "m", LearningRate: 1e-3})
			return err
		},
		"Evaluate": func() error {
			_, err := s.b.Evaluate(ctx, accel.EvalRequest{ModelID: "m", Batch: 1, SeqLen: tinyCtx, Inputs: in, Targets: tg})
			return err
		},
		"DecodeStep": func() error {
			_, err := s.b.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", Sequences: [][]int32{{1}}})
			return err
		},
		"SaveWeights": func() error {
			_, err := s.b.SaveWeights(ctx, accel.SaveRequest{ModelID: "m"})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			if !errors.Is(err, accel.ErrNotImplemented) {
				t.Fatalf("%s on a stub: err = %v, want accel.ErrNotImplemented", name, err)
			}
		})
	}
}

func (s *suite) loadFresh(t *testing.T) {
	ctx, cancel := s.ctx(t)
	defer cancel()
	a := load(t, ctx, s.b, s.id(t, "a"), 7, nil)
	if a.Parameters == 0 {
		t.Fatalf("LoadModel: Parameters = 0")
	}
	if a.Step != 0 {
		t.Errorf("fresh LoadModel: Step = %d, want 0", a.Step)
	}
	// The same seed gives the same model.
	b := load(t, ctx, s.b, s.id(t, "b"), 7, nil)
	if b.Parameters != a.Parameters {
		t.Errorf("Parameters differ for one config: %d and %d", a.Parameters, b.Parameters)
	}
	seqs := [][]int32{{1, 2, 3}}
	la := s.decode(t, ctx, s.id(t, "a"), seqs)
	lb := s.decode(t, ctx, s.id(t, "b"), seqs)
	compare(t, "logits of two models from one seed", la, lb, 0)
}

func (s *suite) decode(t *testing.T, ctx context.Context, id string, seqs [][]int32) [][]float32 {
	t.Helper()
	res, err := s.b.DecodeStep(ctx, accel.DecodeRequest{ModelID: id, Sequences: seqs})
	if err != nil {
		t.Fatalf("DecodeStep %q: %v", id, err)
	}
	return res.Logits
}

func compare(t *testing.T, what string, got, want [][]float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s: row %d has %d values, want %d", what, i, len(got[i]), len(want[i]))
		}
		compareFlat(t, fmt.Sprintf("%s row %d", what, i), got[i], want[i], tol)
	}
}

func compareFlat(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for j := range got {
		if !near(float64(got[j]), float64(want[j]), tol) {
			t.Fatalf("%s [%d] = %v, want %v (tolerance %g)", what, j, got[j], want[j], tol)
		}
	}
}

func near(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

func (s *suite) trainReducesLoss(t *testing.T) {
	ctx, cancel := s.ctx(t)
	defer cancel()
	id := s.id(t, "m")
	lr := load(t, ctx, s.b, id, 1, nil)
	in, tg := batch(2)
	req := accel.TrainStepRequest{ModelID: id, Batch: 2, SeqLen: tinyCtx, Inputs: in, Targets: tg}
	var first, last float64
	for step := 1; step <= s.opts.TrainSteps; step++ {
		req.ReturnGradients = step == 1
		res, err := s.b.TrainStep(ctx, req)
		if err != nil {
			t.Fatalf("TrainStep %d: %v", step, err)
		}
		if math.IsNaN(res.Loss) || res.Loss <= 0 {
			t.Fatalf("TrainStep %d: loss %v, want positive", step, res.Loss)
		}
		if step == 1 {
			first = res.Loss
			if uint64(len(res.Gradients)) != lr.Parameters {
				t.Fatalf("TrainStep with ReturnGradients: %d gradients for %d parameters", len(res.Gradients), lr.Parameters)
			}
			finite(t, "gradients", res.Gradients)
		} else if res.Gradients != nil {
			t.Errorf("TrainStep without ReturnGradients returned %d gradients", len(res.Gradients))
		}
		last = res.Loss
		up, err := s.b.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: id, LearningRate: s.opts.LearningRate})
		if err != nil {
			t.Fatalf("ApplyUpdate %d: %v", step, err)
		}
		if up.Step != int64(step) {
			t.Fatalf("ApplyUpdate %d: Step = %d", step, up.Step)
		}
		if !(up.GradNorm > 0) {
			t.Fatalf("ApplyUpdate %d: GradNorm = %v, want positive", step, up.GradNorm)
		}
	}
	if !(last < first*0.9) {
		t.Fatalf("loss went from %.4f to %.4f in %d steps on a repeated sequence, want a drop of at least 10%%", first, last, s.opts.TrainSteps)
	}
}

func (s *suite) applyGivenGradients(t *testing.T) {
	ctx, cancel := s.ctx(t)
	defer cancel()
	id := s.id(t, "m")
	lr := load(t, ctx, s.b, id, 2, nil)
	in, tg := batch(1)
	res, err := s.b.TrainStep(ctx, accel.TrainStepRequest{ModelID: id, Batch: 1, SeqLen: tinyCtx, Inputs: in, Targets: tg, ReturnGradients: true})
	if err != nil {
		t.Fatalf("TrainStep: %v", err)
	}
	before := s.decode(t, ctx, id, [][]int32{{3}})
	up, err := s.b.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: id, LearningRate: 1e-2, Gradients: res.Gradients})
	if err != nil {
		t.Fatalf("ApplyUpdate with %d gradients: %v", len(res.Gradients), err)
	}
	if up.Step != 1 {
		t.Errorf("ApplyUpdate: Step = %d, want 1", up.Step)
	}
	after := s.decode(t, ctx, id, [][]int32{{3}})
	same := true
	for j := range before[0] {
		same = same && before[0][j] == after[0][j]
	}
	if same {
		t.Errorf("ApplyUpdate with gradients left the logits unchanged")
	}
	_, err = s.b.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: id, LearningRate: 1e-2, Gradients: make([]float32, lr.Parameters+1)})
	if !errors.Is(err, accel.ErrInvalidArgument) {
		t.Errorf("ApplyUpdate with %d gradients for %d parameters: err = %v, want ErrInvalidArgument", lr.Parameters+1, lr.Parameters, err)
	}
}

func (s *suite) evaluate(t *testing.T) {
	ctx, cancel := s.ctx(t)
	defer cancel()
	id := s.id(t, "m")
	load(t, ctx, s.b, id, 3, nil)
	in, tg := batch(3)
	req := accel.EvalRequest{ModelID: id, Batch: 3, SeqLen: tinyCtx, Inputs: in, Targets: tg}
	res, err := s.b.Evaluate(ctx, req)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	if res.Tokens != int64(len(tg)) {
		t.Errorf("Evaluate: Tokens = %d, want %d", res.Tokens, len(tg))
	}
	// A fresh model is near uniform: loss near ln(vocab).
	if want := math.Log(tinyVocab); math.Abs(res.Loss-want) > 1 {
		t.Errorf("Evaluate on a fresh model: loss %.4f, want near ln(%d) = %.4f", res.Loss, tinyVocab, want)
	}
	again, err := s.b.Evaluate(ctx, req)
	if err != nil {
		t.Fatalf("Evaluate again: %v", err)
	}
	if again.Loss != res.Loss {
		t.Errorf("Evaluate is not repeatable: %v then %v (it must not touch the model)", res.Loss, again.Loss)
	}
}

func (s *suite) decodeShapes(t *testing.T) {
	ctx, cancel := s.ctx(t)
	defer cancel()
	id := s.id(t, "m")
	load(t, ctx, s.b, id, 4, nil)
	seqs := [][]int32{{1}, {1, 2, 3, 4}, {0, 1, 2, 3, 4, 5, 6, 7}}
	logits := s.decode(t, ctx, id, seqs)
	if len(logits) != len(seqs) {
		t.Fatalf("DecodeStep: %d rows for %d sequences", len(logits), len(seqs))
	}
	for i, row := range logits {
		if len(row) != tinyVocab {
			t.Fatalf("DecodeStep: row %d has %d logits, want vocab %d", i, len(row), tinyVocab)
		}
		finite(t, fmt.Sprintf("logits[%d]", i), row)
	}
	// A batch row equals the same sequence decoded alone.
	alone := s.decode(t, ctx, id, [][]int32{seqs[1]})
	compare(t, "batched vs alone", logits[1:2], alone, s.opts.Tolerance)

	// A sequence longer than n_ctx is refused, or decoded as its last
	// n_ctx tokens (a sliding context); either is allowed.
	long := make([]int32, tinyCtx+3)
	for i := range long {
		long[i] = int32(i % tinyVocab)
	}
	res, err := s.b.DecodeStep(ctx, accel.DecodeRequest{ModelID: id, Sequences: [][]int32{long}})
	switch {
	case errors.Is(err, accel.ErrInvalidArgument):
	case err != nil:
		t.Fatalf("DecodeStep of %d tokens with n_ctx %d: err = %v, want ErrInvalidArgument or the last n_ctx tokens' logits", len(long), tinyCtx, err)
	default:
		tail := s.decode(t, ctx, id, [][]int32{long[len(long)-tinyCtx:]})
		compare(t, "logits of a sequence longer than n_ctx vs its last n_ctx tokens", res.Logits, tail, s.opts.Tolerance)
	}
}

func (s *suite) saveLoad(t *testing.T) {
	ctx, cancel := s.ctx(t)
	defer cancel()
	id := s.id(t, "src")
	load(t, ctx, s.b, id, 5, nil)
	in, tg := batch(1)
	for i := 0; i < 3; i++ {
		if _, err := s.b.TrainStep(ctx, accel.TrainStepRequest{ModelID: id, Batch: 1, SeqLen: tinyCtx, Inputs: in, Targets: tg}); err != nil {
			t.Fatalf("TrainStep: %v", err)
		}
		if _, err := s.b.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: id, LearningRate: 1e-2}); err != nil {
			t.Fatalf("ApplyUpdate: %v", err)
		}
	}
	seqs := [][]int32{{1, 2, 3}, {7}}
	want := s.decode(t, ctx, id, seqs)
	for name, withOpt := range map[string]bool{"weights": false, "with-optimizer": true} {
		t.Run(name, func(t *testing.T) {
			saved, err := s.b.SaveWeights(ctx, accel.SaveRequest{ModelID: id, WithOptimizer: withOpt})
			if err != nil {
				t.Fatalf("SaveWeights: %v", err)
			}
			if len(saved.Safetensors) == 0 || len(saved.ConfigJSON) == 0 {
				t.Fatalf("SaveWeights: %d bytes of safetensors, %d of config", len(saved.Safetensors), len(saved.ConfigJSON))
			}
			if saved.Step != 3 {
				t.Errorf("SaveWeights: Step = %d, want 3", saved.Step)
			}
			dst := s.id(t, "dst")
			opt := accel.DefaultOptimizer()
			res, err := s.b.LoadModel(ctx, accel.LoadRequest{ModelID: dst, ConfigJSON: saved.ConfigJSON, Weights: saved.Safetensors, Optimizer: &opt})
			if err != nil {
				t.Fatalf("LoadModel from saved weights: %v", err)
			}
			t.Cleanup(func() { _ = s.b.Unload(context.Background(), dst) })
			if withOpt && res.Step != 3 {
				t.Errorf("LoadModel with optimizer state: Step = %d, want 3", res.Step)
			}
			compare(t, "logits after save and load", s.decode(t, ctx, dst, seqs), want, 0)
		})
	}
}

func (s *suite) unloadThenCall(t *testing.T) {
	ctx, cancel := s.ctx(t)
	defer cancel()
	id := s.id(t, "m")
	load(t, ctx, s.b, id, 6, nil)
	if err := s.b.Unload(ctx, id); err != nil {
		t.Fatalf("Unload: %v", err)
	}
	in, tg := batch(1)
	calls := map[string]func() error{
		"TrainStep": func() error {
			_, err := s.b.TrainStep(ctx, accel.TrainStepRequest{ModelID: id, Batch: 1, SeqLen: tinyCtx, Inputs: in, Targets: tg})
			return err
		},
		"ApplyUpdate": func() error {
			_, err := s.b.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: id, LearningRate: 1e-3})
			return err
		},
		"Evaluate": func() error {
			_, err := s.b.Evaluate(ctx, accel.EvalRequest{ModelID: id, Batch: 1, SeqLen: tinyCtx, Inputs: in, Targets: tg})
			return err
		},
		"DecodeStep": func() error {
			_, err := s.b.DecodeStep(ctx, accel.DecodeRequest{ModelID: id, Sequences: [][]int32{{1}}})
			return err
		},
		"SaveWeights": func() error {
			_, err := s.b.SaveWeights(ctx, accel.SaveRequest{ModelID: id})
			return err
		},
		"Unload": func() error { return s.b.Unload(ctx, id) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, accel.ErrUnknownModel) {
				t.Fatalf("%s after Unload: err = %v, want ErrUnknownModel", name, err)
			}
		})
	}
}

func (s *suite) invalidArgument(t *testing.T) {
	ctx, cancel := s.ctx(t)
	defer cancel()
	id := s.id(t, "m")
	load(t, ctx, s.b, id, 8, nil)
	in, tg := batch(1)
	opt := accel.DefaultOptimizer()
	long := make([]int32, tinyCtx+1)
	calls := map[string]func() error{
		"LoadModel/malformed-config": func() error {
			_, err := s.b.LoadModel(ctx, accel.LoadRequest{ModelID: id + "-bad", ConfigJSON: []byte(`{"vocab_size":`), Optimizer: &opt})
			return err
		},
		"LoadModel/zero-vocab": func() error {
			_, err := s.b.LoadModel(ctx, accel.LoadRequest{ModelID: id + "-bad", ConfigJSON: []byte(`{"vocab_size":0,"n_ctx":8,"n_embd":16,"n_layer":1,"n_head":2}`), Optimizer: &opt})
			return err
		},
		"LoadModel/garbage-weights": func() error {
			_, err := s.b.LoadModel(ctx, accel.LoadRequest{ModelID: id + "-bad", ConfigJSON: []byte(TinyConfigJSON), Weights: []byte("not safetensors"), Optimizer: &opt})
			return err
		},
		"LoadModel/empty-id": func() error {
			_, err := s.b.LoadModel(ctx, accel.LoadRequest{ConfigJSON: []byte(TinyConfigJSON), Optimizer: &opt})
			return err
		},
		"TrainStep/zero-batch": func() error {
			_, err := s.b.TrainStep(ctx, accel.TrainStepRequest{ModelID: id, Batch: 0, SeqLen: tinyCtx, Inputs: in, Targets: tg})
			return err
		},
		"TrainStep/short-targets": func() error {
			_, err := s.b.TrainStep(ctx, accel.TrainStepRequest{ModelID: id, Batch: 1, SeqLen: tinyCtx, Inputs: in, Targets: tg[1:]})
			return err
		},
		"TrainStep/token-outside-vocab": func() error {
			bad := append([]int32(nil), in...)
			bad[2] = tinyVocab
			_, err := s.b.TrainStep(ctx, accel.TrainStepRequest{ModelID: id, Batch: 1, SeqLen: tinyCtx, Inputs: bad, Targets: tg})
			return err
		},
		"TrainStep/longer-than-n_ctx": func() error {
			_, err := s.b.TrainStep(ctx, accel.TrainStepRequest{ModelID: id, Batch: 1, SeqLen: tinyCtx + 1, Inputs: long, Targets: long})
			return err
		},
		"Evaluate/negative-token": func() error {
			bad := append([]int32(nil), tg...)
			bad[0] = -1
			_, err := s.b.Evaluate(ctx, accel.EvalRequest{ModelID: id, Batch: 1, SeqLen: tinyCtx, Inputs: in, Targets: bad})
			return err
		},
		"Evaluate/shape-mismatch": func() error {
			_, err := s.b.Evaluate(ctx, accel.EvalRequest{ModelID: id, Batch: 2, SeqLen: tinyCtx, Inputs: in, Targets: tg})
			return err
		},
		"DecodeStep/empty-sequence": func() error {
			_, err := s.b.DecodeStep(ctx, accel.DecodeRequest{ModelID: id, Sequences: [][]int32{{1}, {}}})
			return err
		},
		"DecodeStep/token-outside-vocab": func() error {
			_, err := s.b.DecodeStep(ctx, accel.DecodeRequest{ModelID: id, Sequences: [][]int32{{1, tinyVocab + 5}}})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			if !errors.Is(err, accel.ErrInvalidArgument) {
				t.Fatalf("%s: err = %v, want ErrInvalidArgument", name, err)
			}
		})
	}
	// The model survives bad requests.
	if _, err := s.b.Evaluate(ctx, accel.EvalRequest{ModelID: id, Batch: 1, SeqLen: tinyCtx, Inputs: in, Targets: tg}); err != nil {
		t.Fatalf("Evaluate after bad requests: %v", err)
	}
}

func (s *suite) matchesReference(t *testing.T) {
	ctx, cancel := s.ctx(t)
	defer cancel()
	ref := s.opts.Reference
	tol := s.opts.Tolerance
	id := s.id(t, "m")
	load(t, ctx, s.b, id, 9, nil)
	load(t, ctx, ref, id, 9, nil)
	in, tg := batch(2)
	seqs := [][]int32{{1, 2, 3}, {0, 5, 9, 12, 30}}
	compare(t, "fresh logits vs reference", s.decode(t, ctx, id, seqs), decodeWith(t, ctx, ref, id, seqs), tol)

	ev := accel.EvalRequest{ModelID: id, Batch: 2, SeqLen: tinyCtx, Inputs: in, Targets: tg}
	got, err := s.b.Evaluate(ctx, ev)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	want, err := ref.Evaluate(ctx, ev)
	if err != nil {
		t.Fatalf("reference Evaluate: %v", err)
	}
	if !near(got.Loss, want.Loss, tol) {
		t.Errorf("Evaluate loss %v, reference %v (tolerance %g)", got.Loss, want.Loss, tol)
	}

	tr := accel.TrainStepRequest{ModelID: id, Batch: 2, SeqLen: tinyCtx, Inputs: in, Targets: tg, ReturnGradients: true}
	gt, err := s.b.TrainStep(ctx, tr)
	if err != nil {
		t.Fatalf("TrainStep: %v", err)
	}
	wt, err := ref.TrainStep(ctx, tr)
	if err != nil {
		t.Fatalf("reference TrainStep: %v", err)
	}
	if !near(gt.Loss, wt.Loss, tol) {
		t.Errorf("TrainStep loss %v, reference %v (tolerance %g)", gt.Loss, wt.Loss, tol)
	}
	compareFlat(t, "gradients vs reference", gt.Gradients, wt.Gradients, tol)

	up := accel.UpdateRequest{ModelID: id, LearningRate: 1e-2}
	gu, err := s.b.ApplyUpdate(ctx, up)
	if err != nil {
		t.Fatalf("ApplyUpdate: %v", err)
	}
	wu, err := ref.ApplyUpdate(ctx, up)
	if err != nil {
		t.Fatalf("reference ApplyUpdate: %v", err)
	}
	if !near(gu.GradNorm, wu.GradNorm, tol) || gu.Step != wu.Step {
		t.Errorf("ApplyUpdate grad norm %v step %d, reference %v step %d", gu.GradNorm, gu.Step, wu.GradNorm, wu.Step)
	}
	compare(t, "logits after an update vs reference", s.decode(t, ctx, id, seqs), decodeWith(t, ctx, ref, id, seqs), tol)
}

func decodeWith(t *testing.T, ctx context.Context, b accel.Backend, id string, seqs [][]int32) [][]float32 {
	t.Helper()
	res, err := b.DecodeStep(ctx, accel.DecodeRequest{ModelID: id, Sequences: seqs})
	if err != nil {
		t.Fatalf("reference DecodeStep: %v", err)
	}
	return res.Logits
}
