package dedup

import (
	"math"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// directSignature hashes every distinct shingle from scratch (no rolling),
// the reference that Signature's rolling hash must match.
func directSignature(h *Hasher, s string) []uint32 {
	sig := make([]uint32, h.Perms())
	for i := range sig {
		sig[i] = math.MaxUint32
	}
	k := h.shingle
	for sh := range Shingles(s, k) {
		var roll uint64
		n := 0
		for _, c := range sh {
			roll = roll*rollBase + uint64(c) + 1
			n++
		}
		if n < k {
			roll ^= uint64(n) << 56
		}
		h.update(sig, mix64(roll))
	}
	return sig
}

func TestRollingMatchesDirect(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("的法律第条款甲乙方abc XYZ，。\n0123")
	for _, k := range []int{1, 2, 5, 9} {
		h, err := NewHasher(Config{Shingle: k, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			rs := make([]rune, r.IntN(40))
			for i := range rs {
				rs[i] = alphabet[r.IntN(len(alphabet))]
			}
			s := string(rs)
			got, want := h.Signature(s, nil), directSignature(h, s)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("k=%d %q: slot %d rolling %d, direct %d", k, s, i, got[i], want[i])
				}
			}
		}
	}
}

func TestShinglesCount(t *testing.T) {
	tests := map[string]struct {
		s    string
		k    int
		want int
	}{
		"empty":       {"", 5, 1},
		"short":       {"法律", 5, 1},
		"exact":       {"abcde", 5, 1},
		"chinese":     {"中华人民共和国", 5, 3},
		"repeats":     {"aaaaaaa", 2, 1},
		"invalid utf": {"ab\xffcd", 2, 4},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Shingles(tc.s, tc.k)
			if len(got) != tc.want {
				t.Errorf("%d shingles %v, want %d", len(got), got, tc.want)
			}
			for sh := range got {
				if n := utf8.RuneCountInString(sh); n != min(tc.k, utf8.RuneCountInString(tc.s)) {
					t.Errorf("shingle %q has %d runes", sh, n)
				}
			}
		})
	}
}

func TestUnionFind(t *testing.T) {
	u := newUnionFind(6)
	u.union(0, 1)
	u.union(2, 3)
	u.union(1, 3)
	if u.find(0) != u.find(2) {
		t.Error("0-1, 2-3, 1-3 joined, but 0 and 2 are apart")
	}
	if u.find(4) == u.find(0) || u.find(4) == u.find(5) {
		t.Error("4 joined something it was never unioned with")
	}
}
