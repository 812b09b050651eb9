package transformer_test

import (
	"fmt"

	"github.com/llmesh/llmesh/accel/transformer"
)

// A decoder prefills two prompts that share their first 16 tokens in one
// step (the second reuses nothing yet: blocks are shared once written),
// decodes a token for each, then a third prompt reuses the shared block.
func ExampleDecoder() {
	cfg := transformer.Config{VocabSize: 50, NCtx: 64, NEmbd: 16, NLayer: 2, NHead: 2}
	m := transformer.New(cfg, transformer.PortableKernels(), 1)
	d := transformer.NewDecoder(m, 32)

	prefix := make([]int32, 16)
	for i := range prefix {
		prefix[i] = int32(i)
	}
	a := append(append([]int32(nil), prefix...), 20, 21, 22)
	b := append(append([]int32(nil), prefix...), 30)
	res, err := d.Step([]transformer.DecodeSeq{{ID: 1, Tokens: a}, {ID: 2, Tokens: b}}, nil, 0)
	if err != nil {
		panic(err)
	}
	fmt.Println("prefill: cached", res.Cached, "reused", res.Reused, "logits", len(res.Logits), "x", len(res.Logits[0]))

	res, err = d.Step([]transformer.DecodeSeq{{ID: 1, Tokens: []int32{7}}, {ID: 2, Tokens: []int32{8}}}, nil, 0)
	if err != nil {
		panic(err)
	}
	fmt.Println("decode: cached", res.Cached)

	c := append(append([]int32(nil), prefix...), 40, 41)
	res, err = d.Step([]transformer.DecodeSeq{{ID: 3, Tokens: c}}, []uint64{1}, 0)
	if err != nil {
		panic(err)
	}
	st := d.Stats()
	fmt.Println("third prompt: reused", res.Reused, "sequences", st.Sequences, "blocks used", st.Used)
	// Output:
	// prefill: cached [19 17] reused [0 0] logits 2 x 50
	// decode: cached [20 18]
	// third prompt: reused [16] sequences 2 blocks used 4
}
