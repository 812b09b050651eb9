package filter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/tensor"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/internal/bpe"
)

// The learned stage is a small transformer that the mesh trains itself:
// Learn turns a labelled set into token shards of
//
//	<|endoftext|> text \t Y|N <|endoftext|> text \t Y|N ...
//
// (Y: block, N: allow), trains a BPE tokenizer on the texts, and submits
// an ordinary train job, which the trainer service runs through an
// accelerator plugin and registers as a model. A Classifier then runs that
// model in a plugin of its own: it feeds "text \t" and reads the logits of
// Y and N at the next position; the score is their softmax, P(Y).

// Label tokens of the learned stage's sequences.
const (
	learnSep   = "\t"
	learnBlock = "Y"
	learnAllow = "N"
)

// Example is one labelled text for the learned stage.
type Example struct {
	Text  string `json:"text"`
	Block bool   `json:"block"`
}

// LearnSpec says what to train.
type LearnSpec struct {
	// Model is the name the classifier is registered under.
	Model string
	// Train and Val are the labelled sets; Val may be empty (Train is then
	// used for validation too).
	Train, Val []Example
	// Config is the transformer config without vocab_size (filled in from
	// the tokenizer); nil means a small default.
	Config map[string]any
	// VocabSize of the BPE tokenizer; 0 means 512.
	VocabSize int
	// Train job knobs; zero means the defaults below.
	Steps, Batch, SeqLen int
	LR                   float64
	Seed                 uint64
	Backend              string
}

// DefaultLearnConfig is the default classifier: a tiny transformer.
func DefaultLearnConfig() map[string]any {
	return map[string]any{"n_ctx": 64, "n_embd": 48, "n_layer": 2, "n_head": 4}
}

// Learn builds the tokenizer and token shards of spec, registers the
// tokenizer as "<model>-tok" and submits the train job; it returns the job
// id (wait for it with WaitJob).
func Learn(ctx context.Context, b *bus.Bus, spec LearnSpec) (string, error) {
	if err := bus.ValidName(spec.Model); err != nil {
		return "", fmt.Errorf("filter: learn: model: %w", err)
	}
	if len(spec.Train) < 2 {
		return "", fmt.Errorf("filter: learn: %d training examples; need at least 2", len(spec.Train))
	}
	if spec.VocabSize == 0 {
		spec.VocabSize = 512
	}
	if spec.Val == nil {
		spec.Val = spec.Train
	}
	texts := make([]string, 0, len(spec.Train))
	for _, ex := range spec.Train {
		texts = append(texts, ex.Text)
	}
	tok, err := bpe.Train(ctx, texts, bpe.TrainOptions{VocabSize: spec.VocabSize})
	if err != nil {
		return "", fmt.Errorf("filter: learn: tokenizer: %w", err)
	}
	ids, err := learnIDs(tok)
	if err != nil {
		return "", err
	}
	js, err := tok.MarshalJSON()
	if err != nil {
		return "", err
	}
	info, err := b.PutBytes(ctx, js)
	if err != nil {
		return "", err
	}
	tokName := spec.Model + "-tok"
	if err := b.PutTokenizer(ctx, &busv1.TokenizerRecord{Name: tokName, Ref: info.Ref, VocabSize: int32(tok.VocabSize())}); err != nil {
		return "", err
	}
	cfg := spec.Config
	if cfg == nil {
		cfg = DefaultLearnConfig()
	}
	cfg["vocab_size"] = tok.VocabSize()
	nctx, _ := cfg["n_ctx"].(int)
	if nctx == 0 {
		nctx = 64
	}
	trainRef, err := putShard(ctx, b, sequences(tok, ids, spec.Train, nctx))
	if err != nil {
		return "", err
	}
	valRef, err := putShard(ctx, b, sequences(tok, ids, spec.Val, nctx))
	if err != nil {
		return "", err
	}
	def := func(v, d int) int {
		if v == 0 {
			return d
		}
		return v
	}
	lr := spec.LR
	if lr == 0 {
		lr = 0.003
	}
	steps := def(spec.Steps, 300)
	job := map[string]any{
		"model": spec.Model, "tokenizer": tokName, "train_ref": trainRef, "val_ref": valRef,
		"config": cfg, "steps": steps, "batch": def(spec.Batch, 16), "seq_len": def(spec.SeqLen, min(nctx, 48)),
		"lr": lr, "warmup": max(steps/20, 1), "eval_every": max(steps/4, 1), "checkpoint_every": steps,
		"log_every": max(steps/10, 1), "seed": max(spec.Seed, 1), "backend": spec.Backend,
	}
	data, err := json.Marshal(job)
	if err != nil {
		return "", err
	}
	rec, err := b.SubmitJob(ctx, bus.KindTrain, data, bus.SubmitOptions{})
	if err != nil {
		return "", fmt.Errorf("filter: learn: submit: %w", err)
	}
	return rec.Id, nil
}

