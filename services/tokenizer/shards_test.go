package tokenizer_test

import (
	"slices"
	"testing"

	"github.com/llmesh/llmesh/bus/tensor"
)

// TestShardsAndVersions: a job with shards splits the training tokens
// into that many objects that together hold every training token; a second
// training under the same name is version 2, and use: name@1 still
// encodes with the first.
func TestShardsAndVersions(t *testing.T) {
	b := start(t)
	docs := testDocs()
	putDataset(t, b, "small", docs)

	one := succeeded(t, runJob(t, b, `{"dataset":"small","vocab_size":300}`))
	three := succeeded(t, runJob(t, b, `{"dataset":"small","vocab_size":300,"shards":3}`))
	if one.TokenizerVersion != 1 || three.TokenizerVersion != 2 {
		t.Fatalf("versions = %d, %d; want 1, 2", one.TokenizerVersion, three.TokenizerVersion)
	}
	if len(three.TrainRefs) != 3 || three.TrainRef != "" {
		t.Fatalf("shards: train_refs %v, train_ref %q; want 3 refs and no single ref", three.TrainRefs, three.TrainRef)
	}
	var all []uint32
	for _, ref := range three.TrainRefs {
		ids, meta := shard(t, b, ref, tensor.Uint16)
		if len(ids) == 0 || meta["shards"] != "3" {
			t.Errorf("shard %s: %d tokens, meta %v", ref, len(ids), meta)
		}
		all = append(all, ids...)
	}
	whole, _ := shard(t, b, one.TrainRef, tensor.Uint16)
	if len(all) != three.TrainTokens || !slices.Equal(all, whole) {
		t.Errorf("3 shards hold %d tokens (result %d), the single shard %d; want the same stream", len(all), three.TrainTokens, len(whole))
	}

	again := succeeded(t, runJob(t, b, `{"dataset":"small","use":"small@1"}`))
	if again.TokenizerRef != one.TokenizerRef || again.TokenizerVersion != 1 || again.TrainRef != one.TrainRef {
		t.Errorf("use small@1 = %+v; want version 1's tokenizer and shards", again)
	}
	if rec := runJob(t, b, `{"dataset":"small","use":"small@9"}`); rec.Error == "" {
		t.Errorf("use small@9 (no such version) did not fail")
	}
}
