package tbevents

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrCorrupt: a record's length, checksum or message is malformed.
var ErrCorrupt = errors.New("tbevents: corrupt event file")

// maxRecord bounds one record when reading.
const maxRecord = 16 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is TFRecord's masked CRC-32C.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// Writer appends events to one file.
type Writer struct {
	f    *os.File
	w    *bufio.Writer
	path string
}

// Create makes dir and a new event file in it named the way TensorBoard
// looks for (events.out.tfevents.<seconds>.<host>), and writes the file
// version event.
func Create(dir string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	now := time.Now()
	path := filepath.Join(dir, fmt.Sprintf("events.out.tfevents.%d.%s", now.Unix(), host))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	w := &Writer{f: f, w: bufio.NewWriter(f), path: path}
	if err := w.record(encodeEvent(Event{Wall: now, FileVersion: "brain.Event:2"})); err != nil {
		f.Close()
		return nil, err
	}
	return w, w.Flush()
}

// Path is the file's path.
func (w *Writer) Path() string { return w.path }

// Scalar appends one scalar value of tag at step.
func (w *Writer) Scalar(tag string, step int64, value float64, wall time.Time) error {
	return w.record(encodeEvent(Event{Wall: wall, Step: step, Tag: tag, Value: float32(value), HasValue: true}))
}

// Flush writes buffered events to the file.
func (w *Writer) Flush() error { return w.w.Flush() }

// Close flushes and closes the file.
func (w *Writer) Close() error {
	return errors.Join(w.w.Flush(), w.f.Close())
}

func (w *Writer) record(data []byte) error {
	var hdr [12]byte
	binary.LittleEndian.PutUint64(hdr[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(hdr[8:], maskedCRC(hdr[:8]))
	var foot [4]byte
	binary.LittleEndian.PutUint32(foot[:], maskedCRC(data))
	for _, b := range [][]byte{hdr[:], data, foot[:]} {
		if _, err := w.w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// Event is one event: the file version, or one scalar.
type Event struct {
	Wall        time.Time
	Step        int64
	FileVersion string
	Tag         string
	Value       float32
	HasValue    bool
}

// Event fields (tensorflow/core/util/event.proto) and Summary ones
// (tensorflow/core/framework/summary.proto).
const (
	evWallTime    = 1 // double
	evStep        = 2 // int64
	evFileVersion = 3 // string
	evSummary     = 5 // Summary
	sumValue      = 1 // repeated Summary.Value
	valTag        = 1 // string
	valSimple     = 2 // float
)

func encodeEvent(e Event) []byte {
	var b []byte
	b = protowire.AppendTag(b, evWallTime, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(float64(e.Wall.UnixNano())/1e9))
	if e.Step != 0 {
		b = protowire.AppendTag(b, evStep, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(e.Step))
	}
	if e.FileVersion != "" {
		b = protowire.AppendTag(b, evFileVersion, protowire.BytesType)
		b = protowire.AppendString(b, e.FileVersion)
	}
	if e.HasValue {
		var v []byte
		v = protowire.AppendTag(v, valTag, protowire.BytesType)
		v = protowire.AppendString(v, e.Tag)
		v = protowire.AppendTag(v, valSimple, protowire.Fixed32Type)
		v = protowire.AppendFixed32(v, math.Float32bits(e.Value))
		var s []byte
		s = protowire.AppendTag(s, sumValue, protowire.BytesType)
		s = protowire.AppendBytes(s, v)
		b = protowire.AppendTag(b, evSummary, protowire.BytesType)
		b = protowire.AppendBytes(b, s)
	}
	return b
}

// Read decodes every event of an event file. Summaries with several
// values give one Event per value; fields this package does not write are
// skipped.
func Read(r io.Reader) ([]Event, error) {
	br := bufio.NewReader(r)
	var out []Event
	for i := 0; ; i++ {
		var hdr [12]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, fmt.Errorf("%w: record %d: truncated header", ErrCorrupt, i)
		}
		if binary.LittleEndian.Uint32(hdr[8:]) != maskedCRC(hdr[:8]) {
			return out, fmt.Errorf("%w: record %d: length checksum mismatch", ErrCorrupt, i)
		}
		n := binary.LittleEndian.Uint64(hdr[:8])
		if n > maxRecord {
			return out, fmt.Errorf("%w: record %d of %d bytes exceeds %d", ErrCorrupt, i, n, maxRecord)
		}
		data := make([]byte, n+4)
		if _, err := io.ReadFull(br, data); err != nil {
			return out, fmt.Errorf("%w: record %d: truncated data", ErrCorrupt, i)
		}
		if binary.LittleEndian.Uint32(data[n:]) != maskedCRC(data[:n]) {
			return out, fmt.Errorf("%w: record %d: data checksum mismatch", ErrCorrupt, i)
		}
		evs, err := decodeEvent(data[:n])
		if err != nil {
			return out, fmt.Errorf("%w: record %d: %v", ErrCorrupt, i, err)
		}
		out = append(out, evs...)
	}
}

// fields walks a message, calling fn for each field; fn gets the value's
// bytes (for BytesType), or its number (varint, fixed).
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, bs []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v uint64
		var bs []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(b)
			v = uint64(x)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			bs, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, bs); err != nil {
			return err
		}
	}
	return nil
}

func decodeEvent(b []byte) ([]Event, error) {
	var base Event
	var values []Event
	err := fields(b, func(num protowire.Number, typ protowire.Type, v uint64, bs []byte) error {
		switch {
		case num == evWallTime && typ == protowire.Fixed64Type:
			s := math.Float64frombits(v)
			base.Wall = time.Unix(0, int64(s*1e9))
		case num == evStep && typ == protowire.VarintType:
			base.Step = int64(v)
		case num == evFileVersion && typ == protowire.BytesType:
			base.FileVersion = string(bs)
		case num == evSummary && typ == protowire.BytesType:
			return fields(bs, func(num protowire.Number, typ protowire.Type, _ uint64, vb []byte) error {
				if num != sumValue || typ != protowire.BytesType {
					return nil
				}
				var val Event
				err := fields(vb, func(num protowire.Number, typ protowire.Type, v uint64, bs []byte) error {
					switch {
					case num == valTag && typ == protowire.BytesType:
						val.Tag = string(bs)
					case num == valSimple && typ == protowire.Fixed32Type:
						val.Value, val.HasValue = math.Float32frombits(uint32(v)), true
					}
					return nil
				})
				values = append(values, val)
				return err
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(values) == 0 {
		return []Event{base}, nil
	}
	for i := range values {
		values[i].Wall, values[i].Step, values[i].FileVersion = base.Wall, base.Step, base.FileVersion
	}
	return values, nil
}
