package dedup

import (
	"math"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// directSignature hashes every distinct shingle from scratch (no rolling),
// the reference that Signature's rolling hash and inlined fold must match.
func directSignature(h *Hasher, s string) []uint32 {
	sig := make([]uint32, h.Perms())
	for i := range sig {
		sig[i] = empty
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
		h.fold(sig, mix64(roll))
	}
	h.densify(sig)
	return sig
}

func TestRollingMatchesDirect(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("的法律第条款甲乙方abc XYZ，。\n0123")
	for _, tc := range []struct{ k, perms int }{{1, 128}, {2, 128}, {5, 128}, {9, 128}, {5, 100}, {3, 1024}, {2, 1}} {
		k := tc.k
		h, err := NewHasher(Config{Shingle: k, Seed: 3, Perms: tc.perms, Bands: tc.perms, Rows: 1})
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			rs := make([]rune, r.IntN(400))
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

// TestDensify checks that every bin of a signature holds the value of a bin
// that a shingle fell into, and that a key with one shingle has it in
// every slot.
func TestDensify(t *testing.T) {
	h, err := NewHasher(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "a", "abcde", "abcdefghij", "中华人民共和国宪法", "第一条 为了规范公司的组织和行为"} {
		raw := make([]uint32, h.Perms())
		for i := range raw {
			raw[i] = empty
		}
		for sh := range Shingles(s, h.shingle) {
			var roll uint64
			n := 0
			for _, c := range sh {
				roll = roll*rollBase + uint64(c) + 1
				n++
			}
			if n < h.shingle {
				roll ^= uint64(n) << 56
			}
			h.fold(raw, mix64(roll))
		}
		values := map[uint32]bool{}
		for _, v := range raw {
			if v != empty {
				values[v] = true
			}
		}
		sig := h.Signature(s, nil)
		for i, v := range sig {
			if v == empty || !values[v] {
				t.Errorf("%q: slot %d = %d, not the value of any filled bin", s, i, v)
			}
			if raw[i] != empty && v != raw[i] {
				t.Errorf("%q: filled slot %d changed by densification", s, i)
			}
		}
		if n := len(Shingles(s, h.shingle)); n == 1 {
			for i, v := range sig {
				if v != sig[0] {
					t.Errorf("%q (one shingle): slot %d = %d, slot 0 = %d", s, i, v, sig[0])
				}
			}
		}
	}
}

// TestEstimateUnbiasedShort measures the estimator where densification does
// most of the work (keys of 5 to 60 shingles, so most bins are empty): the
// mean estimate over many pairs must match the mean exact Jaccard.
func TestEstimateUnbiasedShort(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	alphabet := []rune("的法律第条款甲乙方丙丁规定本条例人民政府国家公司合同")
	var sumEst, sumExact float64
	const pairs = 600
	for i := range pairs {
		h, err := NewHasher(Config{Seed: uint64(i)})
		if err != nil {
			t.Fatal(err)
		}
		rs := make([]rune, 8+r.IntN(60))
		for j := range rs {
			rs[j] = alphabet[r.IntN(len(alphabet))]
		}
		a := string(rs)
		for j := range rs {
			if r.IntN(12) == 0 {
				rs[j] = alphabet[r.IntN(len(alphabet))]
			}
		}
		b := string(rs)
		sumExact += Jaccard(a, b, 5)
		sumEst += EstimateJaccard(h.Signature(a, nil), h.Signature(b, nil))
	}
	mEst, mExact := sumEst/pairs, sumExact/pairs
	t.Logf("short keys over %d pairs: mean estimate %.4f, mean exact %.4f", pairs, mEst, mExact)
	if math.Abs(mEst-mExact) > 0.02 {
		t.Errorf("mean estimate %.4f, mean exact Jaccard %.4f: biased", mEst, mExact)
	}
}
