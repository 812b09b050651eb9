package tokenizer

import "testing"

func TestSplitShards(t *testing.T) {
	doc := func(n int) []uint32 { return make([]uint32, n) }
	tests := map[string]struct {
		docs  [][]uint32
		n     int
		sizes []int // documents per shard
	}{
		"one shard":             {[][]uint32{doc(5), doc(5)}, 1, []int{2}},
		"even":                  {[][]uint32{doc(9), doc(9), doc(9), doc(9)}, 2, []int{2, 2}},
		"more shards than docs": {[][]uint32{doc(3), doc(3)}, 5, []int{1, 1}},
		"one big doc first":     {[][]uint32{doc(100), doc(1), doc(1), doc(1)}, 2, []int{1, 3}},
		"every shard gets one":  {[][]uint32{doc(1), doc(1), doc(1), doc(100)}, 4, []int{1, 1, 1, 1}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := splitShards(tc.docs, tc.n)
			var sizes []int
			for _, g := range got {
				sizes = append(sizes, len(g))
			}
			if len(sizes) != len(tc.sizes) {
				t.Fatalf("sizes = %v, want %v", sizes, tc.sizes)
			}
			for i := range sizes {
				if sizes[i] != tc.sizes[i] {
					t.Fatalf("sizes = %v, want %v", sizes, tc.sizes)
				}
			}
		})
	}
}
