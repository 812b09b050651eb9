package transformer

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Metadata keys of a checkpoint's __metadata__ map.
const (
	MetaConfig = "config" // the Config as JSON
	MetaStep   = "step"   // optimizer steps taken, decimal
	MetaFormat = "format" // "pt", as GPT-2 files from PyTorch carry
)

// Prefixes of the optimizer moments stored next to the weights.
const (
	OptimizerMPrefix = "optimizer.m."
	OptimizerVPrefix = "optimizer.v."
)

// Checkpoint is a decoded checkpoint.
type Checkpoint struct {
	Model     *Model
	Step      int64
	Optimizer *AdamWState // nil when the file holds no optimizer state
}

// WriteCheckpoint writes m's weights as F32 tensors with GPT-2 names, the
// config and step in the metadata and, when opt is not nil, the optimizer
// moments as optimizer.m.<name> and optimizer.v.<name>. An INT8 model
// (read from a quantized checkpoint) is written quantized (see Quantize).
func WriteCheckpoint(w io.Writer, m *Model, step int64, opt *AdamWState) error {
	if m.int8 != nil {
		if opt != nil {
			return fmt.Errorf("%w: an INT8 model has no optimizer state", ErrInvalidInput)
		}
		return writeQuantized(w, m, m.int8, step)
	}
	ps := m.Params()
	ts := make([]Tensor, 0, 3*len(ps))
	for _, p := range ps {
		ts = append(ts, F32Tensor(p.Name, p.Shape, p.Data))
	}
	if opt != nil {
		if len(opt.M) != m.NumParams() || len(opt.V) != m.NumParams() {
			return fmt.Errorf("%w: optimizer state has %d and %d moments, want %d", ErrInvalidInput, len(opt.M), len(opt.V), m.NumParams())
		}
		for _, p := range ps {
			ts = append(ts, F32Tensor(OptimizerMPrefix+p.Name, p.Shape, opt.M[p.Offset:p.Offset+p.Size()]))
		}
		for _, p := range ps {
			ts = append(ts, F32Tensor(OptimizerVPrefix+p.Name, p.Shape, opt.V[p.Offset:p.Offset+p.Size()]))
		}
	}
	meta := map[string]string{
		MetaConfig: string(m.Config().JSON()),
		MetaStep:   strconv.FormatInt(step, 10),
		MetaFormat: "pt",
	}
	return WriteSafetensors(w, ts, meta)
}

// ReadCheckpoint builds a model from a safetensors file. cfg is the config
// to build; a zero Config (no vocab, layers or width) means the one in the file's metadata. Every
// tensor of the model must be present with the config's shape. Names may
// carry GPT-2's "transformer." prefix; GPT-2's attention mask buffers
// (attn.bias, attn.masked_bias) and the tied lm_head.weight are ignored;
// any other unknown tensor is an error. F16 and BF16 weights are widened.
// A quantized checkpoint (see Quantize) gives an INT8 model.
func ReadCheckpoint(data []byte, cfg Config, k Kernels) (*Checkpoint, error) {
	st, err := ReadSafetensors(data)
	if err != nil {
		return nil, err
	}
	if cfg.VocabSize == 0 && cfg.NLayer == 0 && cfg.NEmbd == 0 {
		cj, ok := st.Metadata[MetaConfig]
		if !ok {
			return nil, fmt.Errorf("%w: no config given and no %q in metadata", ErrSafetensors, MetaConfig)
		}
		if cfg, err = ParseConfig([]byte(cj)); err != nil {
			return nil, err
		}
	} else if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, ok := st.Metadata[MetaQuantization]; ok {
		return readQuantized(st, cfg, k)
	}
	ck := &Checkpoint{}
	if s, ok := st.Metadata[MetaStep]; ok {
		if ck.Step, err = strconv.ParseInt(s, 10, 64); err != nil || ck.Step < 0 {
			return nil, fmt.Errorf("%w: metadata step %q is not a non-negative integer", ErrSafetensors, s)
		}
	}
	m := newEmpty(cfg, k)
	byName := make(map[string]Param, len(m.ps))
	for _, p := range m.ps {
		byName[p.Name] = p
	}
	var optM, optV []float32
	loaded := map[string]bool{}
	nm, nv := 0, 0
	for _, t := range st.Tensors {
		name := strings.TrimPrefix(t.Name, "transformer.")
		dst, kind := name, 0
		switch {
		case strings.HasPrefix(name, OptimizerMPrefix):
			dst, kind = strings.TrimPrefix(name, OptimizerMPrefix), 1
		case strings.HasPrefix(name, OptimizerVPrefix):
			dst, kind = strings.TrimPrefix(name, OptimizerVPrefix), 2
		}
		p, ok := byName[dst]
		if !ok {
			if kind == 0 && (strings.HasSuffix(name, ".attn.bias") || strings.HasSuffix(name, ".attn.masked_bias") || name == "lm_head.weight") {
				continue
			}
			return nil, fmt.Errorf("%w: tensor %q is not part of a model with config %s", ErrSafetensors, t.Name, cfg.JSON())
		}
		if !slices.Equal(t.Shape, p.Shape) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, config %s needs %v", ErrSafetensors, t.Name, t.Shape, cfg.JSON(), p.Shape)
		}
		var into []float32
		switch kind {
		case 0:
			into = p.Data
		case 1:
			if optM == nil {
				optM = make([]float32, m.NumParams())
			}
			into, nm = optM[p.Offset:p.Offset+p.Size()], nm+1
		case 2:
			if optV == nil {
				optV = make([]float32, m.NumParams())
			}
			into, nv = optV[p.Offset:p.Offset+p.Size()], nv+1
		}
		if loaded[name] {
			return nil, fmt.Errorf("%w: tensor %q appears twice", ErrSafetensors, name)
		}
		loaded[name] = true
		if err := t.Float32s(into); err != nil {
			return nil, err
		}
	}
	for _, p := range m.ps {
		if !loaded[p.Name] {
			return nil, fmt.Errorf("%w: tensor %q is missing", ErrSafetensors, p.Name)
		}
	}
	if nm != 0 || nv != 0 {
		if nm != len(m.ps) || nv != len(m.ps) {
			return nil, fmt.Errorf("%w: optimizer state is partial: %d of %d m and %d of %d v tensors", ErrSafetensors, nm, len(m.ps), nv, len(m.ps))
		}
		ck.Optimizer = &AdamWState{M: optM, V: optV, Step: ck.Step}
	}
	ck.Model = m
	return ck, nil
}
