package acceltest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"

	"github.com/llmesh/llmesh/accel"
)

// Bigram is a tiny pure-Go backend: its model is one vocab x vocab table of
// next-token logits, trained with AdamW. It passes Run, so hosts, transports
// and the suite itself can be tested without the transformer runtime. It
// reads vocab_size and n_ctx from the model config and ignores the rest.
// Safe for concurrent use.
type Bigram struct {
	mu     sync.Mutex
	models map[string]*bigramModel
}

var _ accel.Backend = (*Bigram)(nil)

// NewBigram returns an empty Bigram backend.
func NewBigram() *Bigram { return &Bigram{models: make(map[string]*bigramModel)} }

type bigramConfig struct {
	VocabSize int `json:"vocab_size"`
	NCtx      int `json:"n_ctx"`
}

type bigramModel struct {
	cfg     bigramConfig
	cfgJSON []byte
	w, m, v []float32
	grad    []float32
	opt     *accel.OptimizerConfig
	step    int64
}

func (b *Bigram) Info(context.Context) (accel.Info, error) {
	return accel.Info{Name: "bigram", Version: "0.1.0", Device: "cpu", Features: []string{"test"}, ProtocolVersion: accel.ProtocolVersion}, nil
}

func (b *Bigram) model(id string) (*bigramModel, error) {
	if id == "" {
		return nil, fmt.Errorf("bigram: %w: empty model id", accel.ErrInvalidArgument)
	}
	m, ok := b.models[id]
	if !ok {
		return nil, fmt.Errorf("bigram: model %q: %w", id, accel.ErrUnknownModel)
	}
	return m, nil
}

