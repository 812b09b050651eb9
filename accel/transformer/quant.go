package transformer

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/llmesh/llmesh/accel/simd"
)

// Post-training INT8 quantization. A quantized checkpoint is a
// safetensors file whose metadata says MetaQuantization =
// QuantInt8PerChannel. Every weight matrix of the linear layers
// (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_gate, mlp.c_proj) and the
// tied embedding / LM head (wte) is stored as an I8 tensor of its usual
// shape plus "<name>.scale", F32, one scale per output channel: a column
// of a layer's [in, out] matrix, a row (a token) of wte. The value is
// scale·q. Norms, biases and learned positions stay F32. With static
// activations (W8A8, MetaActivations = ActivationsStatic) each matrix
// also has "<name>.act_scale", F32 [1]: the scale its input rows are
// quantized with; with dynamic activations each input row is quantized
// with its own scale (max |x| / 127) when it is multiplied.
//
// Quantization is symmetric: scale = max |w| / 127 over the channel,
// q = round(w · (1/scale)) in float32, halves to even, in [-127, 127] (as
// simd.QuantizeInt8 quantizes activations); a channel of zeros has scale
// 0.

// Metadata of a quantized checkpoint.
const (
	MetaQuantization    = "quantization" // QuantInt8PerChannel
	MetaActivations     = "activations"  // ActivationsDynamic or ActivationsStatic
	QuantInt8PerChannel = "int8-per-channel"
	ActivationsDynamic  = "dynamic"
	ActivationsStatic   = "static"
)

// Suffixes of the tensors that go with a quantized matrix.
const (
	ScaleSuffix    = ".scale"
	ActScaleSuffix = ".act_scale"
)

// ErrAlreadyQuantized is returned (wrapping ErrSafetensors) by Quantize
// for a checkpoint that is quantized already.
var ErrAlreadyQuantized = fmt.Errorf("%w: checkpoint is already quantized", ErrSafetensors)

// ErrQuantized is returned (wrapping ErrInvalidInput) by the training
// calls of an INT8 model.
var ErrQuantized = fmt.Errorf("%w: model is INT8-quantized; training needs the fp32 checkpoint", ErrInvalidInput)

// QuantOptions tunes Quantize.
type QuantOptions struct {
	// ActivationMax, when not empty, makes the checkpoint W8A8 with
	// static activation scales: it must hold, for every quantized
	// matrix (by weight tensor name, as Evaluate's activation statistics
	// report them), the largest |x| of its inputs on calibration data.
	// Each scale is that maximum / 127; inputs beyond it saturate.
	ActivationMax map[string]float32
	// Positions also quantizes the learned position table (wpe), one
	// scale per position as wte has per token; it is added to the
	// embeddings, never multiplied, so it has no activation scale. By
	// default it stays fp32: at the reference config (n_ctx 256, d 256)
	// it is 6% of an INT8 file.
	Positions bool
}

// QuantReport describes a Quantize run.
type QuantReport struct {
	BytesBefore, BytesAfter int64
	Activations             string // ActivationsDynamic or ActivationsStatic
	Tensors                 []QuantTensorReport
}

// QuantTensorReport is one quantized matrix.
type QuantTensorReport struct {
	Name  string
	Shape []int
	// MaxAbsError is the largest |w - scale·q| over the matrix (at most
	// half of its largest scale).
	MaxAbsError float32
	// MaxScale is the largest of its channel scales.
	MaxScale float32
}

