package distiller

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/internal/finetune/finetunetest"
	"github.com/llmesh/llmesh/services/internal/jobspec"
)

const (
	teacherConfig = `{"vocab_size":64,"n_ctx":16,"n_embd":64,"n_layer":2,"n_head":2}`
	studentConfig = `{"n_ctx":16,"n_embd":32,"n_layer":1,"n_head":2}`
	ref1          = "sha256-0000000000000000000000000000000000000000000000000000000000000001"
	ref2          = "sha256-0000000000000000000000000000000000000000000000000000000000000002"
)

func TestDistillSpecValidate(t *testing.T) {
	tests := map[string]struct {
		spec string
		want string
	}{
		"defaults":            {spec: `{"teacher":"t","student":{}}`},
		"student model":       {spec: `{"teacher":"t","student_model":"s","tokenizer":"tok@2"}`},
		"checkpoint":          {spec: `{"teacher_checkpoint":"` + ref1 + `","teacher_config":{},"student":{},"output":"s"}`},
		"no teacher":          {spec: `{"student":{}}`, want: "one of them"},
		"no student":          {spec: `{"teacher":"t"}`, want: "student"},
		"both students":       {spec: `{"teacher":"t","student":{},"student_model":"s"}`, want: "not both"},
		"checkpoint, no name": {spec: `{"teacher_checkpoint":"` + ref1 + `","teacher_config":{},"student":{}}`, want: "output"},
		"config w/o ckpt":     {spec: `{"teacher":"t","teacher_config":{},"student":{}}`, want: "go with teacher_checkpoint"},
		"output is teacher":   {spec: `{"teacher":"t","student":{},"output":"t"}`, want: "teacher's name"},
		"temperature":         {spec: `{"teacher":"t","student":{},"temperature":0.001}`, want: "temperature"},
		"alpha":               {spec: `{"teacher":"t","student":{},"alpha":1.5}`, want: "alpha"},
		"top_k":               {spec: `{"teacher":"t","student":{},"top_k":1000}`, want: "top_k"},
		"tokenizer":           {spec: `{"teacher":"t","student":{},"tokenizer":"a/b/c"}`, want: "tokenizer"},
		"unknown field":       {spec: `{"teacher":"t","student":{},"kl":1}`, want: "unknown field"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var sp DistillSpec
			err := jobspec.Decode("distill", []byte(tc.spec), &sp)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid spec refused: %v", err)
				}
				return
			}
			if !errors.Is(err, jobspec.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want an invalid spec saying %q", err, tc.want)
			}
		})
	}
	var sp DistillSpec
	if err := jobspec.Decode("distill", []byte(`{"teacher":"t","student":{}}`), &sp); err != nil {
		t.Fatal(err)
	}
	if sp.Output != "t-student" || sp.Steps != 200 || sp.Temperature != 1 || sp.Alpha != 0.5 || sp.TopK != 32 || sp.Warmup != 20 {
		t.Errorf("defaults: %+v", sp)
	}
}

func TestPruneSpecValidate(t *testing.T) {
	tests := map[string]struct {
		spec string
		want string
	}{
		"defaults":         {spec: `{"model":"m"}`},
		"heads":            {spec: `{"model":"m","method":"heads","sparsity":0.25,"steps":-1}`},
		"method":           {spec: `{"model":"m","method":"random"}`, want: `method "random"`},
		"sparsity 1":       {spec: `{"model":"m","sparsity":1}`, want: "sparsity"},
		"negative":         {spec: `{"model":"m","sparsity":-0.5}`, want: "sparsity"},
		"steps":            {spec: `{"model":"m","steps":-2}`, want: "steps"},
		"output is source": {spec: `{"model":"m","output":"m"}`, want: "source model"},
		"neither":          {spec: `{}`, want: "one of them"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var sp PruneSpec
			err := jobspec.Decode("prune", []byte(tc.spec), &sp)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid spec refused: %v", err)
				}
				return
			}
			if !errors.Is(err, jobspec.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want an invalid spec saying %q", err, tc.want)
			}
		})
	}
	var sp PruneSpec
	if err := jobspec.Decode("prune", []byte(`{"model":"m"}`), &sp); err != nil {
		t.Fatal(err)
	}
	if sp.Output != "m-pruned" || sp.Method != MethodMagnitude || sp.Sparsity != 0.5 || sp.Steps != 100 {
		t.Errorf("defaults: %+v", sp)
	}
}

