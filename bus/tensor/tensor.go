package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Tensor is one named, dense, row-major tensor. Data holds the elements in
// little-endian byte order; len(Data) must be product(Shape)*DType.Size().
// A Tensor returned by Decode aliases the decoded payload (see the package
// documentation).
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
	// DimNames optionally names each dimension (the extension type's
	// dim_names).
	DimNames []string
}

// Elements returns the number of elements, product(Shape) (1 for a scalar
// of shape []), or -1 when the shape is invalid.
func (t Tensor) Elements() int64 {
	n, err := elements(t.Shape)
	if err != nil {
		return -1
	}
	return n
}

// Clone returns a deep copy of t that shares no memory with it.
func (t Tensor) Clone() Tensor {
	t.Shape = slices.Clone(t.Shape)
	t.Data = slices.Clone(t.Data)
	t.DimNames = slices.Clone(t.DimNames)
	return t
}

// Validate checks that t has a name, a valid dtype and a shape that agrees
// with len(Data).
func (t Tensor) Validate() error {
	if t.Name == "" {
		return fmt.Errorf("%w: tensor with shape %v has no name", ErrMalformed, t.Shape)
	}
	if !t.DType.Valid() {
		return fmt.Errorf("%w: tensor %q: %s", ErrDType, t.Name, t.DType)
	}
	n, err := elements(t.Shape)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	want, ok := mulBytes(n, t.DType.Size())
	if !ok || want != int64(len(t.Data)) {
		return fmt.Errorf("%w: tensor %q: shape %v of %s needs %d bytes, data has %d", ErrMalformed, t.Name, t.Shape, t.DType, want, len(t.Data))
	}
	if t.DimNames != nil && len(t.DimNames) != len(t.Shape) {
		return fmt.Errorf("%w: tensor %q: %d dim names for shape %v", ErrMalformed, t.Name, len(t.DimNames), t.Shape)
	}
	return nil
}

func mulBytes(n int64, size int) (int64, bool) {
	if n > math.MaxInt64/int64(size) {
		return 0, false
	}
	return n * int64(size), true
}

// Set is a decoded payload: its tensors in column order and its metadata.
type Set struct {
	Tensors []Tensor
	Meta    map[string]string
}

// Get returns the tensor called name.
func (s *Set) Get(name string) (Tensor, bool) {
	for _, t := range s.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// Limits bounds what Decode accepts. A zero field takes its default.
type Limits struct {
	MaxTensors     int   // columns per payload; default 4096
	MaxRank        int   // dimensions per tensor; default 16
	MaxTensorBytes int64 // bytes of one tensor; default 4 GiB
	MaxTotalBytes  int64 // bytes of all tensors together; default 16 GiB
	MaxMetaBytes   int64 // bytes of one IPC message's flatbuffer metadata; default 16 MiB
}

// DefaultLimits are the limits a zero Limits stands for.
var DefaultLimits = Limits{
	MaxTensors:     4096,
	MaxRank:        16,
	MaxTensorBytes: 4 << 30,
	MaxTotalBytes:  16 << 30,
	MaxMetaBytes:   16 << 20,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxTensors > 0 {
		d.MaxTensors = l.MaxTensors
	}
	if l.MaxRank > 0 {
		d.MaxRank = l.MaxRank
	}
	if l.MaxTensorBytes > 0 {
		d.MaxTensorBytes = l.MaxTensorBytes
	}
	if l.MaxTotalBytes > 0 {
		d.MaxTotalBytes = l.MaxTotalBytes
	}
	if l.MaxMetaBytes > 0 {
		d.MaxMetaBytes = l.MaxMetaBytes
	}
	return d
}

// Option configures Encode and Decode.
type Option func(*config)

type config struct {
	mem memory.Allocator
}

// WithAllocator sets the allocator arrow-go uses for its own bookkeeping
// (default memory.DefaultAllocator). Tensor data is never allocated from
// it: Encode writes into a Go slice and Decode aliases the payload.
func WithAllocator(mem memory.Allocator) Option {
	return func(c *config) { c.mem = mem }
}

func newConfig(opts []Option) config {
	c := config{mem: memory.DefaultAllocator}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// FormatBytes renders n as "64 MiB" when it is a whole number of KiB, MiB
// or GiB, and as "n bytes" otherwise.
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// ---- constructors and typed views ----

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

type number interface {
	~float32 | ~float64 | ~int8 | ~uint8 | ~int32 | ~int64 | ~uint16 | ~uint32
}

// asBytes returns v's memory as little-endian bytes: an alias on a
// little-endian host, a copy otherwise.
func asBytes[T number](v []T) []byte {
	if len(v) == 0 {
		return []byte{}
	}
	size := int(unsafe.Sizeof(v[0]))
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*size)
	}
	out := make([]byte, len(v)*size)
	for i, x := range v {
		putLE(out[i*size:], x)
	}
	return out
}

func putLE[T number](b []byte, x T) {
	switch v := any(x).(type) {
	case float32:
		binary.LittleEndian.PutUint32(b, math.Float32bits(v))
	case float64:
		binary.LittleEndian.PutUint64(b, math.Float64bits(v))
	case int8:
		b[0] = byte(v)
	case uint8:
		b[0] = v
	case int32:
		binary.LittleEndian.PutUint32(b, uint32(v))
	case int64:
		binary.LittleEndian.PutUint64(b, uint64(v))
	case uint16:
		binary.LittleEndian.PutUint16(b, v)
	case uint32:
		binary.LittleEndian.PutUint32(b, v)
	}
}

