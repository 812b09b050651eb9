package tensor

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ipcOverhead is a generous estimate of the IPC bytes around the tensor
// data, used to size the output once.
const ipcOverhead = 1024

// Encode writes tensors and meta as one Arrow IPC stream: a schema with
// one fixed_shape_tensor column per tensor (in order) and meta as schema
// metadata, one record batch of one row, and the end-of-stream marker.
// Tensor names must be unique and non-empty. The tensors' Data is read, not
// retained: it is copied once, into the returned payload.
func Encode(tensors []Tensor, meta map[string]string, opts ...Option) ([]byte, error) {
	return AppendEncode(nil, tensors, meta, opts...)
}

// AppendEncode is Encode appending the stream to dst and returning the
// extended slice. A sender that publishes many payloads and no longer
// needs the previous one (NATS copies what it publishes) passes it back
// as dst[:0]: the payload's memory is then reused, not allocated and
// cleared again each time.
func AppendEncode(dst []byte, tensors []Tensor, meta map[string]string, opts ...Option) ([]byte, error) {
	cfg := newConfig(opts)
	fields := make([]arrow.Field, len(tensors))
	cols := make([]arrow.Array, len(tensors))
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	seen := make(map[string]bool, len(tensors))
	size := ipcOverhead
	for i, t := range tensors {
		if err := t.Validate(); err != nil {
			return dst, err
		}
		if seen[t.Name] {
			return dst, fmt.Errorf("%w: tensor %q appears twice", ErrMalformed, t.Name)
		}
		seen[t.Name] = true
		typ, err := NewFixedShapeTensorType(t.DType.arrowType(), t.Shape, t.DimNames, nil)
		if err != nil {
			return dst, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		var md arrow.Metadata
		if t.DType == BFloat16 {
			md = arrow.NewMetadata([]string{dtypeMetaKey}, []string{t.DType.String()})
		}
		fields[i] = arrow.Field{Name: t.Name, Type: typ, Metadata: md}
		cols[i] = tensorArray(typ, t)
		size += len(t.Data) + 8 + ipcOverhead/4
	}
	var schemaMeta *arrow.Metadata
	if len(meta) > 0 {
		keys := slices.Sorted(maps.Keys(meta))
		vals := make([]string, len(keys))
		for i, k := range keys {
			vals[i] = meta[k]
		}
		m := arrow.NewMetadata(keys, vals)
		schemaMeta = &m
	}
	schema := arrow.NewSchema(fields, schemaMeta)
	rec := array.NewRecordBatch(schema, cols, 1)
	defer rec.Release()

	out := bytes.NewBuffer(slices.Grow(dst, size))
	w := ipc.NewWriter(out, ipc.WithSchema(schema), ipc.WithAllocator(cfg.mem))
	if err := w.Write(rec); err != nil {
		w.Close()
		return dst, fmt.Errorf("encode tensors: %w", err)
	}
	if err := w.Close(); err != nil {
		return dst, fmt.Errorf("encode tensors: %w", err)
	}
	return out.Bytes(), nil
}

// tensorArray wraps t.Data, without copying, as a one-row tensor array.
func tensorArray(typ *FixedShapeTensorType, t Tensor) arrow.Array {
	n := int(t.Elements())
	values := memory.NewBufferBytes(t.Data)
	child := array.NewData(typ.ValueType(), n, []*memory.Buffer{nil, values}, nil, 0, 0)
	defer child.Release()
	list := array.NewData(typ.Storage, 1, []*memory.Buffer{nil}, []arrow.ArrayData{child}, 0, 0)
	defer list.Release()
	storage := array.MakeFromData(list)
	defer storage.Release()
	return array.NewExtensionArrayWithStorage(typ, storage)
}