func (b *Bigram) LoadModel(_ context.Context, req accel.LoadRequest) (accel.LoadResult, error) {
	if req.ModelID == "" {
		return accel.LoadResult{}, fmt.Errorf("bigram: %w: empty model id", accel.ErrInvalidArgument)
	}
	var cfg bigramConfig
	if err := json.Unmarshal(req.ConfigJSON, &cfg); err != nil {
		return accel.LoadResult{}, fmt.Errorf("bigram: %w: config: %v", accel.ErrInvalidArgument, err)
	}
	if cfg.VocabSize <= 0 || cfg.NCtx <= 0 || cfg.VocabSize > 1<<14 {
		return accel.LoadResult{}, fmt.Errorf("bigram: %w: config vocab_size %d and n_ctx %d must be positive (vocab at most 16384)",
			accel.ErrInvalidArgument, cfg.VocabSize, cfg.NCtx)
	}
	if o := req.Optimizer; o != nil && (o.QAT || o.KeepSparsity) {
		return accel.LoadResult{}, fmt.Errorf("bigram: %w: QAT and KeepSparsity are not supported by the bigram test backend", accel.ErrInvalidArgument)
	}
	n := cfg.VocabSize * cfg.VocabSize
	m := &bigramModel{cfg: cfg, cfgJSON: append([]byte(nil), req.ConfigJSON...), grad: make([]float32, n), opt: req.Optimizer}
	if len(req.Weights) > 0 {
		tensors, meta, err := readSafetensors(req.Weights)
		if err != nil {
			return accel.LoadResult{}, fmt.Errorf("bigram: %w: weights: %v", accel.ErrInvalidArgument, err)
		}
		if len(tensors["w"]) != n {
			return accel.LoadResult{}, fmt.Errorf("bigram: %w: weights: tensor \"w\" has %d values, config needs %d", accel.ErrInvalidArgument, len(tensors["w"]), n)
		}
		m.w = tensors["w"]
		m.m, m.v = tensors["m"], tensors["v"]
		fmt.Sscan(meta["step"], &m.step)
	} else {
		r := rand.New(rand.NewPCG(req.Seed, 0x6c6c6d657368))
		m.w = make([]float32, n)
		for i := range m.w {
			m.w[i] = float32(r.NormFloat64() * 0.02)
		}
	}
	if len(m.m) != n || len(m.v) != n {
		m.m, m.v = make([]float32, n), make([]float32, n)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.models[req.ModelID] = m
	return accel.LoadResult{Parameters: uint64(n), Step: m.step}, nil
}

func (m *bigramModel) checkTokens(tokens []int32) error {
	for _, t := range tokens {
		if t < 0 || int(t) >= m.cfg.VocabSize {
			return fmt.Errorf("bigram: %w: token %d outside vocabulary [0, %d)", accel.ErrInvalidArgument, t, m.cfg.VocabSize)
		}
	}
	return nil
}

func (m *bigramModel) checkBatch(batch, seqLen int, inputs, targets []int32) error {
	if err := (accel.EvalRequest{Batch: batch, SeqLen: seqLen, Inputs: inputs, Targets: targets}).Validate(); err != nil {
		return fmt.Errorf("bigram: %w", err)
	}
	if seqLen > m.cfg.NCtx {
		return fmt.Errorf("bigram: %w: seq_len %d exceeds n_ctx %d", accel.ErrInvalidArgument, seqLen, m.cfg.NCtx)
	}
	if err := m.checkTokens(inputs); err != nil {
		return err
	}
	return m.checkTokens(targets)
}

// loss returns the mean cross-entropy and, when grad is set, adds its
// gradient to grad.
func (m *bigramModel) loss(inputs, targets []int32, grad []float32) float64 {
	V := m.cfg.VocabSize
	p := make([]float64, V)
	var total float64
	scale := 1 / float64(len(inputs))
	for i, in := range inputs {
		row := m.w[int(in)*V : int(in+1)*V]
		mx := math.Inf(-1)
		for _, x := range row {
			mx = math.Max(mx, float64(x))
		}
		var sum float64
		for j, x := range row {
			p[j] = math.Exp(float64(x) - mx)
			sum += p[j]
		}
		total += math.Log(sum) + mx - float64(row[targets[i]])
		if grad != nil {
			g := grad[int(in)*V : int(in+1)*V]
			for j := range g {
				d := p[j] / sum
				if j == int(targets[i]) {
					d--
				}
				g[j] += float32(d * scale)
			}
		}
	}
	return total * scale
}

func (b *Bigram) TrainStep(_ context.Context, req accel.TrainStepRequest) (accel.TrainStepResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.model(req.ModelID)
	if err != nil {
		return accel.TrainStepResult{}, err
	}
	if err := m.checkBatch(req.Batch, req.SeqLen, req.Inputs, req.Targets); err != nil {
		return accel.TrainStepResult{}, err
	}
	if req.Teacher != nil {
		return accel.TrainStepResult{}, fmt.Errorf("bigram: %w: distillation (teacher soft targets) is not supported by the bigram test backend", accel.ErrInvalidArgument)
	}
	g := make([]float32, len(m.w))
	loss := m.loss(req.Inputs, req.Targets, g)
	for i := range g {
		m.grad[i] += g[i]
	}
	res := accel.TrainStepResult{Loss: loss}
	if req.ReturnGradients {
		res.Gradients = g
		accel.ReportGradients(req, g)
	}
	return res, nil
}

func (b *Bigram) ApplyUpdate(_ context.Context, req accel.UpdateRequest) (accel.UpdateResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.model(req.ModelID)
	if err != nil {
		return accel.UpdateResult{}, err
	}
	if m.opt == nil {
		return accel.UpdateResult{}, fmt.Errorf("bigram: model %q: %w: loaded without an optimizer", req.ModelID, accel.ErrInvalidArgument)
	}
	if !(req.LearningRate > 0) {
		return accel.UpdateResult{}, fmt.Errorf("bigram: %w: learning rate %v must be positive", accel.ErrInvalidArgument, req.LearningRate)
	}
	g := m.grad
	if req.Gradients != nil {
		if len(req.Gradients) != len(m.w) {
			return accel.UpdateResult{}, fmt.Errorf("bigram: %w: %d gradients for %d parameters", accel.ErrInvalidArgument, len(req.Gradients), len(m.w))
		}
		g = req.Gradients
	}
	var norm float64
	for _, x := range g {
		norm += float64(x) * float64(x)
	}
	norm = math.Sqrt(norm)
	clip := float32(1)
	if o := m.opt; o.GradClip > 0 && norm > float64(o.GradClip) {
		clip = float32(float64(o.GradClip) / norm)
	}
	m.step++
	o := m.opt
	bc1 := 1 - math.Pow(float64(o.Beta1), float64(m.step))
	bc2 := 1 - math.Pow(float64(o.Beta2), float64(m.step))
	for i := range m.w {
		gi := g[i] * clip
		m.m[i] = o.Beta1*m.m[i] + (1-o.Beta1)*gi
		m.v[i] = o.Beta2*m.v[i] + (1-o.Beta2)*gi*gi
		mh := float64(m.m[i]) / bc1
		vh := float64(m.v[i]) / bc2
		m.w[i] -= req.LearningRate * (float32(mh/(math.Sqrt(vh)+float64(o.Eps))) + o.WeightDecay*m.w[i])
	}
	clear(m.grad)
	return accel.UpdateResult{GradNorm: norm, Step: m.step}, nil
}

func (b *Bigram) Evaluate(_ context.Context, req accel.EvalRequest) (accel.EvalResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.model(req.ModelID)
	if err != nil {
		return accel.EvalResult{}, err
	}
	if err := m.checkBatch(req.Batch, req.SeqLen, req.Inputs, req.Targets); err != nil {
		return accel.EvalResult{}, err
	}
	if req.TopK > 0 || req.ActivationStats {
		return accel.EvalResult{}, fmt.Errorf("bigram: %w: top-k logits and activation statistics are not supported by the bigram test backend", accel.ErrInvalidArgument)
	}
	return accel.EvalResult{Loss: m.loss(req.Inputs, req.Targets, nil), Tokens: int64(len(req.Targets))}, nil
}

func (b *Bigram) DecodeStep(_ context.Context, req accel.DecodeRequest) (accel.DecodeResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.model(req.ModelID)
	if err != nil {
		return accel.DecodeResult{}, err
	}
	if len(req.Sequences) == 0 {
		return accel.DecodeResult{}, fmt.Errorf("bigram: %w: no sequences", accel.ErrInvalidArgument)
	}
	V := m.cfg.VocabSize
	out := make([][]float32, len(req.Sequences))
	for i, s := range req.Sequences {
		if len(s) == 0 || len(s) > m.cfg.NCtx {
			return accel.DecodeResult{}, fmt.Errorf("bigram: %w: sequence %d has %d tokens, want 1 to n_ctx %d", accel.ErrInvalidArgument, i, len(s), m.cfg.NCtx)
		}
		if err := m.checkTokens(s); err != nil {
			return accel.DecodeResult{}, err
		}
		last := int(s[len(s)-1])
		out[i] = append([]float32(nil), m.w[last*V:(last+1)*V]...)
	}
	return accel.DecodeResult{Logits: out}, nil
}

func (b *Bigram) SaveWeights(_ context.Context, req accel.SaveRequest) (accel.SaveResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.model(req.ModelID)
	if err != nil {
		return accel.SaveResult{}, err
	}
	V := m.cfg.VocabSize
	tensors := map[string][]float32{"w": m.w}
	if req.WithOptimizer {
		tensors["m"], tensors["v"] = m.m, m.v
	}
	blob := writeSafetensors(tensors, []int{V, V}, map[string]string{"step": fmt.Sprint(m.step)})
	return accel.SaveResult{Safetensors: blob, ConfigJSON: append([]byte(nil), m.cfgJSON...), Step: m.step}, nil
}

func (b *Bigram) Unload(_ context.Context, modelID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.model(modelID); err != nil {
		return err
	}
	delete(b.models, modelID)
	return nil
}

type stEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// writeSafetensors writes float32 tensors of one shape as safetensors.
func writeSafetensors(tensors map[string][]float32, shape []int, meta map[string]string) []byte {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{"__metadata__": meta}
	var off int64
	for _, n := range names {
		size := int64(len(tensors[n]) * 4)
		header[n] = stEntry{DType: "F32", Shape: shape, DataOffsets: [2]int64{off, off + size}}
		off += size
	}
	h, _ := json.Marshal(header)
	out := make([]byte, 8, 8+len(h)+int(off))
	binary.LittleEndian.PutUint64(out, uint64(len(h)))
	out = append(out, h...)
	for _, n := range names {
		for _, x := range tensors[n] {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(x))
		}
	}
	return out
}

