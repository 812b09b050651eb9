package accel

import (
	"slices"
	"testing"
)

func TestUncovered(t *testing.T) {
	tests := map[string]struct {
		spans   []span
		n       int
		want    []span
		wantErr bool
	}{
		"none":         {n: 5, want: []span{{0, 5}}},
		"all":          {spans: []span{{3, 5}, {0, 3}}, n: 5},
		"middle gaps":  {spans: []span{{7, 9}, {2, 4}}, n: 10, want: []span{{0, 2}, {4, 7}, {9, 10}}},
		"empty vector": {n: 0},
		"beyond n":     {spans: []span{{3, 6}}, n: 5, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := uncovered(tc.spans, tc.n)
			if (err != nil) != tc.wantErr {
				t.Fatalf("uncovered: err = %v, want error %v", err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("uncovered(%v, %d) = %v, want %v", tc.spans, tc.n, got, tc.want)
			}
		})
	}
	if !overlaps([]span{{2, 4}}, 3, 5) || overlaps([]span{{2, 4}}, 4, 6) || overlaps(nil, 0, 1) {
		t.Error("overlaps is wrong at the edges")
	}
}
