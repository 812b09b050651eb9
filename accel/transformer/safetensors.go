package transformer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
)

// ErrSafetensors is wrapped by every error about a malformed safetensors
// file or a checkpoint that does not fit its config.
var ErrSafetensors = errors.New("transformer: bad safetensors")

// MaxSafetensorsHeader bounds the JSON header of a safetensors file.
const MaxSafetensorsHeader = 100 << 20

// dtypeSizes lists the dtypes a file may declare, with element sizes.
var dtypeSizes = map[string]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
	"U16": 2, "I16": 2, "F16": 2, "BF16": 2,
	"U32": 4, "I32": 4, "F32": 4,
	"U64": 8, "I64": 8, "F64": 8,
}

// Tensor is one entry of a safetensors file. Data is the raw little-endian
// bytes; from ReadSafetensors it aliases the input buffer.
type Tensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte
}

// Safetensors is a decoded file: tensors in file order and the
// __metadata__ string map.
type Safetensors struct {
	Metadata map[string]string
	Tensors  []Tensor
}

// Tensor finds a tensor by name.
func (s *Safetensors) Tensor(name string) (Tensor, bool) {
	for _, t := range s.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

type stEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// ReadSafetensors decodes a safetensors file held in data. It checks the
// header length, that the header is one JSON object without duplicate
// names, every dtype, that each shape's size matches its byte range, and
// that ranges lie inside the data and do not overlap. Tensor data aliases
// data.
func ReadSafetensors(data []byte) (*Safetensors, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the 8-byte header length", ErrSafetensors, len(data))
	}
	hl := binary.LittleEndian.Uint64(data)
	if hl > MaxSafetensorsHeader {
		return nil, fmt.Errorf("%w: header length %d exceeds %d", ErrSafetensors, hl, MaxSafetensorsHeader)
	}
	if hl > uint64(len(data)-8) {
		return nil, fmt.Errorf("%w: header length %d exceeds the %d bytes after it", ErrSafetensors, hl, len(data)-8)
	}
	header, body := data[8:8+hl], data[8+hl:]
	dec := json.NewDecoder(bytes.NewReader(header))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%w: header is not a JSON object", ErrSafetensors)
	}
	out := &Safetensors{Metadata: map[string]string{}}
	seen := map[string]bool{}
	var starts []int64
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: header: %v", ErrSafetensors, err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("%w: header key %v is not a string", ErrSafetensors, tok)
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: tensor %q appears twice", ErrSafetensors, name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: header entry %q: %v", ErrSafetensors, name, err)
		}
		if name == "__metadata__" {
			if err := json.Unmarshal(raw, &out.Metadata); err != nil {
				return nil, fmt.Errorf("%w: __metadata__ is not a string map: %v", ErrSafetensors, err)
			}
			continue
		}
		var e stEntry
		ed := json.NewDecoder(bytes.NewReader(raw))
		ed.DisallowUnknownFields()
		if err := ed.Decode(&e); err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %v", ErrSafetensors, name, err)
		}
		t, err := checkEntry(name, e, body)
		if err != nil {
			return nil, err
		}
		out.Tensors = append(out.Tensors, t)
		starts = append(starts, e.DataOffsets[0])
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrSafetensors, err)
	}
	if rest := bytes.TrimSpace(header[dec.InputOffset():]); len(rest) > 0 {
		return nil, fmt.Errorf("%w: %d bytes of trailing data after the header object", ErrSafetensors, len(rest))
	}
	idx := make([]int, len(out.Tensors))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return starts[idx[i]] < starts[idx[j]] })
	sorted := make([]Tensor, len(idx))
	end, prev := int64(0), ""
	for i, k := range idx {
		t := out.Tensors[k]
		if len(t.Data) > 0 && starts[k] < end {
			return nil, fmt.Errorf("%w: tensor %q overlaps tensor %q", ErrSafetensors, t.Name, prev)
		}
		if len(t.Data) > 0 {
			end, prev = starts[k]+int64(len(t.Data)), t.Name
		}
		sorted[i] = t
	}
	out.Tensors = sorted
	return out, nil
}

