package filterbench

import (
	"testing"
	"time"
)

// TestRun: every result has a positive value and its partner measured in
// the same run, with the ratio oriented so that higher is better.
func TestRun(t *testing.T) {
	res, err := Run(t.Context(), Options{MB: 0.05, Tokens: 400, Round: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 5 {
		t.Fatalf("%d results, want 5", len(res))
	}
	for _, r := range res {
		if !(r.Value > 0) || r.Partner == "" || r.PartnerValue == nil || r.Ratio == nil || !(*r.PartnerValue > 0) {
			t.Fatalf("result %+v: want a value, a partner value and a ratio", r)
		}
		want := r.Value / *r.PartnerValue
		if r.Unit == "µs/token" {
			want = *r.PartnerValue / r.Value
		}
		if d := *r.Ratio - want; d > 1e-9*want || d < -1e-9*want {
			t.Errorf("%s: ratio %v, want %v", r.Name, *r.Ratio, want)
		}
	}
}
