package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestBenchTrainTensorParallelJSON runs the tensor-parallel rows of bench
// train on a tiny model: the tokens/s row against its 1-shard partner and
// the allreduce-cost row without one; an odd head count is a usage error.
func TestBenchTrainTensorParallelJSON(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"train", "--json", "--tensor-only", "--vocab", "37", "--ctx", "9", "--embd", "8", "--layers", "1",
		"--heads", "2", "--batch", "2", "--steps", "2", "--repeat", "1"}
	if err := cmdBench(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	var rep struct {
		Area    string `json:"area"`
		Results []struct {
			Name         string   `json:"name"`
			Unit         string   `json:"unit"`
			Value        float64  `json:"value"`
			Partner      string   `json:"partner"`
			PartnerValue *float64 `json:"partner_value"`
			Ratio        *float64 `json:"ratio"`
			Note         string   `json:"note"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if rep.Area != "train" || len(rep.Results) != 2 {
		t.Fatalf("report %+v", rep)
	}
	tps, ar := rep.Results[0], rep.Results[1]
	if tps.Name != "train/tensor-parallel/shards=2/threads=1" || tps.Unit != "tokens/s" || tps.Value <= 0 ||
		tps.PartnerValue == nil || *tps.PartnerValue <= 0 || tps.Ratio == nil || !strings.Contains(tps.Note, "load average") {
		t.Errorf("tokens/s row %+v", tps)
	}
	if ar.Name != "train/tensor-parallel/allreduce-wait" || ar.Unit != "ms per step" || ar.Value <= 0 || ar.PartnerValue != nil || !strings.Contains(ar.Note, "5 allreduces per step") {
		t.Errorf("allreduce row %+v", ar)
	}
	err := cmdBench(context.Background(), []string{"train", "--tensor-only", "--heads", "3"}, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, errUsage) {
		t.Errorf("odd --heads: %v, want a usage error", err)
	}
}
