// Package finetunetest helps test the compression services: a plugin host
// that re-executes the test binary as the cpu backend, token shards, small
// models trained in-process and registered on the bus, and waiting for
// jobs.
package finetunetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
	"github.com/llmesh/llmesh/accel/transformer"
	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	"github.com/llmesh/llmesh/bus/tensor"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// Host is a plugin host whose plugins are this test binary (its TestMain
// must call acceltest.ServeIfReexec); closed with the test.
func Host(t *testing.T) *accel.Host {
	t.Helper()
	h, err := accel.NewHost(accel.HostConfig{Command: acceltest.Reexec, RestartBackoff: time.Millisecond,
		StartTimeout: 20 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// Shard stores ids as a token shard and returns its ref.
func Shard(t *testing.T, b *bus.Bus, ids []uint16) string {
	t.Helper()
	payload, err := tensor.Encode([]tensor.Tensor{tensor.FromUint16("tokens", []int{len(ids)}, ids)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := b.PutBytes(t.Context(), payload)
	if err != nil {
		t.Fatal(err)
	}
	return info.Ref
}

// Pattern is n tokens of a learnable stream over vocab: a cycle of period
// with every 5th token a function of the one before (some structure to
// learn beyond the cycle).
func Pattern(n, period, vocab int) []uint16 {
	ids := make([]uint16, n)
	for i := range ids {
		ids[i] = uint16(i % period)
		if i%5 == 4 {
			ids[i] = uint16((int(ids[i-1])*3 + 1) % vocab)
		}
	}
	return ids
}

// Train trains a model of config cfg in-process for steps AdamW steps on
// ids (batch 4, the full context) and returns its checkpoint (no
// optimizer state).
func Train(t *testing.T, cfgJSON string, ids []uint16, steps int, seed uint64) []byte {
	t.Helper()
	cfg, err := transformer.ParseConfig([]byte(cfgJSON))
	if err != nil {
		t.Fatal(err)
	}
	m := transformer.New(cfg, transformer.PortableKernels(), seed)
	opt := transformer.NewAdamW(transformer.AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.01, GradClip: 1}, m)
	B, T := 4, cfg.NCtx
	in, tgt := make([]int32, B*T), make([]int32, B*T)
	for s := range steps {
		for b := range B {
			off := (s*7 + b*13) % (len(ids) - T - 1)
			for i := range T {
				in[b*T+i], tgt[b*T+i] = int32(ids[off+i]), int32(ids[off+i+1])
			}
		}
		m.ZeroGrads()
		if _, err := m.ForwardBackward(in, tgt, B, T); err != nil {
			t.Fatal(err)
		}
		opt.Step(m.ParamData(), m.Grads(), 1e-2)
	}
	var buf bytes.Buffer
	if err := transformer.WriteCheckpoint(&buf, m, int64(steps), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Register stores weights and registers them as model name, made by a
// job whose spec names the token shards (so jobs may default to them).
func Register(t *testing.T, b *bus.Bus, name, cfgJSON string, weights []byte, tokenizerRef string, trainRef, valRef string) {
	t.Helper()
	info, err := b.PutBytes(t.Context(), weights)
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(map[string]any{"train_ref": trainRef, "val_ref": valRef})
	rec, err := b.SubmitJob(t.Context(), bus.KindEval, spec, bus.SubmitOptions{ID: "made-" + strings.ReplaceAll(name, ".", "-")})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.PutModel(t.Context(), &busv1.ModelRecord{Name: name, Checkpoint: info.Ref, Tokenizer: tokenizerRef,
		ConfigJson: []byte(cfgJSON), JobId: rec.Id}); err != nil {
		t.Fatal(err)
	}
}

// Submit submits a job of kind with spec and returns its id.
func Submit(t *testing.T, b *bus.Bus, kind string, spec map[string]any) string {
	t.Helper()
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := b.SubmitJob(t.Context(), kind, js, bus.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rec.Id
}

// Wait polls the job's record until it has finished.
func Wait(t *testing.T, b *bus.Bus, id string, timeout time.Duration) *busv1.JobRecord {
	t.Helper()
	var rec *busv1.JobRecord
	bustest.WaitFor(t, timeout, func() error {
		var err error
		if rec, err = b.GetJob(t.Context(), id); err != nil {
			return err
		}
		if !bus.Finished(rec.State) {
			return fmt.Errorf("job %s is %s", id, rec.State)
		}
		return nil
	})
	return rec
}

// Succeeded waits for the job and decodes its result into v; it fails t
// unless the job succeeded.
func Succeeded(t *testing.T, b *bus.Bus, id string, v any) {
	t.Helper()
	rec := Wait(t, b, id, 2*time.Minute)
	if rec.State != busv1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %s: %s: %s", id, rec.State, rec.Error)
	}
	if err := json.Unmarshal(rec.ResultJson, v); err != nil {
		t.Fatalf("result %s: %v", rec.ResultJson, err)
	}
}

// Failed waits for the job and fails t unless it failed with an error
// containing every one of want.
func Failed(t *testing.T, b *bus.Bus, id string, want ...string) string {
	t.Helper()
	rec := Wait(t, b, id, time.Minute)
	if rec.State != busv1.JobState_JOB_STATE_FAILED {
		t.Fatalf("job %s: %s (error %q), want failed", id, rec.State, rec.Error)
	}
	for _, w := range want {
		if !strings.Contains(rec.Error, w) {
			t.Errorf("job %s failed with %q, want it to say %q", id, rec.Error, w)
		}
	}
	return rec.Error
}
