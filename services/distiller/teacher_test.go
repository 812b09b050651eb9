package distiller

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/llmesh/llmesh/bus/tensor"
)

// softTargets are n positions of k distinct ids below vocab with logits,
// best first.
func softTargets(rng *rand.Rand, n, k, vocab int) ([]int32, []float32) {
	ids, logits := make([]int32, n*k), make([]float32, n*k)
	for r := range n {
		perm := rng.Perm(vocab)
		for j := range k {
			ids[r*k+j] = int32(perm[j])
			logits[r*k+j] = float32(10-j) + rng.Float32()
		}
	}
	return ids, logits
}

func TestSoftTargetsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, shape := range [][2]int{{1, 1}, {7, 3}, {3 * 13, 17}, {64, 32}} {
		n, k := shape[0], shape[1]
		ids, logits := softTargets(rng, n, k, 50)
		payload, err := EncodeSoftTargets(n, k, ids, logits, 2.5)
		if err != nil {
			t.Fatal(err)
		}
		gotIDs, gotLogits, loss, err := DecodeSoftTargets(payload, n, k, 50)
		if err != nil {
			t.Fatalf("%d x %d: %v", n, k, err)
		}
		if diff := cmp.Diff(ids, gotIDs); diff != "" {
			t.Errorf("%d x %d ids (-sent +got):\n%s", n, k, diff)
		}
		if diff := cmp.Diff(logits, gotLogits); diff != "" || loss != 2.5 {
			t.Errorf("%d x %d logits (-sent +got), loss %v:\n%s", n, k, loss, diff)
		}
		// A reply is checked against the batch it answers.
		if _, _, _, err := DecodeSoftTargets(payload, n+1, k, 50); !errors.Is(err, ErrTeacherMessage) {
			t.Errorf("%d x %d decoded as %d positions: %v", n, k, n+1, err)
		}
		if _, _, _, err := DecodeSoftTargets(payload, n, k+1, 50); !errors.Is(err, ErrTeacherMessage) {
			t.Errorf("%d x %d decoded with k %d: %v", n, k, k+1, err)
		}
	}
}

func TestDecodeSoftTargetsRefuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, k, vocab = 5, 4, 20
	good := func() ([]int32, []float32) { return softTargets(rng, n, k, vocab) }
	enc := func(ts ...tensor.Tensor) []byte {
		p, err := tensor.Encode(ts, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := map[string]struct {
		payload func() []byte
		want    string
	}{
		"id outside the vocabulary": {func() []byte {
			ids, l := good()
			ids[7] = vocab
			p, _ := EncodeSoftTargets(n, k, ids, l, 0)
			return p
		}, "outside the vocabulary"},
		"negative id": {func() []byte {
			ids, l := good()
			ids[0] = -1
			p, _ := EncodeSoftTargets(n, k, ids, l, 0)
			return p
		}, "outside the vocabulary"},
		"repeated id": {func() []byte {
			ids, l := good()
			ids[k+1] = ids[k]
			p, _ := EncodeSoftTargets(n, k, ids, l, 0)
			return p
		}, "twice at position 1"},
		"nan logit": {func() []byte {
			ids, l := good()
			l[3] = float32(math.NaN())
			p, _ := EncodeSoftTargets(n, k, ids, l, 0)
			return p
		}, "not finite"},
		"infinite logit": {func() []byte {
			ids, l := good()
			l[n*k-1] = float32(math.Inf(-1))
			p, _ := EncodeSoftTargets(n, k, ids, l, 0)
			return p
		}, "not finite"},
		"no logits": {func() []byte {
			ids, _ := good()
			return enc(tensor.FromInt32("ids", []int{n, k}, ids))
		}, `no "logits"`},
		"ids as float": {func() []byte {
			_, l := good()
			return enc(tensor.FromFloat32("ids", []int{n, k}, l), tensor.FromFloat32("logits", []int{n, k}, l))
		}, "ids"},
		"flat shape": {func() []byte {
			ids, l := good()
			return enc(tensor.FromInt32("ids", []int{n * k}, ids), tensor.FromFloat32("logits", []int{n * k}, l))
		}, "shape"},
		"oversized": {func() []byte {
			ids, l := softTargets(rng, 4*n, k, vocab)
			return enc(tensor.FromInt32("ids", []int{4 * n, k}, ids), tensor.FromFloat32("logits", []int{4 * n, k}, l))
		}, "exceeds"},
		"bad loss": {func() []byte {
			ids, l := good()
			p, _ := tensor.Encode([]tensor.Tensor{tensor.FromInt32("ids", []int{n, k}, ids), tensor.FromFloat32("logits", []int{n, k}, l)}, map[string]string{"loss": "x"})
			return p
		}, "loss"},
		"truncated": {func() []byte {
			ids, l := good()
			p, _ := EncodeSoftTargets(n, k, ids, l, 0)
			return p[:len(p)/2]
		}, "malformed"},
		"empty": {func() []byte { return nil }, "malformed"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, _, err := DecodeSoftTargets(tc.payload(), n, k, vocab)
			if !errors.Is(err, ErrTeacherMessage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a teacher message error saying %q", err, tc.want)
			}
		})
	}
}

