package accel_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
)

// gradRecorder returns gradients of a chosen length and keeps what
// ApplyUpdate and TrainStep were given.
type gradRecorder struct {
	accel.Backend
	n      int
	train  accel.TrainStepRequest
	update []float32
	eval   accel.EvalRequest
}

func (r *gradRecorder) TrainStep(_ context.Context, req accel.TrainStepRequest) (accel.TrainStepResult, error) {
	r.train = req
	g := make([]float32, r.n)
	for i := range g {
		g[i] = float32(i%977) * 0.5
	}
	return accel.TrainStepResult{Loss: 1.5, Gradients: g}, nil
}

func (r *gradRecorder) ApplyUpdate(_ context.Context, req accel.UpdateRequest) (accel.UpdateResult, error) {
	r.update = slices.Clone(req.Gradients)
	return accel.UpdateResult{GradNorm: 2, Step: 1}, nil
}

func (r *gradRecorder) Evaluate(_ context.Context, req accel.EvalRequest) (accel.EvalResult, error) {
	r.eval = req
	return accel.EvalResult{Loss: 1, Tokens: 2, TopKIndices: []int32{3, 1}, TopKLogits: []float32{0.5, 0.25}, ActivationMax: map[string]float32{"h.0.attn.c_attn.weight": 4}}, nil
}

// ownBulkFiles are the bulk files this process has open now (the host
// keeps its regions open): other processes' files — tests of other
// packages run at the same time — are not this test's business.
func ownBulkFiles(t *testing.T) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	var out []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(filepath.Base(target), "llmesh-bulk-") {
			out = append(out, target)
		}
	}
	return out
}

// Gradients of every size cross the boundary intact, small ones inline and
// large ones through a shared-memory file, in both directions.
func TestShimGradientsInlineAndBulk(t *testing.T) {
	used := map[string]bool{}
	t.Cleanup(func() {
		// Cleanups run last to first: the shims are closed by now.
		for path := range used {
			if _, err := os.Stat(path); err == nil {
				t.Errorf("shared-memory file left behind: %s", path)
			}
		}
	})
	for _, n := range []int{0, 7, 1 << 10, 1 << 16, 1<<18 + 3, 1 << 20} {
		rec := &gradRecorder{Backend: acceltest.NewBigram(), n: n}
		b, _ := shim(t, rec)
		ctx := t.Context()
		bulk := false
		for range 3 { // the first call learns the size; later ones use the file
			res, err := b.TrainStep(ctx, accel.TrainStepRequest{ModelID: "m", Batch: 1, SeqLen: 1, Inputs: []int32{0}, Targets: []int32{0}, ReturnGradients: true})
			if err != nil {
				t.Fatalf("n=%d: TrainStep: %v", n, err)
			}
			for _, path := range ownBulkFiles(t) {
				used[path], bulk = true, true
			}
			if len(res.Gradients) != n || res.Loss != 1.5 {
				t.Fatalf("n=%d: got %d gradients, loss %v", n, len(res.Gradients), res.Loss)
			}
			for i, v := range res.Gradients {
				if v != float32(i%977)*0.5 {
					t.Fatalf("n=%d: gradient %d = %v, want %v", n, i, v, float32(i%977)*0.5)
				}
			}
			want := make([]float32, n)
			for i := range want {
				want[i] = float32(i) - 3
			}
			if _, err := b.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "m", LearningRate: 0.1, Gradients: want}); err != nil {
				t.Fatalf("n=%d: ApplyUpdate: %v", n, err)
			}
			if !slices.Equal(rec.update, want) && (n > 0 || rec.update != nil) {
				t.Fatalf("n=%d: ApplyUpdate got %d gradients, want %d equal ones", n, len(rec.update), n)
			}
			// A TrainStep that does not want gradients asks for no file.
			if _, err := b.TrainStep(ctx, accel.TrainStepRequest{ModelID: "m", Batch: 1, SeqLen: 1, Inputs: []int32{0}, Targets: []int32{0}}); err != nil {
				t.Fatal(err)
			}
		}
		if n >= 1<<18 && !bulk {
			t.Errorf("n=%d: no shared-memory file was used for %d bytes of gradients", n, 4*n)
		}
	}
}

// The new request fields of the compression protocol cross the boundary.
func TestShimCarriesCompressionFields(t *testing.T) {
	rec := &gradRecorder{Backend: acceltest.NewBigram(), n: 3}
	b, _ := shim(t, rec)
	ctx := t.Context()
	teacher := &accel.SoftTargets{K: 2, Indices: []int32{1, 0}, Logits: []float32{2, 1}, Temperature: 2, Alpha: 0.5}
	if _, err := b.TrainStep(ctx, accel.TrainStepRequest{ModelID: "m", Batch: 1, SeqLen: 1, Inputs: []int32{0}, Targets: []int32{1}, Teacher: teacher}); err != nil {
		t.Fatal(err)
	}
	if got := rec.train.Teacher; got == nil || got.K != 2 || !slices.Equal(got.Indices, teacher.Indices) || !slices.Equal(got.Logits, teacher.Logits) || got.Temperature != 2 || got.Alpha != 0.5 {
		t.Errorf("plugin got teacher %+v, want %+v", got, teacher)
	}
	res, err := b.Evaluate(ctx, accel.EvalRequest{ModelID: "m", Batch: 1, SeqLen: 1, Inputs: []int32{0}, Targets: []int32{1}, TopK: 2, ActivationStats: true})
	if err != nil {
		t.Fatal(err)
	}
	if rec.eval.TopK != 2 || !rec.eval.ActivationStats {
		t.Errorf("plugin got %+v", rec.eval)
	}
	if !slices.Equal(res.TopKIndices, []int32{3, 1}) || !slices.Equal(res.TopKLogits, []float32{0.5, 0.25}) || res.ActivationMax["h.0.attn.c_attn.weight"] != 4 {
		t.Errorf("Evaluate = %+v", res)
	}
}

// BenchmarkPluginGradients: through a plugin process, one TrainStep
// returning the gradients of a 2,080² bigram table (4.3M, the reference
// transformer's count) and one ApplyUpdate sending them back: inline
// (protobuf over the go-plugin connection) against a shared-memory file.
func BenchmarkPluginGradients(b *testing.B) {
	for _, mode := range []string{"inline", "bulk"} {
		b.Run(mode, func(b *testing.B) {
			h, _ := newHost(b, nil)
			p := launch(b, h, "bigram")
			ctx := context.Background()
			if mode == "inline" {
				accel.DisableBulkForTest(p)
			}
			loadTiny(b, ctx, p, "big", `{"vocab_size":2080,"n_ctx":8}`)
			req := accel.TrainStepRequest{ModelID: "big", Batch: 1, SeqLen: 4, Inputs: []int32{1, 2, 3, 4}, Targets: []int32{2, 3, 4, 5}, ReturnGradients: true}
			b.SetBytes(8 * 2080 * 2080)
			for b.Loop() {
				res, err := p.TrainStep(ctx, req)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "big", LearningRate: 0.01, Gradients: res.Gradients}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
