package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// Tokenizers are versioned: every PutTokenizer under a name adds version
// N+1, kept immutable under the key "<name>/<N>", and moves the key "<name>"
// (the latest) to it. A reference is "name" (the latest) or "name@N".

// MaxTokenizerVersions bounds the versions kept per tokenizer name.
const MaxTokenizerVersions = 1 << 20

// ParseTokenizerRef splits "name" or "name@N" into the name and version (0
// for the latest).
func ParseTokenizerRef(ref string) (name string, version int, err error) {
	name, v, found := strings.Cut(ref, "@")
	if err := ValidName(name); err != nil {
		return "", 0, fmt.Errorf("tokenizer: %w", err)
	}
	if !found {
		return name, 0, nil
	}
	version, err = strconv.Atoi(v)
	if err != nil || version < 1 || version > MaxTokenizerVersions {
		return "", 0, fmt.Errorf("tokenizer %q: version %q is not a number in [1, %d]: %w", ref, v, MaxTokenizerVersions, ErrInvalidName)
	}
	return name, version, nil
}

// PutTokenizer registers a new version of a named tokenizer and makes it
// the latest; t.Version is set to the version it got. Its name must pass
// ValidName and its ref ValidRef; CreatedAt defaults to now.
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
	kv, err := b.kv(ctx, BucketTokenizers)
	if err != nil {
		return err
	}
	latest := new(busv1.TokenizerRecord)
	switch err := b.getRecord(ctx, BucketTokenizers, "tokenizer", t.Name, latest); {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	}
	// Claim the next free version key; a concurrent register takes another.
	for v := latest.Version + 1; ; v++ {
		if v > MaxTokenizerVersions {
			return fmt.Errorf("tokenizer %q: more than %d versions: %w", t.Name, MaxTokenizerVersions, ErrTooLarge)
		}
		t.Version = v
		data, err := proto.Marshal(t)
		if err != nil {
			return err
		}
		_, err = kv.Create(ctx, versionKey(t.Name, v), data)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return fmt.Errorf("put tokenizer %q version %d: %w", t.Name, v, err)
		}
		break
	}
	// Move "latest" forward, never back past a newer concurrent version;
	// a lost compare-and-set race is retried.
	var err2 error
	for range 16 {
		cur, err := kv.Get(ctx, t.Name)
		var rev uint64
		if err == nil {
			var c busv1.TokenizerRecord
			if proto.Unmarshal(cur.Value(), &c) == nil && c.Version > t.Version {
				return nil
			}
			rev = cur.Revision()
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("get tokenizer %q: %w", t.Name, err)
		}
		data, _ := proto.Marshal(t)
		if rev == 0 {
			_, err2 = kv.Create(ctx, t.Name, data)
		} else {
			_, err2 = kv.Update(ctx, t.Name, data, rev)
		}
		if err2 == nil {
			return nil
		}
	}
	return fmt.Errorf("put tokenizer %q: %w", t.Name, err2)
}

func versionKey(name string, v int32) string { return name + "/" + strconv.Itoa(int(v)) }

// GetTokenizer returns a tokenizer by reference: "name" for the latest
// version or "name@N" for version N; ErrNotFound if there is none.
func (b *Bus) GetTokenizer(ctx context.Context, ref string) (*busv1.TokenizerRecord, error) {
	name, version, err := ParseTokenizerRef(ref)
	if err != nil {
		return nil, err
	}
	t := new(busv1.TokenizerRecord)
	if version == 0 {
		return t, b.getRecord(ctx, BucketTokenizers, "tokenizer", name, t)
	}
	kv, err := b.kv(ctx, BucketTokenizers)
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, versionKey(name, int32(version)))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("tokenizer %q version %d: %w", name, version, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get tokenizer %q: %w", ref, err)
	}
	if err := proto.Unmarshal(e.Value(), t); err != nil {
		return nil, fmt.Errorf("tokenizer %q record: %v: %w", ref, err, ErrMalformed)
	}
	return t, nil
}

// ListTokenizers returns the latest version of every tokenizer, by name.
func (b *Bus) ListTokenizers(ctx context.Context) ([]*busv1.TokenizerRecord, error) {
	kv, err := b.kv(ctx, BucketTokenizers)
	if err != nil {
		return nil, err
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", BucketTokenizers, err)
	}
	defer lister.Stop()
	var names []string
	for k := range lister.Keys() {
		if !strings.Contains(k, "/") {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	out := make([]*busv1.TokenizerRecord, 0, len(names))
	for _, n := range names {
		t, err := b.GetTokenizer(ctx, n)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}
