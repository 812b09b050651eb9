package tensor

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// DType is the element type of a tensor.
type DType uint8

// The dtypes a tensor may have. The zero DType is invalid.
const (
	Float32  DType = iota + 1 // Arrow float32
	BFloat16                  // Arrow uint16 bits, field metadata llmesh.dtype=bfloat16
	Float16                   // Arrow float16 (halffloat)
	Float64                   // Arrow float64
	Int8                      // Arrow int8
	Uint8                     // Arrow uint8
	Int32                     // Arrow int32
	Int64                     // Arrow int64
	Uint16                    // Arrow uint16 (token ids)
	Uint32                    // Arrow uint32 (token ids)
)

// dtypeMetaKey is the field metadata key that marks a uint16 column as
// bfloat16.
const dtypeMetaKey = "llmesh.dtype"

var dtypeInfo = [...]struct {
	name string
	size int
	typ  arrow.DataType
}{
	Float32:  {"float32", 4, arrow.PrimitiveTypes.Float32},
	BFloat16: {"bfloat16", 2, arrow.PrimitiveTypes.Uint16},
	Float16:  {"float16", 2, arrow.FixedWidthTypes.Float16},
	Float64:  {"float64", 8, arrow.PrimitiveTypes.Float64},
	Int8:     {"int8", 1, arrow.PrimitiveTypes.Int8},
	Uint8:    {"uint8", 1, arrow.PrimitiveTypes.Uint8},
	Int32:    {"int32", 4, arrow.PrimitiveTypes.Int32},
	Int64:    {"int64", 8, arrow.PrimitiveTypes.Int64},
	Uint16:   {"uint16", 2, arrow.PrimitiveTypes.Uint16},
	Uint32:   {"uint32", 4, arrow.PrimitiveTypes.Uint32},
}

// DTypes lists every valid dtype.
func DTypes() []DType {
	return []DType{Float32, BFloat16, Float16, Float64, Int8, Uint8, Int32, Int64, Uint16, Uint32}
}

// Valid reports whether d is one of the defined dtypes.
func (d DType) Valid() bool { return d > 0 && int(d) < len(dtypeInfo) }

// String returns the dtype's name, e.g. "float32".
func (d DType) String() string {
	if !d.Valid() {
		return fmt.Sprintf("dtype(%d)", uint8(d))
	}
	return dtypeInfo[d].name
}

// Size returns the size of one element in bytes (0 for an invalid dtype).
func (d DType) Size() int {
	if !d.Valid() {
		return 0
	}
	return dtypeInfo[d].size
}

// ParseDType returns the dtype named s ("float32", "bfloat16", ...).
func ParseDType(s string) (DType, error) {
	for _, d := range DTypes() {
		if dtypeInfo[d].name == s {
			return d, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown dtype %q", ErrDType, s)
}

func (d DType) arrowType() arrow.DataType { return dtypeInfo[d].typ }

// dtypeFromArrow maps a list value type (and the field's llmesh.dtype
// marker) back to a DType.
func dtypeFromArrow(t arrow.DataType, marker string) (DType, error) {
	var d DType
	switch t.ID() {
	case arrow.FLOAT32:
		d = Float32
	case arrow.FLOAT16:
		d = Float16
	case arrow.FLOAT64:
		d = Float64
	case arrow.INT8:
		d = Int8
	case arrow.UINT8:
		d = Uint8
	case arrow.INT32:
		d = Int32
	case arrow.INT64:
		d = Int64
	case arrow.UINT16:
		d = Uint16
		if marker == "bfloat16" {
			d = BFloat16
		}
	case arrow.UINT32:
		d = Uint32
	default:
		return 0, fmt.Errorf("%w: value type %s is not a tensor dtype", ErrUnsupported, t)
	}
	if marker != "" && marker != d.String() {
		return 0, fmt.Errorf("%w: %s marker %q on a %s column", ErrMalformed, dtypeMetaKey, marker, t)
	}
	return d, nil
}
