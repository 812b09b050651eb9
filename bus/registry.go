package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// PutDataset registers (or replaces) a named dataset. Its name must pass
// ValidName and its ref, when set, ValidRef; CreatedAt defaults to now.
func (b *Bus) PutDataset(ctx context.Context, d *busv1.DatasetRecord) error {
	if err := ValidName(d.GetName()); err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	if d.Ref != "" {
		if err := ValidRef(d.Ref); err != nil {
			return fmt.Errorf("dataset %q: %w", d.Name, err)
		}
	}
	if d.CreatedAt == nil {
		d.CreatedAt = timestamppb.Now()
	}
	return b.putRecord(ctx, BucketDatasets, d.Name, d)
}

// GetDataset returns a dataset; ErrNotFound if there is none by that name.
func (b *Bus) GetDataset(ctx context.Context, name string) (*busv1.DatasetRecord, error) {
	d := new(busv1.DatasetRecord)
	return d, b.getRecord(ctx, BucketDatasets, "dataset", name, d)
}

// ListDatasets returns every dataset, by name.
func (b *Bus) ListDatasets(ctx context.Context) ([]*busv1.DatasetRecord, error) {
	return listRecords(ctx, b, BucketDatasets, "dataset", func() *busv1.DatasetRecord { return new(busv1.DatasetRecord) })
}

// PutModel registers (or replaces) a served model. Its name must pass
// ValidName and its checkpoint and tokenizer refs, when set, ValidRef;
// CreatedAt defaults to now.
func (b *Bus) PutModel(ctx context.Context, m *busv1.ModelRecord) error {
	if err := ValidName(m.GetName()); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	for what, ref := range map[string]string{"checkpoint": m.Checkpoint, "tokenizer": m.Tokenizer} {
		if ref == "" {
			continue
		}
		if err := ValidRef(ref); err != nil {
			return fmt.Errorf("model %q %s: %w", m.Name, what, err)
		}
	}
	if m.CreatedAt == nil {
		m.CreatedAt = timestamppb.Now()
	}
	return b.putRecord(ctx, BucketModels, m.Name, m)
}

// GetModel returns a model; ErrNotFound if there is none by that name.
func (b *Bus) GetModel(ctx context.Context, name string) (*busv1.ModelRecord, error) {
	m := new(busv1.ModelRecord)
	return m, b.getRecord(ctx, BucketModels, "model", name, m)
}

// ListModels returns every model, by name.
func (b *Bus) ListModels(ctx context.Context) ([]*busv1.ModelRecord, error) {
	return listRecords(ctx, b, BucketModels, "model", func() *busv1.ModelRecord { return new(busv1.ModelRecord) })
}

func (b *Bus) putRecord(ctx context.Context, bucket, key string, m proto.Message) error {
	kv, err := b.kv(ctx, bucket)
	if err != nil {
		return err
	}
	data, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("put %s %q: %w", bucket, key, err)
	}
	return nil
}

func (b *Bus) getRecord(ctx context.Context, bucket, what, name string, m proto.Message) error {
	if err := ValidName(name); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	kv, err := b.kv(ctx, bucket)
	if err != nil {
		return err
	}
	e, err := kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("%s %q: %w", what, name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("get %s %q: %w", what, name, err)
	}
	if err := proto.Unmarshal(e.Value(), m); err != nil {
		return fmt.Errorf("%s %q record: %v: %w", what, name, err, ErrMalformed)
	}
	return nil
}

func listRecords[T proto.Message](ctx context.Context, b *Bus, bucket, what string, newT func() T) ([]T, error) {
	kv, err := b.kv(ctx, bucket)
	if err != nil {
		return nil, err
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", bucket, err)
	}
	defer lister.Stop()
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, strings.Compare)
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		m := newT()
		if err := b.getRecord(ctx, bucket, what, k, m); errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
