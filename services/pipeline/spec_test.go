package pipeline_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/llmesh/llmesh/services/internal/jobspec"
	"github.com/llmesh/llmesh/services/pipeline"
)

const fullYAML = `
name: tiny
dataset: {builtin: demo, documents: 120, seed: 3, min_chars: 10}
tokenizer: {name: tok, vocab_size: 320, min_frequency: 3, val_fraction: 0.1}
train:
  model: tiny-model
  config: {n_ctx: 16, n_embd: 32, n_layer: 1, n_head: 2}
  backend: cpu
  steps: 60
  batch: 8
  lr: 0.01
  eval_every: 10
  checkpoint_every: 20
  log_every: 5
  seed: 1
generate: {prompts: ["第一条", "The lessee"], max_tokens: 12, temperature: 0.8, top_k: 5, seed: 9}
`

func TestParseYAML(t *testing.T) {
	tests := map[string]struct {
		yaml string
		want pipeline.Spec
	}{
		"defaults": {
			yaml: "dataset: {builtin: demo}\ntrain: {config: {n_ctx: 16}}\n",
			want: pipeline.Spec{
				Name:      "pipeline",
				Dataset:   pipeline.DatasetStage{Builtin: "demo", Output: "pipeline-clean"},
				Tokenizer: pipeline.TokenizerStage{Name: "pipeline"},
				Train:     pipeline.TrainStage{Model: "pipeline", Config: map[string]any{"n_ctx": 16.0}},
				Generate:  pipeline.GenerateStage{Model: "train", MaxTokens: 64},
			},
		},
		"names follow name": {
			yaml: "name: legal\ndataset: {input: raw}\ntrain: {config: {}}\n",
			want: pipeline.Spec{
				Name:      "legal",
				Dataset:   pipeline.DatasetStage{Input: "raw", Output: "legal-clean"},
				Tokenizer: pipeline.TokenizerStage{Name: "legal"},
				Train:     pipeline.TrainStage{Model: "legal", Config: map[string]any{}},
				Generate:  pipeline.GenerateStage{Model: "train", MaxTokens: 64},
			},
		},
		"full": {
			yaml: fullYAML,
			want: pipeline.Spec{
				Name:      "tiny",
				Dataset:   pipeline.DatasetStage{Builtin: "demo", Documents: 120, Seed: 3, Output: "tiny-clean", MinChars: 10},
				Tokenizer: pipeline.TokenizerStage{Name: "tok", VocabSize: 320, MinFrequency: 3, ValFraction: 0.1},
				Train: pipeline.TrainStage{
					Model: "tiny-model", Config: map[string]any{"n_ctx": 16.0, "n_embd": 32.0, "n_layer": 1.0, "n_head": 2.0},
					Backend: "cpu", Steps: 60, Batch: 8, LR: 0.01, EvalEvery: 10, CheckpointEvery: 20, LogEvery: 5, Seed: 1,
				},
				Generate: pipeline.GenerateStage{Model: "train", Prompts: []string{"第一条", "The lessee"}, MaxTokens: 12, Temperature: 0.8, TopK: 5, Seed: 9},
			},
		},
		"sixteen prompts": {
			yaml: "dataset: {builtin: demo}\ntrain: {config: {}}\ngenerate: {prompts: [" + strings.Repeat(`"p", `, 15) + `"p"]}` + "\n",
			want: pipeline.Spec{
				Name:      "pipeline",
				Dataset:   pipeline.DatasetStage{Builtin: "demo", Output: "pipeline-clean"},
				Tokenizer: pipeline.TokenizerStage{Name: "pipeline"},
				Train:     pipeline.TrainStage{Model: "pipeline", Config: map[string]any{}},
				Generate:  pipeline.GenerateStage{Model: "train", Prompts: strings.Split(strings.Repeat("p", 16), ""), MaxTokens: 64},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			js, spec, err := pipeline.ParseYAML([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tc.want, spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
			// The JSON is what the job carries: the service must read the
			// same spec from it.
			again, err := pipeline.ParseSpec(js)
			if err != nil {
				t.Fatalf("ParseSpec(%s): %v", js, err)
			}
			if diff := cmp.Diff(spec, again); diff != "" {
				t.Errorf("ParseSpec(ParseYAML JSON) (-ParseYAML +ParseSpec):\n%s", diff)
			}
		})
	}
}

func TestParseYAMLErrors(t *testing.T) {
	const base = "dataset: {builtin: demo}\ntrain: {config: {n_ctx: 16}}\n"
	tests := map[string]struct {
		yaml string
		want string // a substring of the error
	}{
		"unknown top-level field":  {base + "steps: 10\n", `unknown field "steps"`},
		"unknown dataset field":    {"dataset: {builtin: demo, outptu: x}\ntrain: {config: {}}\n", `unknown field "outptu"`},
		"unknown tokenizer field":  {base + "tokenizer: {vocab: 300}\n", `unknown field "vocab"`},
		"unknown train field":      {"dataset: {builtin: demo}\ntrain: {config: {}, stepz: 3}\n", `unknown field "stepz"`},
		"unknown generate field":   {base + "generate: {prompt: hi}\n", `unknown field "prompt"`},
		"wrong type":               {base + "generate: {max_tokens: many}\n", "max_tokens"},
		"list":                     {"- dataset\n- train\n", "mapping at the top level"},
		"scalar":                   {"just a string\n", "mapping at the top level"},
		"empty":                    {"", "mapping at the top level"},
		"null":                     {"null\n", "mapping at the top level"},
		"syntax":                   {"dataset: [\n", "pipeline YAML"},
		"non-string config key":    {"dataset: {builtin: demo}\ntrain: {config: {1: 2}}\n", "pipeline YAML"},
		"too large":                {base + "# " + strings.Repeat("x", pipeline.MaxYAML) + "\n", fmt.Sprintf("exceeds %d", pipeline.MaxYAML)},
		"17 prompts":               {base + "generate: {prompts: [" + strings.Repeat(`"p", `, 16) + `"p"]}` + "\n", "17 prompts; the limit is 16"},
		"prompt too long":          {base + "generate: {prompts: [\"ok\", " + strings.Repeat("x", 4097) + "]}\n", "generate.prompts[1]"},
		"invalid utf-8 prompt":     {base + "generate: {prompts: [\"a\xffb\"]}\n", "UTF-8"},
		"no dataset source":        {"train: {config: {}}\n", "dataset: set builtin"},
		"no train config":          {"dataset: {builtin: demo}\ntrain: {model: m}\n", "train.config"},
		"name traversal":           {base + "name: ../x\n", `name: name "../x"`},
		"name slash":               {base + "name: a/b\n", `name: name "a/b"`},
		"name wildcard":            {base + "name: 'a*'\n", `name: name "a*"`},
		"tokenizer name slash":     {base + "tokenizer: {name: a/b}\n", `tokenizer.name: name "a/b"`},
		"model traversal":          {"dataset: {builtin: demo}\ntrain: {model: ../m, config: {}}\n", `train.model: name "../m"`},
		"dataset output traversal": {"dataset: {builtin: demo, output: ../x}\ntrain: {config: {}}\n", `"../x"`},
		"dataset input slash":      {"dataset: {input: a/b}\ntrain: {config: {}}\n", `"a/b"`},
		"derived output too long":  {base + "name: " + strings.Repeat("n", 60) + "\n", "longer than 64"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			js, spec, err := pipeline.ParseYAML([]byte(tc.yaml))
			if !errors.Is(err, jobspec.ErrInvalid) {
				t.Fatalf("ParseYAML = %v, %+v, want an error wrapping %v", err, spec, jobspec.ErrInvalid)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if js != nil || spec != nil {
				t.Errorf("ParseYAML failed but returned %s, %+v", js, spec)
			}
		})
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := map[string]struct {
		json string
		want string
	}{
		"not an object":        {`["dataset"]`, "cannot unmarshal array"},
		"trailing data":        {`{"dataset":{"builtin":"demo"},"train":{"config":{}}} {}`, "trailing data"},
		"unknown nested field": {`{"dataset":{"builtin":"demo"},"train":{"config":{}},"generate":{"prompt":"x"}}`, `unknown field "prompt"`},
		"empty":                {``, "dataset: set builtin"},
		"17 prompts":           {`{"dataset":{"builtin":"demo"},"train":{"config":{}},"generate":{"prompts":[` + strings.Repeat(`"p",`, 16) + `"p"]}}`, "17 prompts"},
		// encoding/json would silently turn the byte into U+FFFD.
		"invalid utf-8 prompt": {"{\"dataset\":{\"builtin\":\"demo\"},\"train\":{\"config\":{}},\"generate\":{\"prompts\":[\"a\xffb\"]}}", "UTF-8"},
		"dataset output path":  {`{"dataset":{"builtin":"demo","output":"../x"},"train":{"config":{}}}`, `"../x"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			spec, err := pipeline.ParseSpec([]byte(tc.json))
			if !errors.Is(err, jobspec.ErrInvalid) {
				t.Fatalf("ParseSpec = %v, %+v, want an error wrapping %v", err, spec, jobspec.ErrInvalid)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// The example pipeline files parse, and the compression example chains
// every stage.
func TestExamples(t *testing.T) {
	for _, f := range []string{"demo.yaml", "compress.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", f))
		if err != nil {
			t.Fatal(err)
		}
		_, spec, err := pipeline.ParseYAML(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if f == "compress.yaml" && (spec.Quantize == nil || spec.Distill == nil || spec.Prune == nil || spec.Prune.From != "distill" || spec.Generate.Model != "prune") {
			t.Errorf("%s: quantize %v, distill %v, prune %v, generate from %q", f, spec.Quantize, spec.Distill, spec.Prune, spec.Generate.Model)
		}
	}
}
