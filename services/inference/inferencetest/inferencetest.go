// Package inferencetest runs a real inference service for other packages'
// tests: an accelerator host that re-executes the test binary as the cpu
// plugin (the test's TestMain calls ServeIfReexec first), and tiny models
// with a trained tokenizer in the registry. Packages outside services/
// (the gateway) use it to test against the real service.
package inferencetest

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
	"github.com/llmesh/llmesh/accel/engine"
	"github.com/llmesh/llmesh/accel/transformer"
	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/inference"
	"github.com/llmesh/llmesh/services/internal/bpe"
)

// Ctx is the context length of the models Start registers.
const Ctx = 32

// ServeIfReexec serves the cpu backend when the test binary was started as
// a plugin; call it first in TestMain.
func ServeIfReexec() {
	acceltest.ServeIfReexec(map[string]func() accel.Backend{
		"cpu": func() accel.Backend { return engine.New("cpu", transformer.PortableKernels()) },
	})
}

var corpus = []string{
	"the cat sat on the mat. 猫坐在垫子上。",
	"the dog sat on the log. 狗坐在木头上。",
	"a cat and a dog, café crème. 猫和狗。",
}

// Start runs an inference service on b until the test ends (set adjusts
// its config) and registers each of models as a tiny model with seeded
// random weights and a context of Ctx tokens.
func Start(t testing.TB, b *bus.Bus, set func(*inference.Config), models ...string) *inference.Service {
	t.Helper()
	h, err := accel.NewHost(accel.HostConfig{Command: acceltest.Reexec, RestartBackoff: time.Millisecond,
		StartTimeout: 20 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	cfg := inference.Config{Bus: b, Host: h}
	if set != nil {
		set(&cfg)
	}
	s, err := inference.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("inference Run: %v", err)
		}
	})

	tctx := context.Background()
	tok, err := bpe.Train(tctx, corpus, bpe.TrainOptions{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	js, err := tok.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	ti, err := b.PutBytes(tctx, js)
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Appendf(nil, `{"vocab_size":%d,"n_ctx":%d,"n_embd":16,"n_layer":1,"n_head":2}`, tok.VocabSize(), Ctx)
	eng := engine.New("cpu", transformer.PortableKernels())
	for i, name := range models {
		if _, err := eng.LoadModel(tctx, accel.LoadRequest{ModelID: name, ConfigJSON: config, Seed: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
		w, err := eng.SaveWeights(tctx, accel.SaveRequest{ModelID: name})
		if err != nil {
			t.Fatal(err)
		}
		wi, err := b.PutBytes(tctx, w.Safetensors)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.PutModel(tctx, &busv1.ModelRecord{Name: name, Checkpoint: wi.Ref, Tokenizer: ti.Ref, ConfigJson: config}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}
