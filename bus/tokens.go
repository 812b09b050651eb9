package bus

import (
	"context"
	"fmt"
	"math"

	"github.com/llmesh/llmesh/bus/tensor"
)

// GetTokens reads a token shard (uint16 or uint32 "tokens") and checks every
// id against the vocabulary.
func (b *Bus) GetTokens(ctx context.Context, ref string, vocab int) ([]int32, error) {
	set, err := b.GetTensors(ctx, ref)
	if err != nil {
		return nil, err
	}
	t, ok := set.Get("tokens")
	if !ok {
		return nil, fmt.Errorf("shard %s has no \"tokens\" tensor", ref)
	}
	var ids []int32
	switch t.DType {
	case tensor.Uint16:
		u, err := tensor.Uint16s(t)
		if err != nil {
			return nil, err
		}
		ids = make([]int32, len(u))
		for i, v := range u {
			ids[i] = int32(v)
		}
	case tensor.Uint32:
		u, err := tensor.Uint32s(t)
		if err != nil {
			return nil, err
		}
		ids = make([]int32, len(u))
		for i, v := range u {
			if v > math.MaxInt32 {
				return nil, fmt.Errorf("shard %s: token %d at %d is outside the model vocabulary %d", ref, v, i, vocab)
			}
			ids[i] = int32(v)
		}
	default:
		return nil, fmt.Errorf("shard %s: tokens have dtype %v, want uint16 or uint32", ref, t.DType)
	}
	for i, id := range ids {
		if int(id) >= vocab {
			return nil, fmt.Errorf("shard %s: token %d at %d is outside the model vocabulary %d", ref, id, i, vocab)
		}
	}
	return ids, nil
}