func TestRequestRoundTrip(t *testing.T) {
	in, tgt := []int32{1, 2, 3, 4, 5, 6}, []int32{2, 3, 4, 5, 6, 7}
	p, err := EncodeRequest(2, 3, 5, in, tgt)
	if err != nil {
		t.Fatal(err)
	}
	b, T, k, gin, gtgt, err := DecodeRequest(p, 8, 4)
	if err != nil || b != 2 || T != 3 || k != 5 || !cmp.Equal(gin, in) || !cmp.Equal(gtgt, tgt) {
		t.Fatalf("decoded %d x %d, k %d, %v, %v: %v", b, T, k, gin, gtgt, err)
	}
	for name, c := range map[string]struct {
		vocab, nctx int
		want        string
	}{
		"token outside the vocabulary": {7, 4, "outside the vocabulary 7"},
		"longer than the context":      {8, 2, "seq_len <= 2"},
		"k above the vocabulary":       {4, 4, "k \"5\""},
	} {
		if _, _, _, _, _, err := DecodeRequest(p, c.vocab, c.nctx); !errors.Is(err, ErrTeacherMessage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

// FuzzDecodeSoftTargets: any bytes either decode to exactly the asked
// shape with ids in range, distinct per position, and finite logits, or
// give a teacher message error; never a panic.
func FuzzDecodeSoftTargets(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range [][2]int{{1, 1}, {3, 2}, {6, 4}} {
		ids, l := softTargets(rng, s[0], s[1], 16)
		p, _ := EncodeSoftTargets(s[0], s[1], ids, l, 1.5)
		f.Add(p, uint8(s[0]), uint8(s[1]))
		f.Add(p[:len(p)-9], uint8(s[0]), uint8(s[1]))
	}
	req, _ := EncodeRequest(2, 3, 4, make([]int32, 6), make([]int32, 6))
	f.Add(req, uint8(6), uint8(4))
	f.Add([]byte{}, uint8(0), uint8(0))
	f.Fuzz(checkSoftTargets)
}

// checkSoftTargets is FuzzDecodeSoftTargets' property (vocabulary 16).
func checkSoftTargets(t *testing.T, payload []byte, n, k uint8) {
	ids, logits, _, err := DecodeSoftTargets(payload, int(n), int(k), 16)
	if err != nil {
		if !errors.Is(err, ErrTeacherMessage) {
			t.Fatalf("error %v does not wrap ErrTeacherMessage", err)
		}
		return
	}
	if len(ids) != int(n)*int(k) || len(logits) != len(ids) {
		t.Fatalf("%d ids, %d logits for %d x %d", len(ids), len(logits), n, k)
	}
	for r := range int(n) {
		seen := map[int32]bool{}
		for j := range int(k) {
			id, l := ids[r*int(k)+j], logits[r*int(k)+j]
			if id < 0 || id >= 16 || seen[id] || math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
				t.Fatalf("position %d: id %d, logit %v accepted", r, id, l)
			}
			seen[id] = true
		}
	}
}

// TestDecodeMutations runs the fuzz properties over a few thousand
// seeded mutations of valid messages (bytes flipped, cut, repeated), so
// that the default suite covers malformed input without the fuzzer.
func TestDecodeMutations(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	ids, l := softTargets(rng, 6, 4, 16)
	reply, _ := EncodeSoftTargets(6, 4, ids, l, 1)
	req, _ := EncodeRequest(2, 3, 4, []int32{1, 2, 3, 4, 5, 6}, []int32{2, 3, 4, 5, 6, 7})
	mutate := func(p []byte) []byte {
		m := append([]byte(nil), p...)
		switch rng.IntN(4) {
		case 0:
			for range 1 + rng.IntN(4) {
				m[rng.IntN(len(m))] ^= byte(1 + rng.IntN(255))
			}
		case 1:
			m = m[:rng.IntN(len(m))]
		case 2:
			i := rng.IntN(len(m))
			m = append(m[:i], append(bytes.Repeat([]byte{m[i]}, 1+rng.IntN(64)), m[i:]...)...)
		case 3:
			i := rng.IntN(len(m) - 4)
			binary.LittleEndian.PutUint32(m[i:], rng.Uint32())
		}
		return m
	}
	accepted := 0
	for range 3000 {
		checkSoftTargets(t, mutate(reply), 6, 4)
		if _, _, _, err := DecodeSoftTargets(mutate(reply), 6, 4, 16); err == nil {
			accepted++
		}
		checkRequest(t, mutate(req))
	}
	t.Logf("%d of 3000 mutated replies still decoded (flips inside the data)", accepted)
}

// FuzzDecodeRequest: a request decodes to a batch inside the limits or
// gives a teacher message error; never a panic.
func FuzzDecodeRequest(f *testing.F) {
	p, _ := EncodeRequest(2, 3, 4, []int32{1, 2, 3, 4, 5, 6}, []int32{2, 3, 4, 5, 6, 7})
	f.Add(p)
	f.Add(p[:len(p)/3])
	ids, l := softTargets(rand.New(rand.NewPCG(7, 8)), 2, 2, 8)
	r, _ := EncodeSoftTargets(2, 2, ids, l, 0)
	f.Add(r)
	f.Fuzz(checkRequest)
}

// checkRequest is FuzzDecodeRequest's property (vocabulary 8, context 4).
func checkRequest(t *testing.T, payload []byte) {
	b, T, k, in, tgt, err := DecodeRequest(payload, 8, 4)
	if err != nil {
		if !errors.Is(err, ErrTeacherMessage) {
			t.Fatalf("error %v does not wrap ErrTeacherMessage", err)
		}
		return
	}
	if b < 1 || T < 1 || T > 4 || k < 1 || k > 8 || len(in) != b*T || len(tgt) != b*T {
		t.Fatalf("decoded %d x %d, k %d, %d inputs, %d targets", b, T, k, len(in), len(tgt))
	}
	for _, id := range append(in, tgt...) {
		if id < 0 || id >= 8 {
			t.Fatalf("token %d accepted", id)
		}
	}
}
