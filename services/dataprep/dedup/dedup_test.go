package dedup_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/llmesh/llmesh/services/dataprep/dedup"
	"github.com/llmesh/llmesh/services/dataprep/democorpus"
	"github.com/llmesh/llmesh/services/internal/corpus/corpustest"
)

func mustHasher(t testing.TB, cfg dedup.Config) *dedup.Hasher {
	t.Helper()
	h, err := dedup.NewHasher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSignatureDeterministic(t *testing.T) {
	text := democorpus.Generate(1, 1)[0].Text
	a := mustHasher(t, dedup.DefaultConfig())
	b := mustHasher(t, dedup.DefaultConfig())
	s1 := a.Signature(text, nil)
	if diff := cmp.Diff(s1, a.Signature(text, nil)); diff != "" {
		t.Fatalf("same hasher, same key, different signature:\n%s", diff)
	}
	if diff := cmp.Diff(s1, b.Signature(text, make([]uint32, 3, 200))); diff != "" {
		t.Fatalf("hashers with one seed disagree:\n%s", diff)
	}
	cfg := dedup.DefaultConfig()
	cfg.Seed = 99
	if cmp.Equal(s1, mustHasher(t, cfg).Signature(text, nil)) {
		t.Fatal("seeds 0 and 99 gave the same signature")
	}
	if got := len(s1); got != 128 {
		t.Fatalf("signature length %d, want 128", got)
	}
	dst := make([]uint32, 0, 128)
	if n := testing.AllocsPerRun(20, func() { dst = a.Signature(text, dst) }); n != 0 {
		t.Errorf("Signature with capacity allocates %.0f times per call", n)
	}
}

func TestShortKeys(t *testing.T) {
	h := mustHasher(t, dedup.DefaultConfig())
	if got := dedup.EstimateJaccard(h.Signature("ab", nil), h.Signature("ab", nil)); got != 1 {
		t.Errorf("equal short keys: estimate %v, want 1", got)
	}
	if got := dedup.EstimateJaccard(h.Signature("ab", nil), h.Signature("abc", nil)); got > 0.1 {
		t.Errorf("different short keys: estimate %v, want about 0", got)
	}
	if got := dedup.EstimateJaccard(h.Signature("", nil), h.Signature("", nil)); got != 1 {
		t.Errorf("empty keys: estimate %v, want 1", got)
	}
}

func TestJaccardExact(t *testing.T) {
	tests := map[string]struct {
		a, b string
		k    int
		want float64
	}{
		"equal":        {"abcdef", "abcdef", 5, 1},
		"one changed":  {"abcdef", "abcdeg", 5, 1.0 / 3},
		"disjoint":     {"abcdef", "uvwxyz", 5, 0},
		"chinese":      {"中华人民共和国", "中华人民共和", 5, 2.0 / 3},
		"both short":   {"ab", "ab", 5, 1},
		"short vs not": {"ab", "abcdef", 5, 0},
		"both empty":   {"", "", 5, 1},
		"repeats":      {"aaaa", "aaaaaaaa", 2, 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := dedup.Jaccard(tc.a, tc.b, tc.k); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("Jaccard(%q, %q, %d) = %v, want %v", tc.a, tc.b, tc.k, got, tc.want)
			}
		})
	}
}

// mutate replaces a fraction of a's runes in short runs.
func mutate(r *rand.Rand, a string, frac float64) string {
	rs := []rune(a)
	for i := 0; i < len(rs); i++ {
		if r.Float64() < frac/3 {
			for j := i; j < min(i+3, len(rs)); j++ {
				rs[j] = rune(0x4e00 + r.IntN(2000))
			}
			i += 2
		}
	}
	return string(rs)
}

