package engine

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/sampling"
)

// Multi-step decoding picks exactly the tokens that one step at a time
// with an argmax would, stops at stop tokens and at the context, and
// leaves the cache holding every returned token but the last.
func TestMultiStepMatchesSingleSteps(t *testing.T) {
	ctx := context.Background()
	cfg := []byte(`{"vocab_size":37,"n_ctx":40,"n_embd":16,"n_layer":2,"n_head":2}`)
	multi, single := New("cpu", nil), New("cpu", nil)
	for _, e := range []*Engine{multi, single} {
		if _, err := e.LoadModel(ctx, accel.LoadRequest{ModelID: "m", ConfigJSON: cfg, Seed: 4}); err != nil {
			t.Fatal(err)
		}
	}
	prompts := [][]int32{{1, 2, 3}, {5, 6, 7, 8, 9, 10, 11}, {30}}
	ids := []uint64{1, 2, 3}
	stop := []int32{17}

	// One step at a time, argmax fed back, the same stop rule.
	want := make([][]int32, len(prompts))
	for i, p := range prompts {
		feed := p
		for range 12 {
			res, err := single.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", Sequences: [][]int32{feed}, CacheIDs: ids[i : i+1]})
			if err != nil {
				t.Fatal(err)
			}
			tok := sampling.Argmax(res.Logits[0])
			want[i] = append(want[i], tok)
			if slices.Contains(stop, tok) {
				break
			}
			feed = []int32{tok}
		}
	}
	got, err := multi.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", Sequences: prompts, CacheIDs: ids, Steps: 12, StopTokens: stop})
	if err != nil {
		t.Fatal(err)
	}
	for i := range prompts {
		if !slices.Equal(got.Tokens[i], want[i]) {
			t.Errorf("sequence %d: multi-step %v, one step at a time %v", i, got.Tokens[i], want[i])
		}
		if c := got.CachedTokens[i]; c != len(prompts[i])+len(want[i])-1 {
			t.Errorf("sequence %d: %d cached tokens, want %d (all but the last returned)", i, c, len(prompts[i])+len(want[i])-1)
		}
	}
	if got.Logits != nil {
		t.Errorf("a multi-step call returned logits")
	}
	// The cache goes on from there: the last token is fed next.
	last := got.Tokens[0][len(got.Tokens[0])-1]
	if _, err := multi.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", Sequences: [][]int32{{last}}, CacheIDs: ids[:1]}); err != nil {
		t.Fatal(err)
	}
}

func TestMultiStepContextAndErrors(t *testing.T) {
	ctx := context.Background()
	e := New("cpu", nil)
	load(t, e, "m", false) // n_ctx 8
	res, err := e.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", Sequences: [][]int32{{1, 2, 3, 4, 5}}, CacheIDs: []uint64{1}, Steps: 10})
	if err != nil {
		t.Fatal(err)
	}
	// 5 cached after the prompt: tokens at 6, 7 and 8 are fed, the fourth
	// would pass the context.
	if len(res.Tokens[0]) != 4 || res.CachedTokens[0] != 8 {
		t.Errorf("at the context: %d tokens, %d cached; want 4 and 8", len(res.Tokens[0]), res.CachedTokens[0])
	}
	for name, req := range map[string]accel.DecodeRequest{
		"too many steps": {ModelID: "m", Sequences: [][]int32{{1}}, CacheIDs: []uint64{2}, Steps: accel.MaxDecodeSteps + 1},
		"negative":       {ModelID: "m", Sequences: [][]int32{{1}}, CacheIDs: []uint64{2}, Steps: -1},
		"no cache ids":   {ModelID: "m", Sequences: [][]int32{{1}}, Steps: 4},
	} {
		if _, err := e.DecodeStep(ctx, req); !errors.Is(err, accel.ErrInvalidArgument) {
			t.Errorf("%s: err %v, want ErrInvalidArgument", name, err)
		}
	}
}