// Quantize turns an fp32 (or f16/bf16) checkpoint into an INT8 one (see
// the format above) for the model with config cfg (zero: the config in
// the file's metadata). The optimizer state is dropped; the step is kept.
// A checkpoint that is quantized already is refused with
// ErrAlreadyQuantized.
func Quantize(ck []byte, cfg Config, opt QuantOptions) ([]byte, QuantReport, error) {
	st, err := ReadSafetensors(ck)
	if err != nil {
		return nil, QuantReport{}, err
	}
	if err := checkNotQuantized(st); err != nil {
		return nil, QuantReport{}, err
	}
	c, err := ReadCheckpoint(ck, cfg, nil)
	if err != nil {
		return nil, QuantReport{}, err
	}
	m := c.Model
	mats := quantizableParams(m)
	static := len(opt.ActivationMax) > 0
	var pos []Param
	if opt.Positions && !m.cfg.RoPE() {
		p, _ := findParam(m, "wpe")
		pos = append(pos, p)
	}
	if static {
		names := map[string]bool{}
		for _, p := range mats {
			names[p.Name] = true
			v, ok := opt.ActivationMax[p.Name]
			if !ok {
				return nil, QuantReport{}, fmt.Errorf("%w: activation maximum of %q is missing (static activations need one per quantized matrix)", ErrInvalidInput, p.Name)
			}
			if !(v > 0) || math.IsInf(float64(v), 0) {
				return nil, QuantReport{}, fmt.Errorf("%w: activation maximum %v of %q must be positive and finite", ErrInvalidInput, v, p.Name)
			}
		}
		for name := range opt.ActivationMax {
			if !names[name] {
				return nil, QuantReport{}, fmt.Errorf("%w: activation maximum for %q, which is not a quantized matrix of this model", ErrInvalidInput, name)
			}
		}
	}
	rep := QuantReport{BytesBefore: int64(len(ck)), Activations: ActivationsDynamic}
	if static {
		rep.Activations = ActivationsStatic
	}
	qs := &int8State{static: static, mats: map[*float32]*qmat{}}
	for _, p := range append(mats, pos...) {
		qm := newQmat(p)
		quantizeMatrix(p.Data, qm.rows, qm.cols, qm.rowCh, qm.q, qm.scale)
		if static && !qm.table() {
			qm.act = opt.ActivationMax[p.Name] / 127
		}
		tr := QuantTensorReport{Name: p.Name, Shape: slices.Clone(p.Shape)}
		for i, w := range p.Data {
			ch := i % qm.cols
			if qm.rowCh {
				ch = i / qm.cols
			}
			tr.MaxAbsError = max(tr.MaxAbsError, float32(math.Abs(float64(w-float32(qm.q[i])*qm.scale[ch]))))
		}
		for _, s := range qm.scale {
			tr.MaxScale = max(tr.MaxScale, s)
		}
		rep.Tensors = append(rep.Tensors, tr)
		qs.mats[&p.Data[0]] = qm
		qs.order = append(qs.order, qm)
	}
	var buf bytes.Buffer
	if err := writeQuantized(&buf, m, qs, c.Step); err != nil {
		return nil, QuantReport{}, err
	}
	rep.BytesAfter = int64(buf.Len())
	return buf.Bytes(), rep, nil
}

// IsQuantized reports whether a safetensors file is a quantized
// checkpoint (by its metadata, or by I8 tensors).
func IsQuantized(ck []byte) (bool, error) {
	st, err := ReadSafetensors(ck)
	if err != nil {
		return false, err
	}
	return checkNotQuantized(st) != nil, nil
}

func checkNotQuantized(st *Safetensors) error {
	if q, ok := st.Metadata[MetaQuantization]; ok {
		return fmt.Errorf("%w (metadata %s=%q)", ErrAlreadyQuantized, MetaQuantization, q)
	}
	for _, t := range st.Tensors {
		if t.DType == "I8" {
			return fmt.Errorf("%w (tensor %q is I8)", ErrAlreadyQuantized, t.Name)
		}
	}
	return nil
}

// quantizableParams lists the matrices Quantize quantizes, in layout
// order: wte and every 2-D ".weight" (the learned positions stay fp32).
func quantizableParams(m *Model) []Param {
	var out []Param
	for _, p := range m.ps {
		if len(p.Shape) == 2 && (p.Name == "wte" || strings.HasSuffix(p.Name, ".weight")) {
			out = append(out, p)
		}
	}
	return out
}

// quantizeMatrix fills q and scale (one per channel: per row of the
// rows×cols matrix w when rowCh, else per column) with symmetric INT8.
func quantizeMatrix(w []float32, rows, cols int, rowCh bool, q []int8, scale []float32) {
	if rowCh {
		for r := range rows {
			row := w[r*cols : (r+1)*cols]
			s := float32(float64(simd.MaxAbs(row)) / 127)
			scale[r] = s
			quantRow(row, q[r*cols:(r+1)*cols], s)
		}
		return
	}
	clear(scale[:cols])
	for r := range rows {
		for j, v := range w[r*cols : (r+1)*cols] {
			scale[j] = max(scale[j], abs32(v))
		}
	}
	inv := make([]float32, cols)
	for j, mx := range scale[:cols] {
		scale[j] = float32(float64(mx) / 127)
		if scale[j] > 0 {
			inv[j] = 1 / scale[j]
		}
	}
	for r := range rows {
		row, qr := w[r*cols:(r+1)*cols], q[r*cols:(r+1)*cols]
		for j, v := range row {
			qr[j] = int8(math.RoundToEven(float64(max(-127, min(127, v*inv[j])))))
		}
	}
}