// env is a bus, a distiller serving it (pruning with prune) and a
// trained teacher "teacher" registered with tokenizer ref1 and its shards.
type env struct {
	b                *bus.Bus
	trainRef, valRef string
}

func newEnv(t *testing.T, prune PruneFunc) *env {
	t.Helper()
	b := bustest.New(t)
	s, err := New(Config{Bus: b, Host: finetunetest.Host(t), Prune: prune})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("distiller Run: %v", err)
		}
	})
	ids := finetunetest.Pattern(3000, 11, 64)
	e := &env{b: b, trainRef: finetunetest.Shard(t, b, ids[:2400]), valRef: finetunetest.Shard(t, b, ids[2400:])}
	w := finetunetest.Train(t, teacherConfig, ids[:2400], 80, 1)
	finetunetest.Register(t, b, "teacher", teacherConfig, w, ref1, e.trainRef, e.valRef)
	for name, ref := range map[string]string{"same": ref1, "other": ref2} {
		if err := b.PutTokenizer(t.Context(), &busv1.TokenizerRecord{Name: name, Ref: ref, VocabSize: 64}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func TestDistillBadInput(t *testing.T) {
	e := newEnv(t, nil)
	finetunetest.Register(t, e.b, "other-student", `{"vocab_size":64,"n_ctx":16,"n_embd":32,"n_layer":1,"n_head":2}`,
		finetunetest.Train(t, `{"vocab_size":64,"n_ctx":16,"n_embd":32,"n_layer":1,"n_head":2}`, finetunetest.Pattern(200, 5, 64), 1, 2), ref2, e.trainRef, e.valRef)
	tests := map[string]struct {
		spec map[string]any
		want []string
	}{
		"another vocabulary": {map[string]any{"teacher": "teacher", "student": json.RawMessage(`{"vocab_size":32,"n_ctx":16,"n_embd":32,"n_layer":1,"n_head":2}`)},
			[]string{"vocabularies differ", "vocab_size is 32", `"teacher"`, "64"}},
		"another tokenizer": {map[string]any{"teacher": "teacher", "student": json.RawMessage(studentConfig), "tokenizer": "other"},
			[]string{"tokenizers differ", `tokenizer "other"`, ref2[:19], ref1[:19]}},
		"student model of another tokenizer": {map[string]any{"teacher": "teacher", "student_model": "other-student"},
			[]string{"tokenizers differ", `model "other-student"`}},
		"unknown teacher":   {map[string]any{"teacher": "nope", "student": json.RawMessage(studentConfig)}, []string{`"nope"`, "not found"}},
		"unknown tokenizer": {map[string]any{"teacher": "teacher", "student": json.RawMessage(studentConfig), "tokenizer": "nope"}, []string{"tokenizer", "nope"}},
		"bad student":       {map[string]any{"teacher": "teacher", "student": json.RawMessage(`{"n_ctx":16,"n_embd":30,"n_layer":1,"n_head":4}`)}, []string{"student config"}},
		"too big a message": {map[string]any{"teacher": "teacher", "student": json.RawMessage(studentConfig), "batch": 4096, "top_k": 256}, []string{"above the bus limit"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id := finetunetest.Submit(t, e.b, bus.KindDistill, tc.spec)
			finetunetest.Failed(t, e.b, id, tc.want...)
		})
	}
	if _, err := e.b.GetModel(t.Context(), "teacher-student"); !errors.Is(err, bus.ErrNotFound) {
		t.Errorf("a failed job registered a student: %v", err)
	}
}

func TestDistill(t *testing.T) {
	e := newEnv(t, nil)
	id := finetunetest.Submit(t, e.b, bus.KindDistill, map[string]any{
		"teacher": "teacher", "student": json.RawMessage(studentConfig), "tokenizer": "same", "steps": 40, "batch": 4,
		"top_k": 8, "temperature": 2, "alpha": 0.7, "lr": 1e-2, "eval_batches": 4, "baseline": true, "seed": 3})
	var res DistillResult
	finetunetest.Succeeded(t, e.b, id, &res)
	if res.Model != "teacher-student" || res.Steps != 40 || res.TopK != 8 || res.ParameterRatio >= 0.5 || res.TeacherBytes < 40*4*16*8*8 {
		t.Errorf("result %+v", res)
	}
	if !(res.StudentValLoss < res.StudentInitialValLoss-0.5) || res.ScratchValLoss == 0 || res.StudentValLoss == res.ScratchValLoss {
		t.Errorf("losses: teacher %.4f, student %.4f -> %.4f, scratch %.4f", res.TeacherValLoss, res.StudentInitialValLoss, res.StudentValLoss, res.ScratchValLoss)
	}
	if math.Abs(res.VsScratch-(1-res.StudentValLoss/res.ScratchValLoss)) > 1e-12 {
		t.Errorf("vs_scratch %v", res.VsScratch)
	}
	rec, err := e.b.GetModel(t.Context(), "teacher-student")
	if err != nil || rec.Checkpoint != res.Checkpoint || rec.Tokenizer != ref1 {
		t.Fatalf("registered student %v (%v), want checkpoint %s and the teacher's tokenizer", rec, err, res.Checkpoint)
	}
}

func TestPrune(t *testing.T) {
	e := newEnv(t, nil)
	id := finetunetest.Submit(t, e.b, bus.KindPrune, map[string]any{"model": "teacher", "sparsity": 0.5, "steps": 30, "batch": 4, "lr": 3e-3, "eval_batches": 4})
	var res PruneResult
	finetunetest.Succeeded(t, e.b, id, &res)
	// Every linear matrix is pruned to 50% and the fine-tune keeps it so.
	if res.Model != "teacher-pruned" || res.Method != MethodMagnitude || math.Abs(res.Sparsity-0.5) > 0.01 || res.LinearWeights != 2*(64*192+64*64+64*256+256*64) {
		t.Errorf("result %+v", res)
	}
	if res.SparseBytes >= res.DenseBytes*3/4 || res.NonzeroParams >= int64(res.Parameters) {
		t.Errorf("%d nonzero of %d parameters; %d bytes dense, %d sparse", res.NonzeroParams, res.Parameters, res.DenseBytes, res.SparseBytes)
	}
	if !(res.ValLossPruned > res.ValLossDense) || !(res.ValLossFinetuned < res.ValLossPruned) {
		t.Errorf("validation loss dense %.4f, pruned %.4f, fine-tuned %.4f: want pruning to hurt and the fine-tune to recover", res.ValLossDense, res.ValLossPruned, res.ValLossFinetuned)
	}
	rec, err := e.b.GetModel(t.Context(), "teacher-pruned")
	if err != nil || rec.Checkpoint != res.Checkpoint || rec.Tokenizer != ref1 {
		t.Fatalf("registered %v (%v)", rec, err)
	}

	// Structured: one of the two heads of each layer, no fine-tune.
	id = finetunetest.Submit(t, e.b, bus.KindPrune, map[string]any{"model": "teacher", "method": "heads", "sparsity": 0.5, "steps": -1, "output": "one-head"})
	var heads PruneResult
	finetunetest.Succeeded(t, e.b, id, &heads)
	if heads.Steps != 0 || heads.ValLossFinetuned != heads.ValLossPruned || heads.Sparsity <= 0.1 || heads.TrainRefs != nil {
		t.Errorf("heads: %+v", heads)
	}
	id = finetunetest.Submit(t, e.b, bus.KindPrune, map[string]any{"model": "teacher", "method": "heads", "sparsity": 0.2})
	finetunetest.Failed(t, e.b, id, "2 heads a layer removes 0")
}