func checkEntry(name string, e stEntry, body []byte) (Tensor, error) {
	size, ok := dtypeSizes[e.DType]
	if !ok {
		return Tensor{}, fmt.Errorf("%w: tensor %q: unknown dtype %q", ErrSafetensors, name, e.DType)
	}
	n := uint64(size)
	shape := make([]int, len(e.Shape))
	if len(e.Shape) > 16 {
		return Tensor{}, fmt.Errorf("%w: tensor %q: %d dimensions exceed 16", ErrSafetensors, name, len(e.Shape))
	}
	for i, d := range e.Shape {
		if d < 0 {
			return Tensor{}, fmt.Errorf("%w: tensor %q: dimension %d is negative (%d)", ErrSafetensors, name, i, d)
		}
		if d != 0 && n > math.MaxInt64/uint64(d) {
			return Tensor{}, fmt.Errorf("%w: tensor %q: shape %v overflows", ErrSafetensors, name, e.Shape)
		}
		n *= uint64(d)
		shape[i] = int(d)
	}
	b, en := e.DataOffsets[0], e.DataOffsets[1]
	if b < 0 || en < b || en > int64(len(body)) {
		return Tensor{}, fmt.Errorf("%w: tensor %q: data_offsets [%d %d] outside the %d data bytes", ErrSafetensors, name, b, en, len(body))
	}
	if uint64(en-b) != n {
		return Tensor{}, fmt.Errorf("%w: tensor %q: shape %v of %s needs %d bytes, data_offsets give %d", ErrSafetensors, name, e.Shape, e.DType, n, en-b)
	}
	return Tensor{Name: name, DType: e.DType, Shape: shape, Data: body[b:en:en]}, nil
}

// WriteSafetensors writes tensors, in the order given, with metadata.
func WriteSafetensors(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	header := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, t := range tensors {
		size, ok := dtypeSizes[t.DType]
		if !ok {
			return fmt.Errorf("%w: tensor %q: unknown dtype %q", ErrSafetensors, t.Name, t.DType)
		}
		if _, dup := header[t.Name]; dup || t.Name == "__metadata__" {
			return fmt.Errorf("%w: tensor name %q repeats or is reserved", ErrSafetensors, t.Name)
		}
		n := size
		shape := make([]int64, len(t.Shape))
		for i, d := range t.Shape {
			n *= d
			shape[i] = int64(d)
		}
		if n != len(t.Data) {
			return fmt.Errorf("%w: tensor %q: shape %v of %s needs %d bytes, has %d", ErrSafetensors, t.Name, t.Shape, t.DType, n, len(t.Data))
		}
		header[t.Name] = stEntry{DType: t.DType, Shape: shape, DataOffsets: [2]int64{off, off + int64(n)}}
		off += int64(n)
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(hj)%8 != 0 {
		hj = append(hj, ' ')
	}
	var lb [8]byte
	binary.LittleEndian.PutUint64(lb[:], uint64(len(hj)))
	if _, err := w.Write(lb[:]); err != nil {
		return err
	}
	if _, err := w.Write(hj); err != nil {
		return err
	}
	for _, t := range tensors {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// F32Tensor encodes values as an F32 tensor.
func F32Tensor(name string, shape []int, values []float32) Tensor {
	b := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return Tensor{Name: name, DType: "F32", Shape: shape, Data: b}
}

// I8Tensor encodes values as an I8 tensor.
func I8Tensor(name string, shape []int, values []int8) Tensor {
	b := make([]byte, len(values))
	for i, v := range values {
		b[i] = byte(v)
	}
	return Tensor{Name: name, DType: "I8", Shape: shape, Data: b}
}

// Int8s decodes an I8 tensor into dst, which must have exactly as many
// elements.
func (t Tensor) Int8s(dst []int8) error {
	if t.DType != "I8" {
		return fmt.Errorf("%w: tensor %q: dtype %s is not I8", ErrSafetensors, t.Name, t.DType)
	}
	if len(t.Data) != len(dst) {
		return fmt.Errorf("%w: tensor %q: %d bytes of I8 for %d values", ErrSafetensors, t.Name, len(t.Data), len(dst))
	}
	for i, b := range t.Data {
		dst[i] = int8(b)
	}
	return nil
}

// Float32s decodes an F32, F16 or BF16 tensor into dst, which must have
// exactly as many elements.
func (t Tensor) Float32s(dst []float32) error {
	size := map[string]int{"F32": 4, "F16": 2, "BF16": 2}[t.DType]
	if size == 0 {
		return fmt.Errorf("%w: tensor %q: dtype %s is not F32, F16 or BF16", ErrSafetensors, t.Name, t.DType)
	}
	if len(t.Data) != size*len(dst) {
		return fmt.Errorf("%w: tensor %q: %d bytes of %s for %d values", ErrSafetensors, t.Name, len(t.Data), t.DType, len(dst))
	}
	for i := range dst {
		switch t.DType {
		case "F32":
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		case "BF16":
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Data[2*i:])) << 16)
		case "F16":
			dst[i] = f16to32(binary.LittleEndian.Uint16(t.Data[2*i:]))
		}
	}
	return nil
}

func f16to32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		v := float32(mant) / 1024 / 16384
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 31:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}
