package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

// TestBenchTrainAllreduceJSON runs bench train's bandwidth rows on 1 MiB:
// the ring against loopback TCP, the bus's raw exchange against loopback
// TCP, and the ring against the bus's raw exchange, every one measured.
func TestBenchTrainAllreduceJSON(t *testing.T) {
	var out, errb bytes.Buffer
	if err := cmdBench(context.Background(), []string{"train", "--json", "--allreduce-only", "--allreduce-mib", "1"}, &out, &errb); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	var rep struct {
		Results []struct {
			Name         string   `json:"name"`
			Value        float64  `json:"value"`
			Partner      string   `json:"partner"`
			PartnerValue *float64 `json:"partner_value"`
			Ratio        *float64 `json:"ratio"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	want := []struct{ name, partner string }{
		{"allreduce/ranks=2/size=1MiB", "raw loopback TCP, both directions at once"},
		{"nats-exchange/size=1MiB", "raw loopback TCP, both directions at once"},
		{"allreduce/ranks=2/size=1MiB/vs-bus", "raw NATS exchange, both directions at once"},
	}
	if len(rep.Results) != len(want) {
		t.Fatalf("%d results, want %d: %s", len(rep.Results), len(want), out.String())
	}
	for i, w := range want {
		r := rep.Results[i]
		if r.Name != w.name || r.Partner != w.partner || r.Value <= 0 || r.PartnerValue == nil || *r.PartnerValue <= 0 || r.Ratio == nil {
			t.Errorf("row %d = %+v, want %s against %s, both measured", i, r, w.name, w.partner)
		}
	}
	// The ring and the raw exchange in one row share one value.
	if rep.Results[0].Value != rep.Results[2].Value {
		t.Errorf("the ring's bandwidth differs between rows: %v and %v", rep.Results[0].Value, rep.Results[2].Value)
	}
}
