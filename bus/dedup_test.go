package bus_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/llmesh/llmesh/bus/bustest"
)

func TestClaimHashes(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	var hs [][32]byte
	for i := range 5000 {
		hs = append(hs, sha256.Sum256([]byte(fmt.Sprint(i))))
	}
	fresh, err := b.ClaimHashes(ctx, "legal", "job-1", hs[:3000])
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range fresh {
		if !f {
			t.Fatalf("first claim of %d not fresh", i)
		}
	}
	// The same owner redoing its work sees its claims as fresh; another
	// owner sees the first 3000 as taken and the rest as fresh.
	again, err := b.ClaimHashes(ctx, "legal", "job-1", hs[:10])
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range again {
		if !f {
			t.Fatalf("redo by the same owner: %d not fresh", i)
		}
	}
	other, err := b.ClaimHashes(ctx, "legal", "job-2", hs)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range other {
		if f != (i >= 3000) {
			t.Fatalf("claim %d by another owner: fresh=%v", i, f)
		}
	}
	// Sets are separate.
	sep, err := b.ClaimHashes(ctx, "other-set", "job-2", hs[:5])
	if err != nil || !sep[0] {
		t.Fatalf("separate set: %v %v", sep, err)
	}
	if _, err := b.ClaimHashes(ctx, "a.b", "job", hs[:1]); err == nil {
		t.Fatal("set with a dot accepted")
	}
}