func TestEstimateJaccardAccuracy(t *testing.T) {
	h := mustHasher(t, dedup.DefaultConfig())
	docs := democorpus.Generate(5, 120)
	r := rand.New(rand.NewPCG(5, 6))
	var sumErr, maxErr float64
	n := 0
	for i, d := range docs {
		var other string
		if i%3 == 0 {
			other = docs[(i+1)%len(docs)].Text // unrelated pair
		} else {
			other = mutate(r, d.Text, 0.005+0.05*r.Float64())
		}
		exact := dedup.Jaccard(d.Text, other, 5)
		est := dedup.EstimateJaccard(h.Signature(d.Text, nil), h.Signature(other, nil))
		e := math.Abs(est - exact)
		sumErr += e
		maxErr = max(maxErr, e)
		n++
	}
	mean := sumErr / float64(n)
	t.Logf("estimate vs exact Jaccard over %d pairs: mean abs error %.4f, max %.4f (128 perms: sd ≤ %.4f)", n, mean, maxErr, 0.5/math.Sqrt(128))
	if mean > 0.03 || maxErr > 0.15 {
		t.Errorf("mean abs error %.4f (want ≤ 0.03), max %.4f (want ≤ 0.15)", mean, maxErr)
	}
}

// sigWith builds a 4-perm signature (2 bands × 2 rows) from band values.
func sigWith(band0, band1 uint32) []uint32 { return []uint32{band0, band0, band1, band1} }

func TestClustersTransitive(t *testing.T) {
	cfg := dedup.Config{Perms: 4, Bands: 2, Rows: 2}
	ix, err := dedup.NewIndex(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// 10~20 share band 0, 20~30 share band 1; 10 and 30 share nothing.
	// 40~50 share band 1; 60 is alone.
	for id, sig := range map[int][]uint32{
		10: sigWith(1, 100), 20: sigWith(1, 200), 30: sigWith(3, 200),
		40: sigWith(4, 400), 50: sigWith(5, 400), 60: sigWith(6, 600),
	} {
		if err := ix.Add(id, sig); err != nil {
			t.Fatal(err)
		}
	}
	want := [][]int{{10, 20, 30}, {40, 50}}
	if diff := cmp.Diff(want, ix.Clusters(nil)); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
	asked := map[[2]int]int{}
	got := ix.Clusters(func(a, b int) bool {
		asked[[2]int{a, b}]++
		return !(a == 40 || b == 40)
	})
	if diff := cmp.Diff([][]int{{10, 20, 30}}, got); diff != "" {
		t.Errorf("clusters with 40 rejected (-want +got):\n%s", diff)
	}
	for p, n := range asked {
		if n > 1 {
			t.Errorf("confirm asked %d times about %v", n, p)
		}
	}
	if err := ix.Add(10, sigWith(0, 0)); err == nil {
		t.Error("adding id 10 twice succeeded")
	}
	if err := ix.Add(70, []uint32{1, 2}); err == nil {
		t.Error("adding a 2-slot signature to a 4-perm index succeeded")
	}
}

func TestKeep(t *testing.T) {
	titles := map[int]string{
		1: "中华人民共和国公司法(2013-12-28)",
		2: "中华人民共和国公司法（2023年12月29日修订）",
		3: "中华人民共和国公司法(2018-10-26)",
		4: "劳动合同法",
		5: "劳动合同法",
		6: "宪法修正案（2004年）",
		7: "宪法修正案（2018年）",
		8: "某条例",
	}
	order := map[int]int{1: 0, 2: 5, 3: 2, 4: 9, 5: 3, 6: 1, 7: 4, 8: 0}
	info := func(id int) (string, int) { return dedup.DateOf(titles[id]), order[id] }
	clusters := [][]int{{1, 2, 3}, {4, 5}, {6, 7, 8}}
	tests := map[string]struct {
		policy dedup.Policy
		kept   []int
	}{
		"first":  {dedup.KeepFirst, []int{1, 5, 8}},
		"newest": {dedup.KeepNewest, []int{2, 5, 7}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			keep := dedup.Keep(clusters, tc.policy, info)
			var kept []int
			for id, k := range keep {
				if k {
					kept = append(kept, id)
				}
			}
			slices.Sort(kept)
			if diff := cmp.Diff(tc.kept, kept); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
			if len(keep) != 8 {
				t.Errorf("%d ids decided, want all 8 clustered ids", len(keep))
			}
		})
	}
}

