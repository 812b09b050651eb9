package tensor_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/llmesh/llmesh/bus/tensor"
)

// AppendEncode appends exactly what Encode returns, keeps dst's prefix, and
// reuses dst's memory when it is large enough.
func TestAppendEncode(t *testing.T) {
	vals := []float32{1, -2, 3.5, 0, 7}
	ts := []tensor.Tensor{tensor.FromFloat32("g", []int{5}, vals)}
	meta := map[string]string{"seq": "3"}
	want, err := tensor.Encode(ts, meta)
	if err != nil {
		t.Fatal(err)
	}
	prefix := []byte("head")
	got, err := tensor.AppendEncode(slices.Clone(prefix), ts, meta)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], want) {
		t.Fatalf("AppendEncode = %d bytes, want the prefix and Encode's %d bytes", len(got), len(want))
	}
	buf := make([]byte, 0, len(want)+4096) // room for the size estimate too
	again, err := tensor.AppendEncode(buf, ts, meta)
	if err != nil {
		t.Fatal(err)
	}
	if &again[0] != &buf[:1][0] {
		t.Error("AppendEncode allocated although dst had room")
	}
	set, err := tensor.Decode(again, tensor.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	back, err := tensor.Float32s(set.Tensors[0])
	if err != nil || !slices.Equal(back, vals) || set.Meta["seq"] != "3" {
		t.Fatalf("decoded %v %v meta %v", back, err, set.Meta)
	}
	// A bad tensor leaves dst as it was.
	bad := []tensor.Tensor{{Name: "", DType: tensor.Float32, Shape: []int{1}, Data: make([]byte, 4)}}
	if out, err := tensor.AppendEncode(prefix, bad, nil); err == nil || !bytes.Equal(out, prefix) {
		t.Fatalf("AppendEncode(bad) = %q, %v; want the prefix and an error", out, err)
	}
}
