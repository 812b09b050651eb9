package inference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/engine"
	"github.com/llmesh/llmesh/accel/transformer"
	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/internal/bpe"
)

// corpus has multi-byte characters so that byte-level tokens end mid-rune.
var corpus = []string{
	"the cat sat on the mat. 猫坐在垫子上。",
	"the dog sat on the log. 狗坐在木头上。",
	"a cat and a dog, café crème. 猫和狗。",
}

// env is a bus with an inference service on a real plugin host (this test
// binary re-executed as the cpu backend), and a tokenizer in the object
// store.
type env struct {
	b      *bus.Bus
	s      *Service
	tok    *bpe.Tokenizer
	tokRef string
	config []byte
}

func newEnv(t *testing.T) *env { return newEnvWith(t, accel.HostConfig{}) }

// newEnvWith is newEnv on a host configured by hc (Command, RestartBackoff,
// StartTimeout and Logger are set for the test).
func newEnvWith(t *testing.T, hc accel.HostConfig) *env { return newEnvConfig(t, hc, nil) }

// newEnvConfig is newEnvWith with the service's config adjusted by set.
func newEnvConfig(t *testing.T, hc accel.HostConfig, set func(*Config)) *env {
	t.Helper()
	b := bustest.New(t)
	hc.Command, hc.RestartBackoff, hc.StartTimeout = reexec, time.Millisecond, 20*time.Second
	hc.Logger = slog.New(slog.DiscardHandler)
	h, err := accel.NewHost(hc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	cfg := Config{Bus: b, Host: h}
	if set != nil {
		set(&cfg)
	}
	s, err := New(cfg)
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

	tok, err := bpe.Train(t.Context(), corpus, bpe.TrainOptions{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	js, err := tok.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	info, err := b.PutBytes(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{b: b, s: s, tok: tok, tokRef: info.Ref,
		config: fmt.Appendf(nil, `{"vocab_size":%d,"n_ctx":32,"n_embd":16,"n_layer":1,"n_head":2}`, tok.VocabSize())}

	// The service is subscribed once it answers, here with an error.
	bustest.WaitFor(t, 10*time.Second, func() error {
		_, err := e.generate(t, &busv1.GenerateRequest{Model: "not-registered"})
		if errors.Is(err, bus.ErrNoResponders) {
			return err
		}
		return nil
	})
	return e
}

// checkpoint makes a model in-process, from seed and then trained for steps
// on the corpus, and stores its weights.
func (e *env) checkpoint(t *testing.T, seed uint64, steps int) string {
	t.Helper()
	ctx := t.Context()
	eng := engine.New("cpu", transformer.PortableKernels())
	opt := accel.DefaultOptimizer()
	if _, err := eng.LoadModel(ctx, accel.LoadRequest{ModelID: "m", ConfigJSON: e.config, Seed: seed, Optimizer: &opt}); err != nil {
		t.Fatal(err)
	}
	var ids []int32
	for range 20 {
		for _, d := range corpus {
			for _, id := range e.tok.Encode(d + " ") {
				ids = append(ids, int32(id))
			}
		}
	}
	const B, T = 4, 16
	for step := range steps {
		in, tgt := make([]int32, 0, B*T), make([]int32, 0, B*T)
		for b := range B {
			off := (step*B + b) * 7 % (len(ids) - T - 1)
			in, tgt = append(in, ids[off:off+T]...), append(tgt, ids[off+1:off+T+1]...)
		}
		if _, err := eng.TrainStep(ctx, accel.TrainStepRequest{ModelID: "m", Batch: B, SeqLen: T, Inputs: in, Targets: tgt}); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.ApplyUpdate(ctx, accel.UpdateRequest{ModelID: "m", LearningRate: 0.01}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := eng.SaveWeights(ctx, accel.SaveRequest{ModelID: "m"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.b.PutBytes(ctx, res.Safetensors)
	if err != nil {
		t.Fatal(err)
	}
	return info.Ref
}

func (e *env) register(t *testing.T, name, ckpt string) {
	t.Helper()
	if err := e.b.PutModel(t.Context(), &busv1.ModelRecord{Name: name, Checkpoint: ckpt, Tokenizer: e.tokRef, ConfigJson: e.config}); err != nil {
		t.Fatal(err)
	}
}

// status is the model's routing in the service.
func (e *env) status(t *testing.T, model string) ModelStatus {
	t.Helper()
	for _, st := range e.s.Status() {
		if st.Model == model {
			return st
		}
	}
	t.Fatalf("model %q is not in the service's status %v", model, e.s.Status())
	return ModelStatus{}
}

func (e *env) generate(t *testing.T, req *busv1.GenerateRequest) ([]*busv1.GenerateChunk, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var chunks []*busv1.GenerateChunk
	err := e.b.Generate(ctx, req, func(c *busv1.GenerateChunk) error {
		chunks = append(chunks, c)
		return nil
	})
	return chunks, err
}

// generation is what a request produced.
type generation struct {
	text  string
	last  *busv1.GenerateChunk
	count int
}

func (e *env) mustGenerate(t *testing.T, req *busv1.GenerateRequest) generation {
	t.Helper()
	chunks, err := e.generate(t, req)
	if err != nil {
		t.Fatalf("generate %v: %v", req, err)
	}
	var g generation
	for i, c := range chunks {
		g.text += c.Text
		if c.Done != (i == len(chunks)-1) {
			t.Errorf("chunk %d of %d: done = %v", i+1, len(chunks), c.Done)
		}
	}
	g.last, g.count = chunks[len(chunks)-1], len(chunks)
	return g
}

func TestGenerate(t *testing.T) {
	e := newEnv(t)
	e.register(t, "tiny", e.checkpoint(t, 1, 60))
	prompt := "the cat sat"

	greedy := &busv1.GenerateRequest{Model: "tiny", Prompt: prompt, MaxTokens: 24}
	a := e.mustGenerate(t, greedy)
	b := e.mustGenerate(t, greedy)
	if a.text != b.text || a.last.CompletionTokens != b.last.CompletionTokens {
		t.Errorf("greedy decoding differs: %q vs %q", a.text, b.text)
	}
	if !utf8.ValidString(a.text) {
		t.Errorf("chunks concatenate to invalid UTF-8: %q", a.text)
	}
	last := a.last
	if want := int32(len(e.tok.Encode(prompt))); last.PromptTokens != want {
		t.Errorf("prompt_tokens = %d, want %d", last.PromptTokens, want)
	}
	switch last.FinishReason {
	case "length":
		if last.CompletionTokens != 24 {
			t.Errorf("finish length after %d tokens, want 24", last.CompletionTokens)
		}
	case "stop":
		if last.CompletionTokens >= 24 {
			t.Errorf("finish stop after %d tokens, want fewer than 24", last.CompletionTokens)
		}
	default:
		t.Errorf("finish_reason = %q, want length or stop", last.FinishReason)
	}
	if a.text == "" {
		t.Errorf("greedy generation from a trained model is empty: %v", last)
	}

	sampled := &busv1.GenerateRequest{Model: "tiny", Prompt: prompt, MaxTokens: 24, Temperature: 1.5, TopK: 50, Seed: 7}
	s1, s2 := e.mustGenerate(t, sampled), e.mustGenerate(t, sampled)
	if s1.text != s2.text {
		t.Errorf("seeded sampling differs: %q vs %q", s1.text, s2.text)
	}
	if !utf8.ValidString(s1.text) {
		t.Errorf("sampled chunks concatenate to invalid UTF-8: %q", s1.text)
	}

	for _, max := range []int32{1, 3} {
		g := e.mustGenerate(t, &busv1.GenerateRequest{Model: "tiny", Prompt: prompt, MaxTokens: max, Temperature: 1, Seed: 3})
		if g.last.CompletionTokens > max || (g.last.FinishReason == "length" && g.last.CompletionTokens != max) {
			t.Errorf("max_tokens %d: %d tokens, finish %q", max, g.last.CompletionTokens, g.last.FinishReason)
		}
		if int32(g.count) > max+1 {
			t.Errorf("max_tokens %d: %d chunks", max, g.count)
		}
	}

	// An empty prompt starts from the end-of-text token.
	if g := e.mustGenerate(t, &busv1.GenerateRequest{Model: "tiny", MaxTokens: 4}); g.last.PromptTokens != 0 {
		t.Errorf("empty prompt: prompt_tokens = %d", g.last.PromptTokens)
	}
	// Generation stops at the context: a prompt of n_ctx tokens gets one.
	var full string
	for len(e.tok.Encode(full)) < 32 {
		full += "a cat "
	}
	for len(e.tok.Encode(full)) > 32 {
		full = full[:len(full)-1]
	}
	if n := len(e.tok.Encode(full)); n == 32 {
		g := e.mustGenerate(t, &busv1.GenerateRequest{Model: "tiny", Prompt: full, MaxTokens: 10})
		if g.last.CompletionTokens > 1 || (g.last.CompletionTokens == 1 && g.last.FinishReason != "length") {
			t.Errorf("prompt of n_ctx tokens: %d tokens, finish %q; want at most 1", g.last.CompletionTokens, g.last.FinishReason)
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	e := newEnv(t)
	ckpt := e.checkpoint(t, 1, 0)
	e.register(t, "tiny", ckpt)
	if err := e.b.PutModel(t.Context(), &busv1.ModelRecord{Name: "no-tokenizer", Checkpoint: ckpt, ConfigJson: e.config}); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		req  *busv1.GenerateRequest
		want string
		code string // invalid_argument when empty
	}{
		"unknown model":        {&busv1.GenerateRequest{Model: "nope", Prompt: "x"}, `model "nope": not found`, "not_found"},
		"negative max_tokens":  {&busv1.GenerateRequest{Model: "tiny", MaxTokens: -1}, "max_tokens -1 out of range [0, 2048]", ""},
		"max_tokens too large": {&busv1.GenerateRequest{Model: "tiny", MaxTokens: MaxTokens + 1}, "max_tokens 2049 out of range", ""},
		"negative temperature": {&busv1.GenerateRequest{Model: "tiny", Temperature: -0.5}, "temperature -0.5 out of range [0, 10]", ""},
		"top_p above 1":        {&busv1.GenerateRequest{Model: "tiny", TopP: 1.5}, "top_p 1.5 out of range [0, 1]", ""},
		"repetition penalty":   {&busv1.GenerateRequest{Model: "tiny", RepetitionPenalty: 50}, "repetition_penalty 50 out of range", ""},
		"exit threshold":       {&busv1.GenerateRequest{Model: "tiny", ExitThreshold: 2}, "exit_threshold 2 out of range [0, 1]", ""},
		"too many stops":       {&busv1.GenerateRequest{Model: "tiny", Stop: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}}, "9 stop sequences exceed the limit of 8", ""},
		"empty stop":           {&busv1.GenerateRequest{Model: "tiny", Stop: []string{""}}, "stop sequence 0 has 0 bytes", ""},
		"prompt over context":  {&busv1.GenerateRequest{Model: "tiny", Prompt: strings.Repeat("the dog sat on the log. ", 20)}, `tokens exceeds model "tiny"'s context of 32 tokens`, ""},
		"deadline passed":      {&busv1.GenerateRequest{Model: "tiny", Prompt: "x", DeadlineUnixMs: 1}, "deadline passed before it ran", "deadline_exceeded"},
		"temperature too high": {&busv1.GenerateRequest{Model: "tiny", Temperature: 11}, "temperature 11 out of range", ""},
		"negative top_k":       {&busv1.GenerateRequest{Model: "tiny", TopK: -1}, "top_k -1 must not be negative", ""},
		"prompt too long":      {&busv1.GenerateRequest{Model: "tiny", Prompt: strings.Repeat("a", MaxPromptBytes+1)}, "prompt of 65537 bytes exceeds 65536", ""},
		"no tokenizer":         {&busv1.GenerateRequest{Model: "no-tokenizer"}, `model "no-tokenizer" has no tokenizer`, "internal"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := e.generate(t, tc.req)
			var ge *bus.GenerateError
			if !errors.As(err, &ge) || !strings.Contains(ge.Message, tc.want) {
				t.Fatalf("generate: %v, want a GenerateError containing %q", err, tc.want)
			}
			code := tc.code
			if code == "" {
				code = "invalid_argument"
			}
			if ge.Code != code {
				t.Errorf("error code %q, want %q", ge.Code, code)
			}
		})
	}

	// Raw requests, as a client without bus.Generate would send them.
	raw := func(t *testing.T, subject string, data []byte) *busv1.GenerateChunk {
		t.Helper()
		m, err := e.b.Conn().Request(subject, data, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var c busv1.GenerateChunk
		if err := proto.Unmarshal(m.Data, &c); err != nil {
			t.Fatal(err)
		}
		return &c
	}
	t.Run("malformed protobuf", func(t *testing.T) {
		c := raw(t, bus.InferSubject("tiny"), []byte{0xff, 0xff, 0xff})
		if !c.Done || c.FinishReason != "error" || c.ErrorCode != "invalid_argument" || !strings.Contains(c.Error, "malformed generate request") {
			t.Errorf("reply = %v, want a done error chunk about a malformed request", c)
		}
	})
	t.Run("invalid UTF-8 prompt", func(t *testing.T) {
		// proto.Marshal refuses it, so bus.Generate never sends it ...
		if _, err := e.generate(t, &busv1.GenerateRequest{Model: "tiny", Prompt: "ab\xff"}); err == nil || !strings.Contains(err.Error(), "invalid UTF-8") {
			t.Errorf("generate with an invalid UTF-8 prompt: %v", err)
		}
		// ... and the service refuses it from a client that sends it anyway.
		var data []byte
		data = protowire.AppendTag(data, 1, protowire.BytesType)
		data = protowire.AppendString(data, "tiny")
		data = protowire.AppendTag(data, 2, protowire.BytesType)
		data = protowire.AppendString(data, "ab\xff")
		c := raw(t, bus.InferSubject("tiny"), data)
		if !c.Done || c.FinishReason != "error" || !strings.Contains(c.Error, "invalid UTF-8") {
			t.Errorf("reply = %v, want a done error chunk about invalid UTF-8", c)
		}
	})
	t.Run("request too large", func(t *testing.T) {
		c := raw(t, bus.InferSubject("tiny"), make([]byte, MaxRequestBytes+1))
		if !c.Done || !strings.Contains(c.Error, "exceeds 262144") {
			t.Errorf("reply = %v, want a done error chunk about the size", c)
		}
	})
	t.Run("subject disagrees with body", func(t *testing.T) {
		data, err := proto.Marshal(&busv1.GenerateRequest{Model: "tiny", Prompt: "x", MaxTokens: 2})
		if err != nil {
			t.Fatal(err)
		}
		c := raw(t, bus.InferSubject("other"), data)
		if !c.Done || !strings.Contains(c.Error, `request for model "tiny" arrived on infer.other.generate, want infer.tiny.generate`) {
			t.Errorf("reply = %v, want a done error chunk naming both subjects", c)
		}
	})
	t.Run("stream subject", func(t *testing.T) {
		inbox := e.b.Conn().NewRespInbox()
		sub, err := e.b.Conn().SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		data, err := proto.Marshal(&busv1.GenerateRequest{Model: "tiny", Prompt: "x", MaxTokens: 2, StreamSubject: inbox})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.b.Conn().Publish(bus.InferSubject("tiny"), data); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := sub.NextMsg(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			var c busv1.GenerateChunk
			if err := proto.Unmarshal(m.Data, &c); err != nil || c.Error != "" {
				t.Fatalf("chunk %v: %v", &c, err)
			}
			if c.Done {
				break
			}
		}
	})
}

func TestGenerateNewCheckpoint(t *testing.T) {
	e := newEnv(t)
	untrained, trained := e.checkpoint(t, 1, 0), e.checkpoint(t, 1, 60)
	req := func(model string) *busv1.GenerateRequest {
		return &busv1.GenerateRequest{Model: model, Prompt: "the dog", MaxTokens: 12}
	}
	// Reference outputs under their own names.
	e.register(t, "a", untrained)
	e.register(t, "b", trained)
	wantA, wantB := e.mustGenerate(t, req("a")).text, e.mustGenerate(t, req("b")).text
	if wantA == wantB {
		t.Fatalf("the two checkpoints generate the same text %q; the test cannot tell them apart", wantA)
	}

	e.register(t, "m", untrained)
	if got := e.mustGenerate(t, req("m")).text; got != wantA {
		t.Errorf("first checkpoint: %q, want %q", got, wantA)
	}
	e.register(t, "m", trained)
	if got := e.mustGenerate(t, req("m")).text; got != wantB {
		t.Errorf("after registering a newer checkpoint: %q, want %q", got, wantB)
	}
}

func TestGeneratePluginKilled(t *testing.T) {
	e := newEnv(t)
	e.register(t, "tiny", e.checkpoint(t, 1, 60))
	req := &busv1.GenerateRequest{Model: "tiny", Prompt: "the cat", MaxTokens: 12}
	want := e.mustGenerate(t, req).text

	pid := e.status(t, "tiny").Pid
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill plugin %d: %v", pid, err)
	}
	if got := e.mustGenerate(t, req).text; got != want {
		t.Errorf("after the plugin was killed: %q, want %q", got, want)
	}
	if st := e.status(t, "tiny"); st.Restarts < 1 || st.Pid == pid {
		t.Errorf("plugin restarts %d, pid %d (killed %d)", st.Restarts, st.Pid, pid)
	}
}

// Requests for one model may overlap a reload of that model (a newer
// checkpoint registered meanwhile); run with -race.
func TestGenerateConcurrentReload(t *testing.T) {
	e := newEnv(t)
	ckpts := []string{e.checkpoint(t, 1, 0), e.checkpoint(t, 2, 0)}
	e.register(t, "tiny", ckpts[0])
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.generate(t, &busv1.GenerateRequest{Model: "tiny", Prompt: "the", MaxTokens: 64, Temperature: 1, Seed: uint64(i)})
			errs <- err
		}()
	}
	// Flip the registered checkpoint while the requests run, so that later
	// requests reload the model under earlier ones.
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	for i := 1; ; i++ {
		select {
		case <-finished:
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			return
		default:
		}
		e.register(t, "tiny", ckpts[i%2])
		if _, err := e.generate(t, &busv1.GenerateRequest{Model: "tiny", Prompt: "the", MaxTokens: 1}); err != nil {
			t.Error(err)
		}
	}
}

func TestValidPrefix(t *testing.T) {
	tests := map[string]struct {
		in   string
		want int
	}{
		"empty":                          {"", 0},
		"ascii":                          {"abc", 3},
		"complete 2-byte":                {"é", 2},
		"complete 3-byte":                {"a€", 4},
		"complete 4-byte":                {"😀", 4},
		"incomplete 2-byte":              {"a\xc3", 1},
		"incomplete 3-byte, 1 of 3":      {"ab\xe2", 2},
		"incomplete 3-byte, 2 of 3":      {"ab\xe2\x82", 2},
		"incomplete 4-byte, 1 of 4":      {"x\xf0", 1},
		"incomplete 4-byte, 2 of 4":      {"x\xf0\x9f", 1},
		"incomplete 4-byte, 3 of 4":      {"x\xf0\x9f\x98", 1},
		"complete then incomplete":       {"é\xe2\x82", 2},
		"only an incomplete sequence":    {"\xf0\x9f\x98", 0},
		"stray continuation byte":        {"a\x80", 2},
		"stray continuation bytes":       {"\x80\x80\x80\x80", 4},
		"invalid byte followed by ascii": {"\xffa", 2},
		"broken sequence then ascii":     {"\xe2\x82a", 3},
		"too many continuation bytes":    {"é\x80", 3},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := validPrefix(tc.in); got != tc.want {
				t.Errorf("validPrefix(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

// A byte that can never start a sequence may be held back while it is
// last, but not once more bytes follow: held-back bytes always come out.
func TestValidPrefixReleases(t *testing.T) {
	for _, s := range []string{"\xff", "\xc0", "\xf8\x80\x80", "\xe2\x82"} {
		for _, next := range []string{"a", "\x80\x80\x80\x80"} {
			if got := validPrefix(s + next); got < len(s) {
				t.Errorf("validPrefix(%q) = %d: still holds back %q", s+next, got, s)
			}
		}
	}
}
