package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchTrainStepJSON runs the train-step bench on a tiny config and
// checks the DESIGN.md shape: a missing PyTorch partner is reported with
// partner_value null and a note, never dropped.
func TestBenchTrainStepJSON(t *testing.T) {
	for name, extra := range map[string][]string{
		"no-torch":       {"--no-torch"},
		"missing-script": {"--torch-script", t.TempDir() + "/absent.py"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"train-step", "--json", "--vocab", "37", "--ctx", "9", "--embd", "8", "--layers", "1",
				"--heads", "2", "--batch", "2", "--steps", "1", "--bf16"}, extra...)
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
					Note         string   `json:"note"`
				} `json:"results"`
			}
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("%v: %s", err, out.String())
			}
			if rep.Area != "train-step" || len(rep.Results) != 3 {
				t.Fatalf("report %+v", rep)
			}
			for i, r := range rep.Results {
				if r.Value <= 0 || !strings.HasPrefix(r.Name, "train-step/v37-t9-d8-l1-h2-b2/") {
					t.Errorf("result %d: %+v", i, r)
				}
				if i < 2 && (r.Partner != "pytorch" || r.PartnerValue != nil || r.Note == "") {
					t.Errorf("result %d: partner %q value %v note %q, want pytorch, null and a reason", i, r.Partner, r.PartnerValue, r.Note)
				}
			}
			if !strings.Contains(rep.Results[2].Name, "bf16") {
				t.Errorf("third result %q is not the bf16 run", rep.Results[2].Name)
			}
		})
	}
	if err := cmdBench(context.Background(), []string{"train-step", "--kernels", "nope", "--no-torch"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("unknown --kernels: no error")
	}
}
