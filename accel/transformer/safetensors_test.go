package transformer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func rawFile(header string, data []byte) []byte {
	var b bytes.Buffer
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], uint64(len(header)))
	b.Write(l[:])
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

func TestSafetensorsRoundTrip(t *testing.T) {
	ts := []Tensor{
		F32Tensor("a", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		{Name: "empty", DType: "I32", Shape: []int{0, 4}, Data: []byte{}},
		{Name: "b", DType: "U8", Shape: []int{3}, Data: []byte{7, 8, 9}},
		I8Tensor("q", []int{2, 2}, []int8{-128, -1, 0, 127}),
	}
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, ts, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	st, err := ReadSafetensors(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"k": "v"}, st.Metadata); diff != "" {
		t.Fatal(diff)
	}
	for _, want := range ts {
		got, ok := st.Tensor(want.Name)
		if !ok {
			t.Fatalf("tensor %q missing", want.Name)
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); diff != "" {
			t.Fatal(diff)
		}
	}
	vals := make([]float32, 6)
	a, _ := st.Tensor("a")
	if err := a.Float32s(vals); err != nil || vals[5] != 6 {
		t.Fatalf("Float32s = %v, %v", vals, err)
	}
	q, _ := st.Tensor("q")
	i8 := make([]int8, 4)
	if err := q.Int8s(i8); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int8{-128, -1, 0, 127}, i8); diff != "" {
		t.Fatal(diff)
	}
	if err := q.Int8s(make([]int8, 3)); !errors.Is(err, ErrSafetensors) {
		t.Fatalf("Int8s into 3 values: %v, want ErrSafetensors", err)
	}
	if err := a.Int8s(make([]int8, 6)); !errors.Is(err, ErrSafetensors) {
		t.Fatalf("Int8s of an F32 tensor: %v, want ErrSafetensors", err)
	}
}

func TestReadSafetensorsErrors(t *testing.T) {
	data8 := make([]byte, 8)
	tests := map[string]struct {
		file []byte
		want string
	}{
		"short":           {[]byte{1, 2}, "shorter than"},
		"header too big":  {binary.LittleEndian.AppendUint64(nil, 1<<40), "exceeds"},
		"header past end": {binary.LittleEndian.AppendUint64(nil, 10), "exceeds the 0 bytes"},
		"not object":      {rawFile(`[1]`, nil), "not a JSON object"},
		"bad dtype":       {rawFile(`{"a":{"dtype":"X9","shape":[2],"data_offsets":[0,8]}}`, data8), "unknown dtype"},
		"size mismatch":   {rawFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, data8), "needs 12 bytes"},
		"out of range":    {rawFile(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, data8), "outside"},
		"reversed":        {rawFile(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, data8), "outside"},
		"negative dim":    {rawFile(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, data8), "negative"},
		"overflow":        {rawFile(`{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, data8), "overflows"},
		"overlap":         {rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, data8), "overlaps"},
		"duplicate":       {rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, data8), "twice"},
		"unknown field":   {rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}}`, data8), "unknown field"},
		"bad metadata":    {rawFile(`{"__metadata__":{"a":1}}`, nil), "string map"},
		"trailing":        {rawFile(`{} {}`, nil), "trailing"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ReadSafetensors(tc.file)
			if !errors.Is(err, ErrSafetensors) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrSafetensors containing %q", err, tc.want)
			}
		})
	}
}