func getLE[T number](b []byte) T {
	var z T
	switch any(z).(type) {
	case float32:
		return T(math.Float32frombits(binary.LittleEndian.Uint32(b)))
	case float64:
		return T(math.Float64frombits(binary.LittleEndian.Uint64(b)))
	case int8, uint8:
		return T(b[0])
	case int32, uint32:
		return T(binary.LittleEndian.Uint32(b))
	case int64:
		return T(binary.LittleEndian.Uint64(b))
	case uint16:
		return T(binary.LittleEndian.Uint16(b))
	}
	return z
}

// view returns t.Data as []T: an alias when the host is little-endian and
// Data is aligned for T, a copy otherwise.
func view[T number](t Tensor, want ...DType) ([]T, error) {
	if !slices.Contains(want, t.DType) {
		return nil, fmt.Errorf("%w: tensor %q is %s, not %s", ErrDType, t.Name, t.DType, want[0])
	}
	var z T
	size := int(unsafe.Sizeof(z))
	if len(t.Data)%size != 0 {
		return nil, fmt.Errorf("%w: tensor %q: %d bytes is not a whole number of %s", ErrMalformed, t.Name, len(t.Data), t.DType)
	}
	n := len(t.Data) / size
	if n == 0 {
		return []T{}, nil
	}
	p := unsafe.Pointer(unsafe.SliceData(t.Data))
	if littleEndian && uintptr(p)%unsafe.Alignof(z) == 0 {
		return unsafe.Slice((*T)(p), n), nil
	}
	out := make([]T, n)
	for i := range out {
		out[i] = getLE[T](t.Data[i*size:])
	}
	return out, nil
}

// Float32s returns t's elements; t must be Float32. The slice aliases
// t.Data when aligned (writes go through to it) and is a copy otherwise.
func Float32s(t Tensor) ([]float32, error) { return view[float32](t, Float32) }

// Float64s is Float32s for Float64 tensors.
func Float64s(t Tensor) ([]float64, error) { return view[float64](t, Float64) }

// Int8s is Float32s for Int8 tensors.
func Int8s(t Tensor) ([]int8, error) { return view[int8](t, Int8) }

// Uint8s is Float32s for Uint8 tensors.
func Uint8s(t Tensor) ([]uint8, error) { return view[uint8](t, Uint8) }

// Int32s is Float32s for Int32 tensors.
func Int32s(t Tensor) ([]int32, error) { return view[int32](t, Int32) }

// Int64s is Float32s for Int64 tensors.
func Int64s(t Tensor) ([]int64, error) { return view[int64](t, Int64) }

// Uint16s is Float32s for Uint16, BFloat16 and Float16 tensors (the raw
// 16-bit patterns of the latter two).
func Uint16s(t Tensor) ([]uint16, error) { return view[uint16](t, Uint16, BFloat16, Float16) }

// Uint32s is Float32s for Uint32 tensors.
func Uint32s(t Tensor) ([]uint32, error) { return view[uint32](t, Uint32) }

// FromFloat32 returns a Float32 tensor whose Data aliases v (on
// little-endian hosts). Shape is not checked here; Encode and Validate do.
func FromFloat32(name string, shape []int, v []float32) Tensor {
	return Tensor{Name: name, DType: Float32, Shape: shape, Data: asBytes(v)}
}

// FromFloat64 is FromFloat32 for float64.
func FromFloat64(name string, shape []int, v []float64) Tensor {
	return Tensor{Name: name, DType: Float64, Shape: shape, Data: asBytes(v)}
}

// FromBFloat16 is FromFloat32 for bfloat16 values given as their bits.
func FromBFloat16(name string, shape []int, bits []uint16) Tensor {
	return Tensor{Name: name, DType: BFloat16, Shape: shape, Data: asBytes(bits)}
}

// FromInt8 is FromFloat32 for int8.
func FromInt8(name string, shape []int, v []int8) Tensor {
	return Tensor{Name: name, DType: Int8, Shape: shape, Data: asBytes(v)}
}

// FromUint8 is FromFloat32 for uint8.
func FromUint8(name string, shape []int, v []uint8) Tensor {
	return Tensor{Name: name, DType: Uint8, Shape: shape, Data: asBytes(v)}
}

// FromInt32 is FromFloat32 for int32.
func FromInt32(name string, shape []int, v []int32) Tensor {
	return Tensor{Name: name, DType: Int32, Shape: shape, Data: asBytes(v)}
}

// FromInt64 is FromFloat32 for int64.
func FromInt64(name string, shape []int, v []int64) Tensor {
	return Tensor{Name: name, DType: Int64, Shape: shape, Data: asBytes(v)}
}

// FromUint16 is FromFloat32 for uint16.
func FromUint16(name string, shape []int, v []uint16) Tensor {
	return Tensor{Name: name, DType: Uint16, Shape: shape, Data: asBytes(v)}
}

// FromUint32 is FromFloat32 for uint32.
func FromUint32(name string, shape []int, v []uint32) Tensor {
	return Tensor{Name: name, DType: Uint32, Shape: shape, Data: asBytes(v)}
}

// BFloat16FromFloat32 converts f to bfloat16 bits, rounding to nearest even.
func BFloat16FromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	if f != f { // NaN: keep it a quiet NaN
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// BFloat16ToFloat32 widens bfloat16 bits to float32 exactly.
func BFloat16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
