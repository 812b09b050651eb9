package tensor

import (
	"encoding/binary"
	"fmt"
)

// A minimal, bounds-checked walk over the Arrow IPC flatbuffer metadata,
// run before arrow-go sees it. arrow-go trusts vector lengths (it
// allocates make([]T, n) from them) and follows child offsets recursively,
// so a few hostile bytes could otherwise ask for gigabytes or recurse
// forever — failures a recover cannot catch. Only the shapes this codec
// writes pass: a schema of FixedSizeList<Int|FloatingPoint> fields and
// uncompressed record batches.

// Arrow flatbuffer enum values (format/Message.fbs, Schema.fbs).
const (
	fbHeaderSchema          = 1
	fbHeaderDictionaryBatch = 2
	fbHeaderRecordBatch     = 3

	fbTypeInt           = 2
	fbTypeFloatingPoint = 3
	fbTypeFixedSizeList = 16
)

type fbuf []byte

type fbTable struct {
	b      fbuf
	pos    int
	vt     int
	vtSize int
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: ipc metadata: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func (b fbuf) u32(p int) (uint32, error) {
	if p < 0 || p+4 > len(b) {
		return 0, malformed("offset %d out of %d bytes", p, len(b))
	}
	return binary.LittleEndian.Uint32(b[p:]), nil
}

func (b fbuf) root() (fbTable, error) {
	off, err := b.u32(0)
	if err != nil {
		return fbTable{}, err
	}
	return b.table(int(off))
}

func (b fbuf) table(pos int) (fbTable, error) {
	so, err := b.u32(pos)
	if err != nil {
		return fbTable{}, err
	}
	vt := pos - int(int32(so))
	if vt < 0 || vt+4 > len(b) {
		return fbTable{}, malformed("vtable at %d out of %d bytes", vt, len(b))
	}
	vtSize := int(binary.LittleEndian.Uint16(b[vt:]))
	if vtSize < 4 || vt+vtSize > len(b) {
		return fbTable{}, malformed("vtable size %d at %d out of %d bytes", vtSize, vt, len(b))
	}
	return fbTable{b: b, pos: pos, vt: vt, vtSize: vtSize}, nil
}

// field returns the position of slot's value, or 0 when absent.
//
// A slot is present when its vtable entry starts inside the vtable, as
// the flatbuffers runtime that arrow-go uses decides it (entry offset <
// vtable size): with an odd vtable size the last entry's second byte lies
// past the vtable, and that entry still counts. Deciding otherwise here
// would let a field through unchecked that arrow-go then reads — a
// 560-byte payload so hid a schema's custom_metadata vector whose length
// arrow-go allocated 12 GiB for.
func (t fbTable) field(slot int) (int, error) {
	e := 4 + 2*slot
	if e >= t.vtSize {
		return 0, nil
	}
	if t.vt+e+2 > len(t.b) {
		return 0, malformed("vtable entry %d at %d out of %d bytes", slot, t.vt+e, len(t.b))
	}
	off := int(binary.LittleEndian.Uint16(t.b[t.vt+e:]))
	if off == 0 {
		return 0, nil
	}
	p := t.pos + off
	if p >= len(t.b) {
		return 0, malformed("field %d at %d out of %d bytes", slot, p, len(t.b))
	}
	return p, nil
}

func (t fbTable) u8(slot int) (byte, error) {
	p, err := t.field(slot)
	if err != nil || p == 0 {
		return 0, err
	}
	return t.b[p], nil
}

// indirect returns the position an offset field points at (0 if absent).
func (t fbTable) indirect(slot int) (int, error) {
	p, err := t.field(slot)
	if err != nil || p == 0 {
		return 0, err
	}
	rel, err := t.b.u32(p)
	if err != nil {
		return 0, err
	}
	q := p + int(rel)
	if q >= len(t.b) || q < p {
		return 0, malformed("offset at %d points out of %d bytes", p, len(t.b))
	}
	return q, nil
}

// vector returns the start and length of a vector field (0, 0 if absent),
// after checking that n elements of elemSize bytes fit in the buffer.
func (t fbTable) vector(slot, elemSize int) (start, n int, err error) {
	q, err := t.indirect(slot)
	if err != nil || q == 0 {
		return 0, 0, err
	}
	ln, err := t.b.u32(q)
	if err != nil {
		return 0, 0, err
	}
	start = q + 4
	if int64(ln)*int64(elemSize) > int64(len(t.b)-start) {
		return 0, 0, malformed("vector of %d elements at %d overruns %d bytes", ln, q, len(t.b))
	}
	return start, int(ln), nil
}

func (t fbTable) sub(slot int) (fbTable, bool, error) {
	q, err := t.indirect(slot)
	if err != nil || q == 0 {
		return fbTable{}, false, err
	}
	s, err := t.b.table(q)
	return s, err == nil, err
}

func (t fbTable) tables(slot int, each func(fbTable) error) (int, error) {
	start, n, err := t.vector(slot, 4)
	if err != nil {
		return 0, err
	}
	for i := range n {
		p := start + 4*i
		rel, err := t.b.u32(p)
		if err != nil {
			return 0, err
		}
		s, err := t.b.table(p + int(rel))
		if err != nil {
			return 0, err
		}
		if err := each(s); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func checkKeyValues(t fbTable, slot int) error {
	_, err := t.tables(slot, func(kv fbTable) error {
		if _, _, err := kv.vector(0, 1); err != nil {
			return err
		}
		_, _, err := kv.vector(1, 1)
		return err
	})
	return err
}

// checkMessage checks the metadata of IPC message number i: the first must
// be a schema, the others record batches.
func checkMessage(meta []byte, i int, lim Limits) error {
	b := fbuf(meta)
	msg, err := b.root()
	if err != nil {
		return err
	}
	if err := checkKeyValues(msg, 4); err != nil {
		return err
	}
	ht, err := msg.u8(1)
	if err != nil {
		return err
	}
	hdr, ok, err := msg.sub(2)
	if err != nil {
		return err
	}
	if !ok {
		return malformed("message %d has no header", i)
	}
	switch {
	case i == 0 && ht == fbHeaderSchema:
		return checkSchema(hdr, lim)
	case i == 0:
		return malformed("stream starts with message type %d, not a schema", ht)
	case ht == fbHeaderRecordBatch:
		return checkRecordBatch(hdr)
	case ht == fbHeaderDictionaryBatch:
		return fmt.Errorf("%w: dictionary batches", ErrUnsupported)
	default:
		return malformed("message %d has type %d, not a record batch", i, ht)
	}
}

func checkSchema(s fbTable, lim Limits) error {
	if err := checkKeyValues(s, 2); err != nil {
		return err
	}
	if _, _, err := s.vector(3, 8); err != nil { // features
		return err
	}
	_, n, err := s.vector(1, 4)
	if err != nil {
		return err
	}
	if n > lim.MaxTensors {
		return fmt.Errorf("%w: payload has %d tensors, limit %d", ErrTooLarge, n, lim.MaxTensors)
	}
	_, err = s.tables(1, func(f fbTable) error { return checkField(f, 0) })
	return err
}

func checkField(f fbTable, depth int) error {
	if _, _, err := f.vector(0, 1); err != nil { // name
		return err
	}
	if err := checkKeyValues(f, 6); err != nil {
		return err
	}
	if d, err := f.indirect(4); err != nil {
		return err
	} else if d != 0 {
		return fmt.Errorf("%w: dictionary-encoded columns", ErrUnsupported)
	}
	tt, err := f.u8(2)
	if err != nil {
		return err
	}
	if _, ok, err := f.sub(3); err != nil {
		return err
	} else if !ok {
		return malformed("field without a type table")
	}
	want := 0
	switch {
	case depth == 0 && tt == fbTypeFixedSizeList:
		want = 1
	case depth == 0:
		return fmt.Errorf("%w: column of arrow type %d is not a fixed_size_list tensor", ErrUnsupported, tt)
	case tt != fbTypeInt && tt != fbTypeFloatingPoint:
		return fmt.Errorf("%w: tensor value of arrow type %d is not a number", ErrUnsupported, tt)
	}
	_, n, err := f.vector(5, 4)
	if err != nil {
		return err
	}
	if n != want {
		return malformed("field of type %d has %d children, want %d", tt, n, want)
	}
	_, err = f.tables(5, func(c fbTable) error { return checkField(c, depth+1) })
	return err
}

func checkRecordBatch(rb fbTable) error {
	if _, _, err := rb.vector(1, 16); err != nil { // nodes
		return err
	}
	if _, _, err := rb.vector(2, 16); err != nil { // buffers
		return err
	}
	if _, _, err := rb.vector(4, 8); err != nil { // variadic counts
		return err
	}
	if c, err := rb.indirect(3); err != nil {
		return err
	} else if c != 0 {
		return fmt.Errorf("%w: compressed record batches", ErrUnsupported)
	}
	return nil
}