// WaitJob waits until the job has finished and returns its error, if it
// failed.
func WaitJob(ctx context.Context, b *bus.Bus, id string) error {
	for {
		rec, err := b.GetJob(ctx, id)
		if err != nil {
			return err
		}
		if bus.Finished(rec.State) {
			if rec.State != busv1.JobState_JOB_STATE_SUCCEEDED {
				return fmt.Errorf("filter: train job %s: %s: %s", id, rec.State, rec.Error)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// labelIDs are the special ids of the learned stage's sequences.
type labelIDs struct{ eot, sep, yes, no uint32 }

func learnIDs(tok *bpe.Tokenizer) (labelIDs, error) {
	var l labelIDs
	var ok bool
	if l.eot, ok = tok.TokenID(bpe.DefaultSpecialToken); !ok {
		return l, fmt.Errorf("filter: learned stage: tokenizer has no %s token", bpe.DefaultSpecialToken)
	}
	one := func(s string) (uint32, error) {
		ids := tok.Encode(s)
		if len(ids) != 1 {
			return 0, fmt.Errorf("filter: learned stage: %q encodes to %d tokens, want 1", s, len(ids))
		}
		return ids[0], nil
	}
	var err error
	if l.sep, err = one(learnSep); err != nil {
		return l, err
	}
	if l.yes, err = one(learnBlock); err != nil {
		return l, err
	}
	if l.no, err = one(learnAllow); err != nil {
		return l, err
	}
	return l, nil
}

// prompt is the classifier's input for text: its last tokens, so that the
// sequence with the separator fits n_ctx.
func prompt(tok *bpe.Tokenizer, l labelIDs, text string, nctx int) []int32 {
	ids := tok.Encode(text)
	if len(ids) > nctx-3 {
		ids = ids[len(ids)-(nctx-3):]
	}
	out := make([]int32, 0, len(ids)+2)
	out = append(out, int32(l.eot))
	for _, id := range ids {
		out = append(out, int32(id))
	}
	return append(out, int32(l.sep))
}

// sequences is the token stream of a labelled set.
func sequences(tok *bpe.Tokenizer, l labelIDs, set []Example, nctx int) []uint16 {
	var out []uint16
	for _, ex := range set {
		for _, id := range prompt(tok, l, ex.Text, nctx) {
			out = append(out, uint16(id))
		}
		if ex.Block {
			out = append(out, uint16(l.yes))
		} else {
			out = append(out, uint16(l.no))
		}
	}
	return append(out, uint16(l.eot))
}

func putShard(ctx context.Context, b *bus.Bus, ids []uint16) (string, error) {
	payload, err := tensor.Encode([]tensor.Tensor{tensor.FromUint16("tokens", []int{len(ids)}, ids)}, map[string]string{"source": "filter-learn"})
	if err != nil {
		return "", err
	}
	info, err := b.PutBytes(ctx, payload)
	if err != nil {
		return "", err
	}
	return info.Ref, nil
}

// Launcher starts accelerator plugins; *accel.Host is one.
type Launcher interface {
	Launch(ctx context.Context, backend string) (*accel.Plugin, error)
}

// Classifiers serves the learned stage from registered models: each model
// is loaded into a plugin on first use and again when the registry points
// at a newer checkpoint. Close releases the plugins.
type Classifiers struct {
	b       *bus.Bus
	host    Launcher
	backend string
	mu      sync.Mutex
	plugin  *accel.Plugin
	models  map[string]*lmClassifier
}

// NewClassifiers serves classifiers on backend ("" means cpu).
func NewClassifiers(b *bus.Bus, host Launcher, backend string) *Classifiers {
	if backend == "" {
		backend = "cpu"
	}
	return &Classifiers{b: b, host: host, backend: backend, models: map[string]*lmClassifier{}}
}

// Source is the ClassifierSource for Config.
func (c *Classifiers) Source(ctx context.Context, model string) (Classifier, error) {
	rec, err := c.b.GetModel(ctx, model)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.models[model]; m != nil && m.ref == rec.Checkpoint {
		return m, nil
	}
	if c.plugin == nil {
		if c.plugin, err = c.host.Launch(ctx, c.backend); err != nil {
			return nil, err
		}
	}
	tj, err := c.b.GetObject(ctx, rec.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("classifier %q: tokenizer: %w", model, err)
	}
	tok, err := bpe.Load(tj)
	if err != nil {
		return nil, fmt.Errorf("classifier %q: tokenizer: %w", model, err)
	}
	ids, err := learnIDs(tok)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		NCtx int `json:"n_ctx"`
	}
	if err := json.Unmarshal(rec.ConfigJson, &cfg); err != nil || cfg.NCtx < 4 {
		return nil, fmt.Errorf("classifier %q: config n_ctx %d: %v", model, cfg.NCtx, err)
	}
	w, err := c.b.GetObject(ctx, rec.Checkpoint)
	if err != nil {
		return nil, fmt.Errorf("classifier %q: checkpoint: %w", model, err)
	}
	id := "filter-" + model + "-" + rec.Checkpoint[:min(12, len(rec.Checkpoint))]
	if _, err := c.plugin.LoadModel(ctx, accel.LoadRequest{ModelID: id, ConfigJSON: rec.ConfigJson, Weights: w}); err != nil {
		return nil, fmt.Errorf("classifier %q: load: %w", model, err)
	}
	m := &lmClassifier{p: c.plugin, id: id, ref: rec.Checkpoint, tok: tok, ids: ids, nctx: cfg.NCtx}
	c.models[model] = m
	return m, nil
}

// Close stops the plugin.
func (c *Classifiers) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.plugin != nil {
		c.plugin.Close()
		c.plugin = nil
	}
	c.models = map[string]*lmClassifier{}
}

// lmClassifier scores text with a loaded model.
type lmClassifier struct {
	p    *accel.Plugin
	id   string
	ref  string
	tok  *bpe.Tokenizer
	ids  labelIDs
	nctx int
}

// Score is P(Y) against N after "text \t".
func (m *lmClassifier) Score(ctx context.Context, text string) (float32, error) {
	res, err := m.p.DecodeStep(ctx, accel.DecodeRequest{ModelID: m.id, Sequences: [][]int32{prompt(m.tok, m.ids, text, m.nctx)}})
	if err != nil {
		return 0, err
	}
	if len(res.Logits) != 1 || int(max(m.ids.yes, m.ids.no)) >= len(res.Logits[0]) {
		return 0, errors.New("classifier: malformed logits")
	}
	d := float64(res.Logits[0][m.ids.yes] - res.Logits[0][m.ids.no])
	return float32(1 / (1 + math.Exp(-d))), nil
}