func TestDateOf(t *testing.T) {
	tests := map[string]struct{ title, want string }{
		"dashes":          {"中华人民共和国公司法(2018-10-26)", "2018-10-26"},
		"chinese":         {"中华人民共和国公司法（2023年12月29日修订）", "2023-12-29"},
		"compact":         {"公司法20181026", "2018-10-26"},
		"slashes":         {"Regulation 2021/3/5", "2021-03-05"},
		"full-width":      {"公司法（２０２３年１２月２９日）", "2023-12-29"},
		"single digits":   {"2009年8月7日决定", "2009-08-07"},
		"month only":      {"2018年10月修订", "2018-10"},
		"year only":       {"宪法修正案（1988年）", "1988"},
		"latest of two":   {"2013-12-28 amended 2018-10-26", "2018-10-26"},
		"none":            {"中华人民共和国刑法", ""},
		"small number":    {"关于不满300总吨船舶的规定", ""},
		"bad day":         {"2019-02-30", ""},
		"bad month":       {"2019年13月1日", ""},
		"long digit run":  {"No. 201810261", ""},
		"phone not date":  {"13800138000", ""},
		"year out of use": {"0001-01-01", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := dedup.DateOf(tc.title); got != tc.want {
				t.Errorf("DateOf(%q) = %q, want %q", tc.title, got, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		cfg dedup.Config
		ok  bool
	}{
		"default":        {dedup.DefaultConfig(), true},
		"zero":           {dedup.Config{}, true},
		"32x4":           {dedup.Config{Perms: 128, Bands: 32, Rows: 4}, true},
		"mismatch":       {dedup.Config{Perms: 128, Bands: 16, Rows: 4}, false},
		"shingle big":    {dedup.Config{Shingle: 65}, false},
		"shingle neg":    {dedup.Config{Shingle: -1}, false},
		"perms big":      {dedup.Config{Perms: 2048, Bands: 256, Rows: 8}, false},
		"threshold":      {dedup.Config{Threshold: 1.5}, false},
		"threshold nan":  {dedup.Config{Threshold: math.NaN()}, false},
		"negative bands": {dedup.Config{Perms: 128, Bands: -16, Rows: -8}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, dedup.ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
			if _, herr := dedup.NewHasher(tc.cfg); (herr == nil) != tc.ok {
				t.Errorf("NewHasher error %v, want ok=%v", herr, tc.ok)
			}
		})
	}
}

func TestContentHash(t *testing.T) {
	if dedup.ContentHash("a") == dedup.ContentHash("b") || dedup.ContentHash("a") != dedup.ContentHash("a") {
		t.Error("ContentHash does not tell keys apart")
	}
}

// readTexts returns the texts of the shared corpus name, in order, up to
// and including the document that takes the total to limit bytes.
func readTexts(tb testing.TB, name string, limit int) []string {
	tb.Helper()
	var out []string
	total := 0
	for _, d := range corpustest.Texts(tb, name) {
		if total >= limit {
			break
		}
		out = append(out, d)
		total += len(d)
	}
	return out
}

// BenchmarkSignature measures Signature on the Chinese law corpus (the first
// 8 MB), against the textbook partner measured in the same run: FNV-1a per
// shingle and 128 permutations (a*x+b) mod 2^61-1, as datasketch does.
func BenchmarkSignature(b *testing.B) {
	texts := readTexts(b, "cn-law.jsonl.gz", 8<<20)
	size := 0
	for _, s := range texts {
		size += len(s)
	}
	h := mustHasher(b, dedup.DefaultConfig())
	b.Run("rolling-multiply-shift", func(b *testing.B) {
		b.SetBytes(int64(size))
		sig := make([]uint32, 0, 128)
		for b.Loop() {
			for _, s := range texts {
				sig = h.Signature(s, sig)
			}
		}
	})
	b.Run("partner-fnv-mod-prime", func(b *testing.B) {
		b.SetBytes(int64(size))
		ref := newModPrime(128)
		sig := make([]uint64, 128)
		for b.Loop() {
			for _, s := range texts {
				ref.signature(s, 5, sig)
			}
		}
	})
}
