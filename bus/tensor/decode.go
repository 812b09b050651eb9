package tensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// LimitError reports a tensor, or the sum of all tensors, above a Limits
// bound. It matches ErrTooLarge with errors.Is.
type LimitError struct {
	Tensor string // "" for the total of a payload
	Shape  []int
	Bytes  int64 // bytes the tensor (or total) needs
	Limit  int64
}

func (e *LimitError) Error() string {
	if e.Tensor == "" {
		return fmt.Sprintf("tensors total %s, exceeding %s", FormatBytes(e.Bytes), FormatBytes(e.Limit))
	}
	return fmt.Sprintf("tensor %q: shape %v exceeds %s", e.Tensor, e.Shape, FormatBytes(e.Limit))
}

// Is reports whether target is ErrTooLarge.
func (e *LimitError) Is(target error) bool { return target == ErrTooLarge }

// Decode reads a payload written by Encode (or by any Arrow writer of the
// same shape: one schema of fixed_shape_tensor columns, one record batch of
// one row, uncompressed, no nulls, no dictionaries).
//
// The returned tensors alias payload: their Data are sub-slices of it, not
// copies, and are valid only while payload is. Decode never modifies
// payload. Hostile input yields an error wrapping ErrMalformed,
// ErrUnsupported or ErrTooLarge, never a panic.
func Decode(payload []byte, limits Limits, opts ...Option) (set *Set, err error) {
	lim := limits.withDefaults()
	cfg := newConfig(opts)
	defer func() {
		if r := recover(); r != nil {
			set, err = nil, fmt.Errorf("%w: %v", ErrMalformed, r)
		}
	}()

	mr := &payloadReader{buf: payload, lim: lim}
	mr.refs.Store(1)
	rdr, err := ipc.NewReaderFromMessageReader(mr, ipc.WithAllocator(cfg.mem), ipc.WithEnsureNativeEndian(false))
	if err != nil {
		mr.Release()
		return nil, arrowErr(err)
	}
	defer rdr.Release()

	schema := rdr.Schema()
	if !schema.IsNativeEndian() {
		return nil, fmt.Errorf("%w: big-endian payload", ErrUnsupported)
	}
	specs, err := columnSpecs(schema, lim)
	if err != nil {
		return nil, err
	}
	if !rdr.Next() {
		if err := rdr.Err(); err != nil {
			return nil, arrowErr(err)
		}
		return nil, fmt.Errorf("%w: payload of %d bytes has no record batch", ErrMalformed, len(payload))
	}
	rec := rdr.RecordBatch()
	if rec.NumRows() != 1 {
		return nil, fmt.Errorf("%w: record batch has %d rows, want 1", ErrMalformed, rec.NumRows())
	}
	set = &Set{Tensors: make([]Tensor, len(specs))}
	for i, col := range rec.Columns() {
		data, err := columnBytes(col, specs[i], payload)
		if err != nil {
			return nil, err
		}
		specs[i].Data = data
		set.Tensors[i] = specs[i]
	}
	if rdr.Next() {
		return nil, fmt.Errorf("%w: payload has more than one record batch", ErrMalformed)
	}
	if err := rdr.Err(); err != nil {
		return nil, arrowErr(err)
	}
	if md := schema.Metadata(); md.Len() > 0 {
		set.Meta = make(map[string]string, md.Len())
		for i, k := range md.Keys() {
			set.Meta[k] = md.Values()[i]
		}
	}
	return set, nil
}

// arrowErr makes sure an error from arrow-go wraps one of our sentinels.
func arrowErr(err error) error {
	if errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnsupported) || errors.Is(err, ErrTooLarge) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// columnSpecs checks the schema and returns one Tensor (without Data) per
