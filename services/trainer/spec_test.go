package trainer

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/llmesh/llmesh/services/internal/jobspec"
)

const tinyConfig = `{"vocab_size":64,"n_ctx":16,"n_embd":16,"n_layer":1,"n_head":2}`

// refs are two syntactically valid object refs; Validate does not look them up.
const (
	trainRef = "sha256-1111111111111111111111111111111111111111111111111111111111111111"
	valRef   = "sha256-2222222222222222222222222222222222222222222222222222222222222222"
)

func TestSpecValidate(t *testing.T) {
	base := `"model":"m","train_ref":"` + trainRef + `","val_ref":"` + valRef + `","config":` + tinyConfig
	tests := map[string]struct {
		spec    string
		want    *Spec // checked when not nil
		wantErr string
	}{
		"defaults": {
			spec: `{` + base + `}`,
			want: &Spec{Model: "m", TrainRef: trainRef, TrainRefs: []string{trainRef}, ValRef: valRef, Config: []byte(tinyConfig), Backend: "cpu",
				Steps: 200, Batch: 8, SeqLen: 16, LR: 3e-3, MinLR: 3e-4, Warmup: 10, WeightDecay: 0.1, GradClip: 1,
				EvalEvery: 25, EvalBatches: 4, CheckpointEvery: 50, LogEvery: 10, MaxRestarts: 3,
				JoinTimeout: 60, CollectiveTimeout: 10, KeepCheckpoints: 3, GradAccum: 1, Schedule: "cosine"},
		},
		"explicit values kept": {
			spec: `{` + base + `,"tokenizer":"tok","backend":"cuda","steps":30,"batch":4,"seq_len":8,"lr":0.01,"min_lr":0.001,"warmup":3,"eval_every":5,"checkpoint_every":6,"log_every":2,"seed":9,"max_restarts":1}`,
			want: &Spec{Model: "m", Tokenizer: "tok", TrainRef: trainRef, TrainRefs: []string{trainRef}, ValRef: valRef, Config: []byte(tinyConfig), Backend: "cuda",
				Steps: 30, Batch: 4, SeqLen: 8, LR: 0.01, MinLR: 0.001, Warmup: 3, WeightDecay: 0.1, GradClip: 1,
				EvalEvery: 5, EvalBatches: 4, CheckpointEvery: 6, LogEvery: 2, Seed: 9, MaxRestarts: 1,
				JoinTimeout: 60, CollectiveTimeout: 10, KeepCheckpoints: 3, GradAccum: 1, Schedule: "cosine"},
		},
		"shards defaults": {
			spec: `{` + base + `,"shards":3,"schedule":"sgdr","steps":100,"warmup":20}`,
			want: &Spec{Model: "m", TrainRef: trainRef, TrainRefs: []string{trainRef}, ValRef: valRef, Config: []byte(tinyConfig), Backend: "cpu",
				Steps: 100, Batch: 8, SeqLen: 16, LR: 3e-3, MinLR: 3e-4, Warmup: 20, WeightDecay: 0.1, GradClip: 1,
				EvalEvery: 12, EvalBatches: 4, CheckpointEvery: 25, LogEvery: 10, MaxRestarts: 3,
				Shards: 3, MinShards: 1, MaxShards: 3, JoinTimeout: 60, CollectiveTimeout: 10, KeepCheckpoints: 3, GradAccum: 1,
				Schedule: "sgdr", SGDRPeriod: 20, SGDRMult: 1},
		},
		"min_shards above shards":   {spec: `{` + base + `,"shards":2,"min_shards":3}`, wantErr: "want 1 <= min_shards <= shards"},
		"max_shards below shards":   {spec: `{` + base + `,"shards":2,"max_shards":1}`, wantErr: "want 1 <= min_shards <= shards"},
		"min_shards without shards": {spec: `{` + base + `,"min_shards":1}`, wantErr: "need shards"},
		"unknown schedule":          {spec: `{` + base + `,"schedule":"linear"}`, wantErr: `schedule "linear"`},
		"sgdr_period with cosine":   {spec: `{` + base + `,"sgdr_period":5}`, wantErr: "need schedule"},
		"sgdr_mult below 1":         {spec: `{` + base + `,"schedule":"sgdr","sgdr_mult":0.5}`, wantErr: "sgdr_mult 0.5"},
		"negative patience":         {spec: `{` + base + `,"patience":-1}`, wantErr: "patience -1"},
		"grad_accum too large":      {spec: `{` + base + `,"grad_accum":2000}`, wantErr: "grad_accum 2000"},
		"seq_len above n_ctx":       {spec: `{` + base + `,"seq_len":32}`, wantErr: "seq_len 32 exceeds the model context n_ctx 16"},
		"lr above 1":                {spec: `{` + base + `,"lr":2}`, wantErr: "lr 2"},
		"negative lr":               {spec: `{` + base + `,"lr":-0.1}`, wantErr: "out of range"},
		"min_lr above lr":           {spec: `{` + base + `,"lr":0.01,"min_lr":0.1}`, wantErr: "min_lr 0.1"},
		"negative weight decay":     {spec: `{` + base + `,"weight_decay":-1}`, wantErr: "weight_decay -1"},
		"missing train_ref":         {spec: `{"model":"m","val_ref":"` + valRef + `","config":` + tinyConfig + `}`, wantErr: "train_ref (or train_refs) and val_ref"},
		"missing val_ref":           {spec: `{"model":"m","train_ref":"` + trainRef + `","config":` + tinyConfig + `}`, wantErr: "train_ref (or train_refs) and val_ref"},
		"missing model":             {spec: `{"train_ref":"` + trainRef + `","val_ref":"` + valRef + `","config":` + tinyConfig + `}`, wantErr: "model: name is empty"},
		"model with a path":         {spec: `{` + strings.Replace(base, `"model":"m"`, `"model":"../m"`, 1) + `}`, wantErr: `"../m"`},
		"bad tokenizer name":        {spec: `{` + base + `,"tokenizer":"a/b"}`, wantErr: "tokenizer:"},
		"missing config":            {spec: `{"model":"m","train_ref":"` + trainRef + `","val_ref":"` + valRef + `"}`, wantErr: "config (the transformer config) is required"},
		"bad config":                {spec: `{` + strings.Replace(base, `"n_head":2`, `"n_head":3`, 1) + `}`, wantErr: "config:"},
		"unknown config field":      {spec: `{` + strings.Replace(base, `"n_head":2`, `"n_heads":2`, 1) + `}`, wantErr: "n_heads"},
		"unknown field":             {spec: `{` + base + `,"stpes":30}`, wantErr: `unknown field "stpes"`},
		"backend with a slash":      {spec: `{` + base + `,"backend":"../cpu"}`, wantErr: `backend "../cpu" is not a plain name`},
		"backend with a dot":        {spec: `{` + base + `,"backend":"cpu.so"}`, wantErr: "not a plain name"},
		"negative steps":            {spec: `{` + base + `,"steps":-1}`, wantErr: "steps -1 must be positive"},
		"batch above limit":         {spec: `{` + base + `,"batch":5000}`, wantErr: "above their limits"},
		"warmup above steps":        {spec: `{` + base + `,"steps":10,"warmup":11}`, wantErr: "warmup 11 out of range [0, steps 10]"},
		"negative max_restarts":     {spec: `{` + base + `,"max_restarts":-2}`, wantErr: "max_restarts -2 must be positive"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got Spec
			err := jobspec.Decode("train", []byte(tc.spec), &got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Decode = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tc.want, &got, cmpopts.IgnoreUnexported(Spec{}), cmpopts.EquateApprox(1e-12, 0)); diff != "" {
				t.Errorf("spec after Validate (-want +got):\n%s", diff)
			}
			if got.cfg.NCtx != 16 || got.cfg.VocabSize != 64 {
				t.Errorf("parsed config = %+v, want n_ctx 16, vocab 64", got.cfg)
			}
		})
	}
}