// quantRow quantizes x with scale s (all zero for s = 0).
func quantRow(x []float32, q []int8, s float32) {
	if s == 0 {
		clear(q)
		return
	}
	simd.QuantizeInt8(q, x, 1/s)
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// qmat is one weight matrix in INT8: the product it takes part in is
// in[N, I]·W with W [I, O] (a layer, channels are columns) or in·Wᵀ with
// W [O, I] (the tied head, channels are rows).
type qmat struct {
	name       string
	shape      []int
	rows, cols int
	rowCh      bool
	q          []int8
	scale      []float32
	act        float32 // static input scale, 0 for dynamic
	packed     any     // *simd.Int8Weights, made on first use
}

func newQmat(p Param) *qmat {
	rows, cols := p.Shape[0], p.Shape[1]
	qm := &qmat{name: p.Name, shape: p.Shape, rows: rows, cols: cols, rowCh: p.Name == "wte" || p.Name == "wpe", q: make([]int8, rows*cols)}
	qm.scale = make([]float32, qm.channels())
	return qm
}

// table reports whether qm is the position table, which takes part in no
// product (Quantize's Positions option).
func (qm *qmat) table() bool { return qm.name == "wpe" }

func (qm *qmat) channels() int {
	if qm.rowCh {
		return qm.rows
	}
	return qm.cols
}

// in and out are the product's inner and output sizes.
func (qm *qmat) in() int {
	if qm.rowCh {
		return qm.cols
	}
	return qm.rows
}

// dequantize writes scale·q into w.
func (qm *qmat) dequantize(w []float32) {
	for r := range qm.rows {
		row, out := qm.q[r*qm.cols:(r+1)*qm.cols], w[r*qm.cols:(r+1)*qm.cols]
		if qm.rowCh {
			s := qm.scale[r]
			for j, v := range row {
				out[j] = float32(v) * s
			}
			continue
		}
		for j, v := range row {
			out[j] = float32(v) * qm.scale[j]
		}
	}
}

// writeQuantized writes m's F32 tensors and qs's INT8 matrices.
func writeQuantized(w io.Writer, m *Model, qs *int8State, step int64) error {
	byName := map[string]*qmat{}
	for _, qm := range qs.order {
		byName[qm.name] = qm
	}
	var ts []Tensor
	for _, p := range m.ps {
		qm, ok := byName[p.Name]
		if !ok {
			ts = append(ts, F32Tensor(p.Name, p.Shape, p.Data))
			continue
		}
		ts = append(ts, I8Tensor(p.Name, p.Shape, qm.q), F32Tensor(p.Name+ScaleSuffix, []int{len(qm.scale)}, qm.scale))
		if qs.static && !qm.table() {
			ts = append(ts, F32Tensor(p.Name+ActScaleSuffix, []int{1}, []float32{qm.act}))
		}
	}
	acts := ActivationsDynamic
	if qs.static {
		acts = ActivationsStatic
	}
	meta := map[string]string{
		MetaConfig:       string(m.Config().JSON()),
		MetaStep:         strconv.FormatInt(step, 10),
		MetaFormat:       "pt",
		MetaQuantization: QuantInt8PerChannel,
		MetaActivations:  acts,
	}
	return WriteSafetensors(w, ts, meta)
}

// readQuantized builds an INT8 model from a quantized checkpoint: the
// fp32 tensors as ReadCheckpoint reads them, the INT8 matrices with their
// scales (dequantized into ParamData too, for the embedding lookup and
// for anyone reading the weights).
func readQuantized(st *Safetensors, cfg Config, k Kernels) (*Checkpoint, error) {
	if q := st.Metadata[MetaQuantization]; q != QuantInt8PerChannel {
		return nil, fmt.Errorf("%w: quantization %q is not %q", ErrSafetensors, q, QuantInt8PerChannel)
	}
	static := false
	switch a := st.Metadata[MetaActivations]; a {
	case "", ActivationsDynamic:
	case ActivationsStatic:
		static = true
	default:
		return nil, fmt.Errorf("%w: activations %q is not %q or %q", ErrSafetensors, a, ActivationsDynamic, ActivationsStatic)
	}
	ck := &Checkpoint{}
	if s, ok := st.Metadata[MetaStep]; ok {
		var err error
		if ck.Step, err = strconv.ParseInt(s, 10, 64); err != nil || ck.Step < 0 {
			return nil, fmt.Errorf("%w: metadata step %q is not a non-negative integer", ErrSafetensors, s)
		}
	}
	m := newEmpty(cfg, k)
	qs := &int8State{static: static, mats: map[*float32]*qmat{}}
	isQ := map[string]bool{}
	for _, p := range quantizableParams(m) {
		isQ[p.Name] = true
	}
	byName := map[string]Tensor{}
	for _, t := range st.Tensors {
		byName[strings.TrimPrefix(t.Name, "transformer.")] = t
	}
	if t, ok := byName["wpe"]; ok && t.DType == "I8" && !m.cfg.RoPE() {
		isQ["wpe"] = true // quantized with QuantOptions.Positions
	}
	used := 0
	for _, p := range m.ps {
		t, ok := byName[p.Name]
		if !ok {
			return nil, fmt.Errorf("%w: tensor %q is missing", ErrSafetensors, p.Name)
		}
		used++
		if !slices.Equal(t.Shape, p.Shape) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, config %s needs %v", ErrSafetensors, t.Name, t.Shape, cfg.JSON(), p.Shape)
		}
		if !isQ[p.Name] {
			if err := t.Float32s(p.Data); err != nil {
				return nil, err
			}
			continue
		}
		qm := newQmat(p)
		if err := t.Int8s(qm.q); err != nil {
			return nil, err
		}
		for _, v := range qm.q {
			if v == -128 {
				return nil, fmt.Errorf("%w: tensor %q holds -128 (symmetric INT8 is -127..127)", ErrSafetensors, p.Name)
			}
		}
		sc, ok := byName[p.Name+ScaleSuffix]
		if !ok {
			return nil, fmt.Errorf("%w: tensor %q has no %q", ErrSafetensors, p.Name, p.Name+ScaleSuffix)
		}
		used++
		if !slices.Equal(sc.Shape, []int{len(qm.scale)}) {
			return nil, fmt.Errorf("%w: tensor %q has shape %v, want [%d] (one scale per output channel of %q)", ErrSafetensors, sc.Name, sc.Shape, len(qm.scale), p.Name)
		}
		if err := sc.Float32s(qm.scale); err != nil {
			return nil, err
		}
		for i, s := range qm.scale {
			if !(s >= 0) || math.IsInf(float64(s), 0) {
				return nil, fmt.Errorf("%w: tensor %q: scale %d is %v (want finite and non-negative)", ErrSafetensors, sc.Name, i, s)
			}
		}
		if act, ok := byName[p.Name+ActScaleSuffix]; ok || static && !qm.table() {
			if !ok || !static || qm.table() {
				return nil, fmt.Errorf("%w: tensor %q: activation scales go with metadata %s=%q, every matrix has one", ErrSafetensors, p.Name+ActScaleSuffix, MetaActivations, ActivationsStatic)
			}
			used++
			v := make([]float32, 1)
			if !slices.Equal(act.Shape, []int{1}) {
				return nil, fmt.Errorf("%w: tensor %q has shape %v, want [1]", ErrSafetensors, act.Name, act.Shape)
			}
			if err := act.Float32s(v); err != nil {
				return nil, err
			}
			if !(v[0] > 0) || math.IsInf(float64(v[0]), 0) {
				return nil, fmt.Errorf("%w: tensor %q: activation scale %v must be positive and finite", ErrSafetensors, act.Name, v[0])
			}
			qm.act = v[0]
		}
		qm.dequantize(p.Data)
		qs.mats[&p.Data[0]] = qm
		qs.order = append(qs.order, qm)
	}
	if used != len(byName) {
		for name := range byName {
			if _, ok := findParam(m, name); ok || strings.HasSuffix(name, ScaleSuffix) || strings.HasSuffix(name, ActScaleSuffix) {
				continue
			}
			return nil, fmt.Errorf("%w: tensor %q is not part of a quantized model with config %s", ErrSafetensors, name, cfg.JSON())
		}
		return nil, fmt.Errorf("%w: %d tensors, a quantized model with config %s has %d", ErrSafetensors, len(byName), cfg.JSON(), used)
	}
	m.int8 = qs
	ck.Model = m
	return ck, nil
}

func findParam(m *Model, name string) (Param, bool) {
	for _, p := range m.ps {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}