// column.
func columnSpecs(schema *arrow.Schema, lim Limits) ([]Tensor, error) {
	if schema.NumFields() > lim.MaxTensors {
		return nil, fmt.Errorf("%w: payload has %d tensors, limit %d", ErrTooLarge, schema.NumFields(), lim.MaxTensors)
	}
	specs := make([]Tensor, schema.NumFields())
	seen := make(map[string]bool, len(specs))
	var total int64
	for i, f := range schema.Fields() {
		if f.Name == "" || seen[f.Name] {
			return nil, fmt.Errorf("%w: column %d has an empty or repeated name %q", ErrMalformed, i, f.Name)
		}
		seen[f.Name] = true
		fsl, md, err := tensorField(f)
		if err != nil {
			return nil, err
		}
		if len(md.Shape) > lim.MaxRank {
			return nil, fmt.Errorf("%w: tensor %q: rank %d exceeds %d", ErrTooLarge, f.Name, len(md.Shape), lim.MaxRank)
		}
		if md.Permutation != nil && !slices.IsSorted(md.Permutation) {
			return nil, fmt.Errorf("%w: tensor %q: permutation %v", ErrUnsupported, f.Name, md.Permutation)
		}
		n, err := elements(md.Shape)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", f.Name, err)
		}
		if n != int64(fsl.Len()) {
			return nil, fmt.Errorf("%w: tensor %q: shape %v has %d elements but the list size is %d", ErrMalformed, f.Name, md.Shape, n, fsl.Len())
		}
		marker, _ := f.Metadata.GetValue(dtypeMetaKey)
		dt, err := dtypeFromArrow(fsl.Elem(), marker)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", f.Name, err)
		}
		nbytes := n * int64(dt.Size()) // n < 2^31, cannot overflow
		if nbytes > lim.MaxTensorBytes {
			return nil, &LimitError{Tensor: f.Name, Shape: md.Shape, Bytes: nbytes, Limit: lim.MaxTensorBytes}
		}
		if total += nbytes; total > lim.MaxTotalBytes {
			return nil, &LimitError{Bytes: total, Limit: lim.MaxTotalBytes}
		}
		specs[i] = Tensor{Name: f.Name, DType: dt, Shape: md.Shape, DimNames: md.DimNames}
	}
	return specs, nil
}

// tensorField accepts our registered type, another implementation of the
// canonical type, or (if none is registered) the bare storage with the
// extension keys still in the field metadata.
func tensorField(f arrow.Field) (*arrow.FixedSizeListType, tensorMeta, error) {
	var (
		storage arrow.DataType
		data    string
	)
	switch t := f.Type.(type) {
	case *FixedShapeTensorType:
		return t.Storage.(*arrow.FixedSizeListType), tensorMeta{Shape: t.shape, DimNames: t.dimNames, Permutation: t.permutation}, nil
	case arrow.ExtensionType:
		if t.ExtensionName() != ExtensionName {
			return nil, tensorMeta{}, fmt.Errorf("%w: column %q has extension type %s, not %s", ErrUnsupported, f.Name, t.ExtensionName(), ExtensionName)
		}
		storage, data = t.StorageType(), t.Serialize()
	default:
		name, _ := f.Metadata.GetValue(ipc.ExtensionTypeKeyName)
		if name != ExtensionName {
			return nil, tensorMeta{}, fmt.Errorf("%w: column %q of type %s is not an %s", ErrUnsupported, f.Name, f.Type, ExtensionName)
		}
		storage = f.Type
		data, _ = f.Metadata.GetValue(ipc.ExtensionMetadataKeyName)
	}
	fsl, ok := storage.(*arrow.FixedSizeListType)
	if !ok {
		return nil, tensorMeta{}, fmt.Errorf("%w: column %q: storage %s is not a fixed_size_list", ErrMalformed, f.Name, storage)
	}
	md, err := parseTensorMeta(data)
	if err != nil {
		return nil, md, fmt.Errorf("column %q: %w", f.Name, err)
	}
	return fsl, md, nil
}

