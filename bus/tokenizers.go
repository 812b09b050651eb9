package bus

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// PutTokenizer registers (or replaces) a named tokenizer. Its name must
// pass ValidName and its ref ValidRef; CreatedAt defaults to now.
func (b *Bus) PutTokenizer(ctx context.Context, t *busv1.TokenizerRecord) error {
	if err := ValidName(t.GetName()); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	if err := ValidRef(t.Ref); err != nil {
		return fmt.Errorf("tokenizer %q: %w", t.Name, err)
	}
	if t.CreatedAt == nil {
		t.CreatedAt = timestamppb.Now()
	}
	return b.putRecord(ctx, BucketTokenizers, t.Name, t)
}

// GetTokenizer returns a tokenizer; ErrNotFound if there is none by that
// name.
func (b *Bus) GetTokenizer(ctx context.Context, name string) (*busv1.TokenizerRecord, error) {
	t := new(busv1.TokenizerRecord)
	return t, b.getRecord(ctx, BucketTokenizers, "tokenizer", name, t)
}

// ListTokenizers returns every tokenizer, by name.
func (b *Bus) ListTokenizers(ctx context.Context) ([]*busv1.TokenizerRecord, error) {
	return listRecords(ctx, b, BucketTokenizers, "tokenizer", func() *busv1.TokenizerRecord { return new(busv1.TokenizerRecord) })
}
