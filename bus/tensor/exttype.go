package tensor

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// ExtensionName is the canonical Arrow extension name of the fixed-shape
// tensor type.
const ExtensionName = "arrow.fixed_shape_tensor"

// FixedShapeTensorType is the canonical Arrow fixed-shape tensor extension
// type (https://arrow.apache.org/docs/format/CanonicalExtensions.html):
// every value is one tensor of the same shape, stored row-major as a
// FixedSizeList<value_type>[product(shape)].
type FixedShapeTensorType struct {
	arrow.ExtensionBase
	shape       []int
	dimNames    []string
	permutation []int
}

var _ arrow.ExtensionType = (*FixedShapeTensorType)(nil)

// FixedShapeTensorArray is the array type of FixedShapeTensorType; its
// Storage() is the FixedSizeList.
type FixedShapeTensorArray struct {
	array.ExtensionArrayBase
}

// NewFixedShapeTensorType returns the tensor type of value type value and
// the given shape, which must have at least one element (arrow-go has no
// zero-size fixed_size_list). dimNames and permutation are optional (nil); when set
// they must have one entry per dimension, and permutation must be a
// permutation of 0..len(shape)-1.
func NewFixedShapeTensorType(value arrow.DataType, shape []int, dimNames []string, permutation []int) (*FixedShapeTensorType, error) {
	n, err := elements(shape)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		// arrow-go refuses fixed_size_list[0].
		return nil, fmt.Errorf("%w: shape %v has no elements", ErrUnsupported, shape)
	}
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("%w: shape %v has %d elements, more than a list holds (%d)", ErrTooLarge, shape, n, math.MaxInt32)
	}
	if err := checkDims(shape, dimNames, permutation); err != nil {
		return nil, err
	}
	return &FixedShapeTensorType{
		ExtensionBase: arrow.ExtensionBase{Storage: arrow.FixedSizeListOfNonNullable(int32(n), value)},
		shape:         slices.Clone(shape),
		dimNames:      slices.Clone(dimNames),
		permutation:   slices.Clone(permutation),
	}, nil
}

// elements returns the product of shape, refusing negative dimensions and
// overflow.
func elements(shape []int) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w: shape %v has a negative dimension", ErrMalformed, shape)
		}
		if d != 0 && n > math.MaxInt64/int64(d) {
			return 0, fmt.Errorf("%w: shape %v overflows int64 elements", ErrTooLarge, shape)
		}
		n *= int64(d)
	}
	return n, nil
}

func checkDims(shape []int, dimNames []string, permutation []int) error {
	if dimNames != nil && len(dimNames) != len(shape) {
		return fmt.Errorf("%w: %d dim_names for shape %v", ErrMalformed, len(dimNames), shape)
	}
	if permutation != nil {
		if len(permutation) != len(shape) {
			return fmt.Errorf("%w: permutation %v for shape %v", ErrMalformed, permutation, shape)
		}
		seen := make([]bool, len(shape))
		for _, p := range permutation {
			if p < 0 || p >= len(shape) || seen[p] {
				return fmt.Errorf("%w: permutation %v is not a permutation of %d dimensions", ErrMalformed, permutation, len(shape))
			}
			seen[p] = true
		}
	}
	return nil
}

// Shape returns the tensor shape (do not modify).
func (t *FixedShapeTensorType) Shape() []int { return t.shape }

// DimNames returns the optional dimension names (nil when absent).
func (t *FixedShapeTensorType) DimNames() []string { return t.dimNames }

// Permutation returns the optional physical-to-logical permutation (nil
// when absent, meaning row-major in logical order).
func (t *FixedShapeTensorType) Permutation() []int { return t.permutation }

// ValueType returns the element type.
func (t *FixedShapeTensorType) ValueType() arrow.DataType {
	return t.Storage.(*arrow.FixedSizeListType).Elem()
}

// ArrayType implements arrow.ExtensionType.
func (*FixedShapeTensorType) ArrayType() reflect.Type {
	return reflect.TypeOf(FixedShapeTensorArray{})
}

// ExtensionName implements arrow.ExtensionType.
func (*FixedShapeTensorType) ExtensionName() string { return ExtensionName }

func (t *FixedShapeTensorType) String() string {
	return fmt.Sprintf("extension<%s[value_type=%s, shape=%v]>", ExtensionName, t.ValueType(), t.shape)
}

type tensorMeta struct {
	Shape       []int    `json:"shape"`
	DimNames    []string `json:"dim_names,omitempty"`
	Permutation []int    `json:"permutation,omitempty"`
}

// Serialize implements arrow.ExtensionType: {"shape":[...]} plus the
// optional dim_names and permutation.
func (t *FixedShapeTensorType) Serialize() string {
	shape := t.shape
	if shape == nil {
		shape = []int{}
	}
	b, _ := json.Marshal(tensorMeta{Shape: shape, DimNames: t.dimNames, Permutation: t.permutation})
	return string(b)
}

// Deserialize implements arrow.ExtensionType. The storage must be a
// FixedSizeList whose size is the product of the shape.
func (*FixedShapeTensorType) Deserialize(storage arrow.DataType, data string) (arrow.ExtensionType, error) {
	fsl, ok := storage.(*arrow.FixedSizeListType)
	if !ok {
		return nil, fmt.Errorf("%w: %s storage must be a fixed_size_list, not %s", ErrMalformed, ExtensionName, storage)
	}
	md, err := parseTensorMeta(data)
	if err != nil {
		return nil, err
	}
	n, err := elements(md.Shape)
	if err != nil {
		return nil, err
	}
	if n != int64(fsl.Len()) {
		return nil, fmt.Errorf("%w: %s shape %v has %d elements but the list size is %d", ErrMalformed, ExtensionName, md.Shape, n, fsl.Len())
	}
	if err := checkDims(md.Shape, md.DimNames, md.Permutation); err != nil {
		return nil, err
	}
	return &FixedShapeTensorType{
		ExtensionBase: arrow.ExtensionBase{Storage: fsl},
		shape:         md.Shape,
		dimNames:      md.DimNames,
		permutation:   md.Permutation,
	}, nil
}

func parseTensorMeta(data string) (tensorMeta, error) {
	var md tensorMeta
	dec := json.NewDecoder(strings.NewReader(data))
	if err := dec.Decode(&md); err != nil {
		return md, fmt.Errorf("%w: %s metadata %.64q: %v", ErrMalformed, ExtensionName, data, err)
	}
	if md.Shape == nil {
		return md, fmt.Errorf("%w: %s metadata %.64q has no shape", ErrMalformed, ExtensionName, data)
	}
	return md, nil
}

// ExtensionEquals implements arrow.ExtensionType.
func (t *FixedShapeTensorType) ExtensionEquals(other arrow.ExtensionType) bool {
	o, ok := other.(*FixedShapeTensorType)
	return ok && arrow.TypeEqual(t.Storage, o.Storage) &&
		slices.Equal(t.shape, o.shape) && slices.Equal(t.dimNames, o.dimNames) &&
		slices.Equal(t.permutation, o.permutation)
}

func init() {
	proto, err := NewFixedShapeTensorType(arrow.PrimitiveTypes.Float32, []int{1}, nil, nil)
	if err != nil {
		panic(err)
	}
	// Another package may have registered its own implementation of the
	// canonical type; Decode reads either (it works from the storage type
	// and the serialized metadata).
	// RegisterExtensionType fails only when the name is taken.
	_ = arrow.RegisterExtensionType(proto)
}