// readSafetensors reads the float32 tensors and the metadata of a blob.
func readSafetensors(blob []byte) (map[string][]float32, map[string]string, error) {
	if len(blob) < 8 {
		return nil, nil, fmt.Errorf("safetensors: %d bytes is too short", len(blob))
	}
	hl := binary.LittleEndian.Uint64(blob)
	if hl > uint64(len(blob)-8) {
		return nil, nil, fmt.Errorf("safetensors: header length %d exceeds blob of %d bytes", hl, len(blob))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(blob[8:8+hl], &raw); err != nil {
		return nil, nil, fmt.Errorf("safetensors: header: %v", err)
	}
	data := blob[8+hl:]
	meta := map[string]string{}
	out := map[string][]float32{}
	for name, r := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(r, &meta); err != nil {
				return nil, nil, fmt.Errorf("safetensors: metadata: %v", err)
			}
			continue
		}
		var e stEntry
		if err := json.Unmarshal(r, &e); err != nil {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: %v", name, err)
		}
		lo, hi := e.DataOffsets[0], e.DataOffsets[1]
		if e.DType != "F32" || lo < 0 || hi < lo || hi > int64(len(data)) || (hi-lo)%4 != 0 {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: dtype %s offsets [%d %d] do not fit %d data bytes", name, e.DType, lo, hi, len(data))
		}
		vals := make([]float32, (hi-lo)/4)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[lo+int64(i)*4:]))
		}
		out[name] = vals
	}
	return out, meta, nil
}