// columnBytes returns the bytes of the single tensor in col, checked
// against spec, as a slice of payload.
func columnBytes(col arrow.Array, spec Tensor, payload []byte) ([]byte, error) {
	if ext, ok := col.(array.ExtensionArray); ok {
		col = ext.Storage()
	}
	fsl, ok := col.(*array.FixedSizeList)
	if !ok {
		return nil, fmt.Errorf("%w: tensor %q: column is %s", ErrMalformed, spec.Name, col.DataType())
	}
	child := fsl.ListValues()
	if fsl.NullN() != 0 || child.NullN() != 0 {
		return nil, fmt.Errorf("%w: tensor %q has nulls", ErrUnsupported, spec.Name)
	}
	n := spec.Elements()
	size := int64(spec.DType.Size())
	nbytes := n * size
	first := int64(fsl.Data().Offset()) * n
	if int64(child.Len()) < first+n {
		return nil, fmt.Errorf("%w: tensor %q: shape %v needs %d values, column has %d", ErrMalformed, spec.Name, spec.Shape, first+n, child.Len())
	}
	if nbytes == 0 {
		return []byte{}, nil
	}
	bufs := child.Data().Buffers()
	if len(bufs) < 2 || bufs[1] == nil {
		return nil, fmt.Errorf("%w: tensor %q has no value buffer", ErrMalformed, spec.Name)
	}
	raw := bufs[1].Bytes()
	start := (first + int64(child.Data().Offset())) * size
	if start < 0 || start+nbytes > int64(len(raw)) {
		return nil, fmt.Errorf("%w: tensor %q: shape %v of %s needs %d bytes, buffer has %d", ErrMalformed, spec.Name, spec.Shape, spec.DType, nbytes, int64(len(raw))-start)
	}
	data := raw[start : start+nbytes : start+nbytes]
	if !within(data, payload) {
		// Only a decompressing or swapping reader would get here; the
		// buffer belongs to the allocator and dies with the record.
		data = slices.Clone(data)
	}
	return data, nil
}

func within(b, outer []byte) bool {
	if len(b) == 0 || len(outer) == 0 {
		return false
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(outer)))
	return p >= lo && p+uintptr(len(b)) <= lo+uintptr(len(outer))
}

// payloadReader is an ipc.MessageReader over an in-memory stream whose
// messages are slices of the stream itself (arrow-go's own reader copies
// every body into fresh memory).
type payloadReader struct {
	buf  []byte
	off  int
	n    int // messages read
	lim  Limits
	msg  *ipc.Message
	refs atomic.Int64
}

var _ ipc.MessageReader = (*payloadReader)(nil)

const continuation = 0xFFFFFFFF

func (r *payloadReader) Retain() { r.refs.Add(1) }

func (r *payloadReader) Release() {
	if r.refs.Add(-1) == 0 && r.msg != nil {
		r.msg.Release()
		r.msg = nil
	}
}

func (r *payloadReader) take(n int64, what string) ([]byte, error) {
	if n < 0 || n > int64(len(r.buf)-r.off) {
		return nil, fmt.Errorf("%w: truncated: %s of %d bytes at offset %d, payload is %d bytes", ErrMalformed, what, n, r.off, len(r.buf))
	}
	b := r.buf[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return b, nil
}

// Message implements ipc.MessageReader. The message is valid until the
// next call.
func (r *payloadReader) Message() (*ipc.Message, error) {
	if r.msg != nil {
		r.msg.Release()
		r.msg = nil
	}
	if r.off == len(r.buf) {
		return nil, io.EOF // a stream may end without the end-of-stream marker
	}
	word, err := r.take(4, "message prefix")
	if err != nil {
		return nil, err
	}
	length := int64(binary.LittleEndian.Uint32(word))
	if length == continuation {
		if word, err = r.take(4, "message length"); err != nil {
			return nil, err
		}
		length = int64(int32(binary.LittleEndian.Uint32(word)))
	}
	if length == 0 {
		return nil, io.EOF
	}
	if length > r.lim.MaxMetaBytes {
		return nil, fmt.Errorf("%w: ipc metadata of %s exceeds %s", ErrTooLarge, FormatBytes(length), FormatBytes(r.lim.MaxMetaBytes))
	}
	meta, err := r.take(length, "message metadata")
	if err != nil {
		return nil, err
	}
	if err := checkMessage(meta, r.n, r.lim); err != nil {
		return nil, err
	}
	r.n++
	metaBuf := memory.NewBufferBytes(meta)
	probe := ipc.NewMessage(metaBuf, memory.NewBufferBytes(nil))
	bodyLen := probe.BodyLen()
	probe.Release()
	body, err := r.take(bodyLen, "message body")
	if err != nil {
		return nil, err
	}
	r.msg = ipc.NewMessage(metaBuf, memory.NewBufferBytes(body))
	return r.msg, nil
}
