package bus_test

import (
	"context"
	"errors"
	"testing"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

func TestTokenizerVersions(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	refs := []string{bus.RefOf([]byte("v1")), bus.RefOf([]byte("v2")), bus.RefOf([]byte("v3"))}
	for i, ref := range refs {
		rec := &busv1.TokenizerRecord{Name: "legal", Ref: ref, VocabSize: 512}
		if err := b.PutTokenizer(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if rec.Version != int32(i+1) {
			t.Fatalf("version = %d, want %d", rec.Version, i+1)
		}
	}
	if err := b.PutTokenizer(ctx, &busv1.TokenizerRecord{Name: "other", Ref: refs[0]}); err != nil {
		t.Fatal(err)
	}
	latest, err := b.GetTokenizer(ctx, "legal")
	if err != nil || latest.Ref != refs[2] || latest.Version != 3 {
		t.Fatalf("latest = %v, %v; want version 3", latest, err)
	}
	v1, err := b.GetTokenizer(ctx, "legal@1")
	if err != nil || v1.Ref != refs[0] || v1.Version != 1 {
		t.Fatalf("legal@1 = %v, %v", v1, err)
	}
	list, err := b.ListTokenizers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "legal" || list[0].Version != 3 || list[1].Name != "other" {
		t.Fatalf("list = %v", list)
	}
	for ref, want := range map[string]error{
		"legal@4": bus.ErrNotFound, "nope": bus.ErrNotFound, "legal@0": bus.ErrInvalidName,
		"legal@x": bus.ErrInvalidName, "../x@1": bus.ErrInvalidName, "legal@1@2": bus.ErrInvalidName,
	} {
		if _, err := b.GetTokenizer(ctx, ref); !errors.Is(err, want) {
			t.Errorf("GetTokenizer(%q) = %v, want %v", ref, err, want)
		}
	}
	if err := b.PutTokenizer(ctx, &busv1.TokenizerRecord{Name: "legal", Ref: "not-a-ref"}); !errors.Is(err, bus.ErrInvalidRef) {
		t.Errorf("bad ref: %v", err)
	}
}
