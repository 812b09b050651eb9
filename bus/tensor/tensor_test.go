package tensor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/go-cmp/cmp"
)

func randomTensor(r *rand.Rand, name string, dt DType, shape []int) Tensor {
	n, _ := elements(shape)
	data := make([]byte, int(n)*dt.Size())
	for i := range data {
		data[i] = byte(r.UintN(256))
	}
	return Tensor{Name: name, DType: dt, Shape: shape, Data: data}
}

func TestRoundTrip(t *testing.T) {
	shapes := map[string][]int{
		"scalar": {},
		"vector": {7},
		"odd":    {3, 5, 7},
		"ones":   {1, 1, 1, 1},
		"wide":   {1, 1025},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for name, shape := range shapes {
		t.Run(name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			var in []Tensor
			for _, dt := range DTypes() {
				in = append(in, randomTensor(r, dt.String(), dt, shape))
			}
			in[0].DimNames = make([]string, len(shape))
			for i := range shape {
				in[0].DimNames[i] = string(rune('a' + i))
			}
			meta := map[string]string{"name": "grads", "step": "12", "rank": "3"}
			payload, err := Encode(in, meta, WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			set, err := Decode(payload, Limits{}, WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			if len(in[0].DimNames) == 0 {
				in[0].DimNames = nil
			}
			for i := range in {
				if len(set.Tensors[i].DimNames) == 0 {
					set.Tensors[i].DimNames = nil
				}
			}
			if diff := cmp.Diff(in, set.Tensors, cmp.Comparer(func(a, b []int) bool { return len(a) == len(b) && (len(a) == 0 || cmp.Equal(a, b)) })); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(meta, set.Meta); diff != "" {
				t.Errorf("meta (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeAliasesPayload(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	vals := make([]float32, 1000)
	for i := range vals {
		vals[i] = float32(i) / 3
	}
	payload, err := Encode([]Tensor{FromFloat32("w", []int{10, 100}, vals), FromInt32("ids", []int{3}, []int32{1, 2, 3})}, nil, WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Decode(payload, Limits{}, WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range set.Tensors {
		if !within(ts.Data, payload) {
			t.Errorf("tensor %q: data at %p is not inside the payload [%p, +%d)", ts.Name, unsafe.SliceData(ts.Data), unsafe.SliceData(payload), len(payload))
		}
	}
	w, _ := set.Get("w")
	f, err := Float32s(w)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(vals, f); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	if unsafe.Pointer(unsafe.SliceData(f)) != unsafe.Pointer(unsafe.SliceData(w.Data)) {
		t.Errorf("Float32s copied an aligned tensor")
	}
	// Writing through the view shows in the payload: it is the payload.
	f[0] = 42
	again, err := Decode(payload, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	w2, _ := again.Get("w")
	if g, _ := Float32s(w2); g[0] != 42 {
		t.Errorf("decoded tensor does not alias the payload")
	}
}

func TestTypedViews(t *testing.T) {
	u32 := FromUint32("t", []int{3}, []uint32{1, 1 << 31, 7})
	if _, err := Float32s(u32); !errors.Is(err, ErrDType) {
		t.Errorf("Float32s(uint32) err = %v, want ErrDType", err)
	}
	got, err := Uint32s(u32)
	if err != nil || !cmp.Equal(got, []uint32{1, 1 << 31, 7}) {
		t.Errorf("Uint32s = %v, %v", got, err)
	}
	// Unaligned data is copied, not aliased.
	buf := make([]byte, 13)
	copy(buf[1:], u32.Data)
	un := Tensor{Name: "u", DType: Uint32, Shape: []int{3}, Data: buf[1:13]}
	got, err = Uint32s(un)
	if err != nil || !cmp.Equal(got, []uint32{1, 1 << 31, 7}) {
		t.Errorf("unaligned Uint32s = %v, %v", got, err)
	}
	if bf := BFloat16ToFloat32(BFloat16FromFloat32(1.5)); bf != 1.5 {
		t.Errorf("bfloat16 1.5 -> %v", bf)
	}
}

func TestEncodeRejects(t *testing.T) {
	tests := map[string]struct {
		in   []Tensor
		want error
	}{
		"shape disagrees": {[]Tensor{FromFloat32("a", []int{2, 2}, []float32{1, 2, 3})}, ErrMalformed},
		"no name":         {[]Tensor{FromFloat32("", []int{1}, []float32{1})}, ErrMalformed},
		"duplicate":       {[]Tensor{FromFloat32("a", []int{1}, []float32{1}), FromFloat32("a", []int{1}, []float32{1})}, ErrMalformed},
		"bad dtype":       {[]Tensor{{Name: "a", Shape: []int{1}, Data: []byte{1}}}, ErrDType},
		"negative dim":    {[]Tensor{{Name: "a", DType: Int8, Shape: []int{-1}}}, ErrMalformed},
		"no elements":     {[]Tensor{{Name: "a", DType: Int8, Shape: []int{0, 3}, Data: []byte{}}}, ErrUnsupported},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Encode(tc.in, nil); !errors.Is(err, tc.want) {
				t.Errorf("Encode err = %v, want %v", err, tc.want)
			}
		})
	}
}

func validPayload(t testing.TB) []byte {
	t.Helper()
	p, err := Encode([]Tensor{
		FromFloat32("w", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		FromBFloat16("h", []int{2}, []uint16{0x3f80, 0x4000}),
		FromUint32("ids", []int{4}, []uint32{9, 8, 7, 6}),
	}, map[string]string{"step": "1"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDecodeTruncated(t *testing.T) {
	p := validPayload(t)
	for n := range len(p) - 8 { // the last 8 bytes are the end-of-stream marker
		if _, err := Decode(p[:n], Limits{}); err == nil {
			t.Fatalf("Decode of %d of %d bytes succeeded", n, len(p))
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("Decode of %d bytes: %v, want ErrMalformed", n, err)
		}
	}
}

func TestDecodeLyingShape(t *testing.T) {
	p := validPayload(t)
	lie := bytes.Replace(p, []byte(`{"shape":[2,3]}`), []byte(`{"shape":[2,4]}`), 1)
	if bytes.Equal(lie, p) {
		t.Fatal("shape metadata not found in payload")
	}
	_, err := Decode(lie, Limits{})
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "[2 4]") {
		t.Errorf("Decode lying shape: %v", err)
	}
}

// writeRaw writes a one-row record of arr under field f with arrow-go's
// own writer, to build payloads Encode refuses to.
func writeRaw(t *testing.T, f arrow.Field, arr arrow.Array) []byte {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{f}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{arr}, 1)
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeShortBuffer(t *testing.T) {
	// A [3 5] float32 tensor has a 60-byte value buffer; make the record
	// batch claim 40 bytes.
	p, err := Encode([]Tensor{FromFloat32("short", []int{3, 5}, make([]float32, 15))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pattern := binary.LittleEndian.AppendUint64(make([]byte, 8), 60)
	i := bytes.Index(p, pattern)
	if i < 0 || bytes.Count(p, pattern) != 1 {
		t.Fatal("buffer length not found once in payload")
	}
	binary.LittleEndian.PutUint64(p[i+8:], 40)
	_, err = Decode(p, Limits{})
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("Decode short buffer: %v, want ErrMalformed", err)
	}
	t.Logf("short buffer: %v", err)
}

func TestDecodeUnsupportedColumn(t *testing.T) {
	b := array.NewInt64Builder(memory.DefaultAllocator)
	b.Append(1)
	arr := b.NewArray()
	defer arr.Release()
	p := writeRaw(t, arrow.Field{Name: "plain", Type: arrow.PrimitiveTypes.Int64}, arr)
	if _, err := Decode(p, Limits{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Decode int64 column: %v, want ErrUnsupported", err)
	}
}

func TestDecodeLimits(t *testing.T) {
	wte := FromFloat32("wte", []int{64, 48}, make([]float32, 64*48))
	p, err := Encode([]Tensor{wte, FromInt8("b", []int{3}, []int8{1, 2, 3})}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		lim  Limits
		want string
	}{
		"tensor bytes": {Limits{MaxTensorBytes: 8 << 10}, `tensor "wte": shape [64 48] exceeds 8 KiB`},
		"total bytes":  {Limits{MaxTotalBytes: 12289}, `tensors total 12291 bytes, exceeding 12289 bytes`},
		"tensors":      {Limits{MaxTensors: 1}, `payload has 2 tensors, limit 1`},
		"rank":         {Limits{MaxRank: 1}, `tensor "wte": rank 2 exceeds 1`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(p, tc.lim)
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decode err = %v, want ErrTooLarge saying %q", err, tc.want)
			}
		})
	}
}

func TestExtensionTypeSerialize(t *testing.T) {
	typ, err := NewFixedShapeTensorType(arrow.PrimitiveTypes.Int8, []int{2, 5, 4}, []string{"C", "H", "W"}, []int{0, 2, 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := typ.Serialize(), `{"shape":[2,5,4],"dim_names":["C","H","W"],"permutation":[0,2,1]}`; got != want {
		t.Errorf("Serialize = %s, want %s", got, want)
	}
	back, err := typ.Deserialize(typ.StorageType(), typ.Serialize())
	if err != nil || !typ.ExtensionEquals(back) {
		t.Errorf("Deserialize = %v, %v", back, err)
	}
	if _, err := typ.Deserialize(arrow.FixedSizeListOf(39, arrow.PrimitiveTypes.Int8), typ.Serialize()); !errors.Is(err, ErrMalformed) {
		t.Errorf("Deserialize with list size 39: %v, want ErrMalformed", err)
	}
	if got := arrow.GetExtensionType(ExtensionName); got == nil {
		t.Errorf("%s is not registered", ExtensionName)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(validPayload(f))
	p, _ := Encode([]Tensor{FromInt8("x", []int{}, []int8{5})}, nil)
	f.Add(p)
	p, _ = Encode(nil, map[string]string{"k": "v"})
	f.Add(p)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		set, err := Decode(b, Limits{MaxTotalBytes: 1 << 20})
		if err != nil {
			return
		}
		for _, ts := range set.Tensors {
			if err := ts.Validate(); err != nil {
				t.Fatalf("decoded invalid tensor: %v", err)
			}
		}
	})
}