func TestLearningRateSchedule(t *testing.T) {
	r := &run{spec: Spec{LR: 1, MinLR: 0.1, Warmup: 10, Steps: 110}}
	near := func(step int, want float64) {
		t.Helper()
		if got := float64(r.lr(step)); math.Abs(got-want) > 1e-6 {
			t.Errorf("lr(%d) = %v, want %v", step, got, want)
		}
	}
	// Linear warmup to the peak.
	near(0, 0.1)
	near(4, 0.5)
	near(9, 1)
	// Cosine from the peak down to min_lr.
	near(10, 1)
	near(60, 0.55) // halfway: (lr+min_lr)/2
	near(110, 0.1)
	for step := 1; step < 110; step++ {
		prev, cur := r.lr(step-1), r.lr(step)
		if step < 10 && !(cur > prev) {
			t.Errorf("warmup: lr(%d) = %v not above lr(%d) = %v", step, cur, step-1, prev)
		}
		if step > 10 && !(cur <= prev) {
			t.Errorf("decay: lr(%d) = %v above lr(%d) = %v", step, cur, step-1, prev)
		}
		if cur < 0.1-1e-7 || cur > 1+1e-7 {
			t.Errorf("lr(%d) = %v outside [min_lr, lr]", step, cur)
		}
	}

	// Without warmup the first step runs at the peak.
	r = &run{spec: Spec{LR: 0.5, MinLR: 0.05, Warmup: 0, Steps: 20}}
	near(0, 0.5)
	near(10, 0.275)
}

func TestSGDRSchedule(t *testing.T) {
	sp := &Spec{LR: 1, MinLR: 0, Warmup: 0, Steps: 100, Schedule: "sgdr", SGDRPeriod: 10, SGDRMult: 2}
	near := func(step int, want float64) {
		t.Helper()
		if got := float64(learningRate(sp, step)); math.Abs(got-want) > 1e-6 {
			t.Errorf("lr(%d) = %v, want %v", step, got, want)
		}
	}
	near(0, 1)                   // first period starts at the peak
	near(5, 0.5)                 // halfway through a 10-step period
	near(10, 1)                  // restart
	near(20, 0.5)                // halfway through the 20-step second period
	near(30, 1)                  // second restart
	near(40, 0.8535533905932737) // a quarter into the 40-step third period
}