func FuzzReadSafetensors(f *testing.F) {
	var buf bytes.Buffer
	WriteSafetensors(&buf, []Tensor{F32Tensor("a", []int{2}, []float32{1, 2}), {Name: "b", DType: "BF16", Shape: []int{1}, Data: []byte{0, 0x3f}}}, map[string]string{"step": "3"})
	f.Add(buf.Bytes())
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add([]byte{})
	buf.Reset()
	WriteSafetensors(&buf, []Tensor{I8Tensor("w", []int{2, 3}, []int8{1, -2, 3, -4, 5, -128}), F32Tensor("w.scale", []int{3}, []float32{0.1, 0.2, 0.3})},
		map[string]string{MetaQuantization: QuantInt8PerChannel})
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ReadSafetensors(data)
		if err != nil {
			return
		}
		for _, tn := range st.Tensors {
			if tn.DType == "I8" {
				if err := tn.Int8s(make([]int8, len(tn.Data))); err != nil {
					t.Fatalf("I8 tensor %q that decoded: %v", tn.Name, err)
				}
			}
		}
		// A decoded file is a checkpoint candidate: reading it as one
		// (quantized or not) must fail cleanly or succeed, never panic.
		// Only configs the file could hold (a byte per parameter at
		// least), so that the fuzzer does not allocate huge models.
		if cfg, err := ParseConfig([]byte(st.Metadata[MetaConfig])); err == nil && cfg.withDefaults().paramCount() <= int64(len(data)) {
			_, _ = ReadCheckpoint(data, Config{}, nil)
		}
		var out bytes.Buffer
		if err := WriteSafetensors(&out, st.Tensors, st.Metadata); err != nil {
			t.Fatalf("re-encoding a file that decoded: %v", err)
		}
		st2, err := ReadSafetensors(out.Bytes())
		if err != nil {
			t.Fatalf("decoding a re-encoded file: %v", err)
		}
		if len(st2.Tensors) != len(st.Tensors) {
			t.Fatalf("%d tensors after round trip, want %d", len(st2.Tensors), len(st.Tensors))
		}
	})
}

func TestCheckpointRoundTrip(t *testing.T) {
	for _, cfg := range []Config{tinyConfig("", ""), tinyConfig(PositionsRoPE, NormRMSNorm)} {
		m := New(cfg, nil, 9)
		opt := NewAdamW(AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, GradClip: 1}, m)
		r := rand.New(rand.NewPCG(2, 3))
		in, tg := randTokens(r, 12, 11), randTokens(r, 12, 11)
		m.ZeroGrads()
		m.ForwardBackward(in, tg, 2, 6)
		opt.Step(m.ParamData(), m.Grads(), 1e-2)

		var buf bytes.Buffer
		st := opt.State()
		if err := WriteCheckpoint(&buf, m, opt.StepCount(), &st); err != nil {
			t.Fatal(err)
		}
		ck, err := ReadCheckpoint(buf.Bytes(), Config{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ck.Step != 1 || ck.Optimizer == nil {
			t.Fatalf("step %d, optimizer %v", ck.Step, ck.Optimizer != nil)
		}
		seqs := [][]int32{in[:6], in[6:9]}
		want, _ := m.NextLogits(seqs)
		got, _ := ck.Model.NextLogits(seqs)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("logits differ after reload:\n%s", diff)
		}
		// One more identical step on both must give identical weights.
		opt2 := NewAdamW(opt.Config, ck.Model)
		if err := opt2.SetState(*ck.Optimizer); err != nil {
			t.Fatal(err)
		}
		for _, mm := range []*Model{m, ck.Model} {
			mm.ZeroGrads()
			mm.ForwardBackward(in, tg, 2, 6)
		}
		n1 := opt.Step(m.ParamData(), m.Grads(), 1e-2)
		n2 := opt2.Step(ck.Model.ParamData(), ck.Model.Grads(), 1e-2)
		if n1 != n2 || !cmp.Equal(m.ParamData(), ck.Model.ParamData()) || opt2.StepCount() != 2 {
			t.Fatalf("next step differs after restoring optimizer state (norms %v %v)", n1, n2)
		}
	}
}

func TestReadCheckpointMismatch(t *testing.T) {
	m := New(tinyConfig("", ""), nil, 1)
	var buf bytes.Buffer
	if err := WriteCheckpoint(&buf, m, 0, nil); err != nil {
		t.Fatal(err)
	}
	other := tinyConfig("", "")
	other.NCtx = 7
	_, err := ReadCheckpoint(buf.Bytes(), other, nil)
	if !errors.Is(err, ErrSafetensors) || !strings.Contains(err.Error(), `"wpe"`) {
		t.Fatalf("err = %v, want a shape error naming wpe", err)
	}
	rope := tinyConfig(PositionsRoPE, "")
	if _, err := ReadCheckpoint(buf.Bytes(), rope, nil); err == nil || !strings.Contains(err.Error(), `"wpe"`) {
		t.Fatalf("err = %v, want an unknown-tensor error naming wpe", err)
	}
}
