package transformer

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

// FuzzSoftTargets feeds arbitrary soft targets (they arrive from another
// process) to a distillation step: each is refused with ErrInvalidInput
// or gives a finite loss and finite gradients.
func FuzzSoftTargets(f *testing.F) {
	cfg := Config{VocabSize: 11, NCtx: 6, NEmbd: 8, NLayer: 1, NHead: 2}
	m := New(cfg, PortableKernels(), 1)
	const B, T = 1, 3
	in, tg := []int32{1, 2, 3}, []int32{2, 3, 4}
	// The header is k (1 byte), temperature and alpha (float32 bits);
	// then 8 bytes per entry: an index (int32) and a logit (float32).
	seed := func(k byte, temp, alpha float32, entries ...float32) []byte {
		b := []byte{k}
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(temp))
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(alpha))
		for i := 0; i+1 < len(entries); i += 2 {
			b = binary.LittleEndian.AppendUint32(b, uint32(int32(entries[i])))
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(entries[i+1]))
		}
		return b
	}
	f.Add(seed(1, 2, 0.5, 3, 1, 4, 2, 5, 3))
	f.Add(seed(2, 1, 1, 0, 3e38, 1, -3e38, 2, 1, 3, 2, 4, 0, 5, -1))
	f.Add(seed(2, 100, 0, 0, 1, 0, 2, 1, 1, 2, 2, 3, 3, 4, 4))
	f.Add(seed(1, 0.01, 0.3, 10, 80, 10, -80, 10, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 9 {
			return
		}
		st := &SoftTargets{
			K:           int(int8(data[0])),
			Temperature: math.Float32frombits(binary.LittleEndian.Uint32(data[1:])),
			Alpha:       math.Float32frombits(binary.LittleEndian.Uint32(data[5:])),
		}
		for b := data[9:]; len(b) >= 8; b = b[8:] {
			st.Indices = append(st.Indices, int32(binary.LittleEndian.Uint32(b)))
			st.Logits = append(st.Logits, math.Float32frombits(binary.LittleEndian.Uint32(b[4:])))
		}
		m.ZeroGrads()
		loss, err := m.DistillForwardBackward(in, tg, B, T, st)
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error %v is not ErrInvalidInput", err)
			}
			return
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			t.Fatalf("loss %v for %+v", loss, st)
		}
		for i, g := range m.Grads() {
			if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) {
				t.Fatalf("gradient %d is %v for %+v", i, g, st)
			}
		}
	})
}
