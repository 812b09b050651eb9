package distiller

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/transformer"
	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/services/internal/finetune"
)

// Temperature bounds (the runtime's: beyond them z/T leaves float32's
// comfortable range, or the soft targets are one-hot in all but name).
const (
	minTemperature = 1e-2
	maxTemperature = 1e2
)

// DistillSpec is the spec of a distill job.
type DistillSpec struct {
	// Teacher is the registered teacher model; or TeacherCheckpoint (an
	// object ref) with TeacherConfig and, to check tokenizers,
	// TeacherTokenizer (a registered tokenizer).
	Teacher           string          `json:"teacher,omitempty"`
	TeacherCheckpoint string          `json:"teacher_checkpoint,omitempty"`
	TeacherConfig     json.RawMessage `json:"teacher_config,omitempty"`
	TeacherTokenizer  string          `json:"teacher_tokenizer,omitempty"`
	// Student is the student's transformer config (vocab_size defaults
	// to the teacher's and must equal it). StudentModel instead starts
	// from a registered model's weights and config.
	Student      json.RawMessage `json:"student,omitempty"`
	StudentModel string          `json:"student_model,omitempty"`
	// Tokenizer is the student's tokenizer (a registered tokenizer, name
	// or name/version); it must be the teacher's.
	Tokenizer string `json:"tokenizer,omitempty"`
	// Output is the name the student is registered under (default
	// "<teacher>-student").
	Output string `json:"output,omitempty"`
	Steps  int    `json:"steps,omitempty"`
	// Temperature softens both distributions; Alpha weighs the
	// distillation term (1-Alpha the cross-entropy); TopK is how many of
	// the teacher's logits per position travel.
	Temperature float64 `json:"temperature,omitempty"`
	Alpha       float64 `json:"alpha,omitempty"`
	TopK        int     `json:"top_k,omitempty"`
	// Baseline also trains the same student from the same initialisation
	// on the same batches without the teacher, for comparison.
	Baseline bool `json:"baseline,omitempty"`

	finetune.Hyper

	student transformer.Config
}

// Validate checks the spec and fills in defaults.
func (s *DistillSpec) Validate() error {
	if (s.Teacher == "") == (s.TeacherCheckpoint == "") {
		return errors.New("set teacher (a registered model) or teacher_checkpoint (an object ref), one of them")
	}
	if s.Teacher != "" {
		if err := bus.ValidName(s.Teacher); err != nil {
			return fmt.Errorf("teacher: %w", err)
		}
		if len(s.TeacherConfig) != 0 || s.TeacherTokenizer != "" {
			return errors.New("teacher_config and teacher_tokenizer go with teacher_checkpoint; a registered teacher has its own")
		}
	} else {
		if err := bus.ValidRef(s.TeacherCheckpoint); err != nil {
			return fmt.Errorf("teacher_checkpoint: %w", err)
		}
		if len(s.TeacherConfig) == 0 {
			return errors.New("teacher_checkpoint needs teacher_config (the transformer config)")
		}
	}
	for what, tok := range map[string]string{"tokenizer": s.Tokenizer, "teacher_tokenizer": s.TeacherTokenizer} {
		if tok != "" {
			if _, _, err := bus.ParseTokenizerRef(tok); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
	}
	switch {
	case len(s.Student) == 0 && s.StudentModel == "":
		return errors.New("student (the student's transformer config) or student_model is required")
	case len(s.Student) != 0 && s.StudentModel != "":
		return errors.New("set student or student_model, not both")
	case s.StudentModel != "":
		if err := bus.ValidName(s.StudentModel); err != nil {
			return fmt.Errorf("student_model: %w", err)
		}
	}
	if s.Output == "" {
		if s.Teacher == "" {
			return errors.New("output (the student's model name) is required with teacher_checkpoint")
		}
		s.Output = s.Teacher + "-student"
	}
	if err := bus.ValidName(s.Output); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	if s.Output == s.Teacher {
		return fmt.Errorf("output %q is the teacher's name", s.Output)
	}
	if s.Steps == 0 {
		s.Steps = 200
	}
	if s.Temperature == 0 {
		s.Temperature = 1
	}
	if s.Alpha == 0 {
		s.Alpha = 0.5
	}
	if s.TopK == 0 {
		s.TopK = 32
	}
	switch {
	case s.Steps < 1 || s.Steps > 10_000_000:
		return fmt.Errorf("steps %d out of range [1, 10000000]", s.Steps)
	case !(s.Temperature >= minTemperature && s.Temperature <= maxTemperature):
		return fmt.Errorf("temperature %g out of range [%g, %g]", s.Temperature, minTemperature, maxTemperature)
	case !(s.Alpha > 0 && s.Alpha <= 1):
		return fmt.Errorf("alpha %g out of range (0, 1]", s.Alpha)
	case s.TopK < 1 || s.TopK > accel.MaxTopK:
		return fmt.Errorf("top_k %d out of range [1, %d]", s.TopK, accel.MaxTopK)
	}
	return s.Hyper.Check(s.Steps, 3e-3)
}

// Pruning methods.
const (
	// MethodMagnitude zeroes the smallest-magnitude weights of the linear
	// layers (unstructured) until Sparsity of them are zero.
	MethodMagnitude = "magnitude"
	// MethodHeads removes (zeroes) the least important attention heads of
	// each layer, Sparsity of them.
	MethodHeads = "heads"
	// MethodNeurons removes the least important MLP neurons of each
	// layer, Sparsity of them.
	MethodNeurons = "neurons"
)

// PruneSpec is the spec of a prune job.
type PruneSpec struct {
	// Model is the registered model to prune; or Checkpoint (an object
	// ref) with its Config.
	Model      string          `json:"model,omitempty"`
	Checkpoint string          `json:"checkpoint,omitempty"`
	Config     json.RawMessage `json:"config,omitempty"`
	// Output is the name the pruned model is registered under (default
	// "<model>-pruned"; a bare checkpoint registers nothing unless set).
	Output string `json:"output,omitempty"`
	// Method is "magnitude" (default), "heads" or "neurons"; Sparsity
	// is the fraction of weights, heads or neurons removed (default 0.5).
	Method   string  `json:"method,omitempty"`
	Sparsity float64 `json:"sparsity,omitempty"`
	// Steps of fine-tuning after pruning, the zeros kept (default 100;
	// -1: none).
	Steps int `json:"steps,omitempty"`

	finetune.Hyper
}

// Validate checks the spec and fills in defaults.
func (s *PruneSpec) Validate() error {
	if (s.Model == "") == (s.Checkpoint == "") {
		return errors.New("set model (a registered model) or checkpoint (an object ref), one of them")
	}
	if s.Model != "" {
		if err := bus.ValidName(s.Model); err != nil {
			return fmt.Errorf("model: %w", err)
		}
		if len(s.Config) != 0 {
			return errors.New("config goes with checkpoint; a registered model has its own")
		}
	} else {
		if err := bus.ValidRef(s.Checkpoint); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		if len(s.Config) == 0 {
			return errors.New("checkpoint needs config (the transformer config)")
		}
	}
	if s.Output == "" && s.Model != "" {
		s.Output = s.Model + "-pruned"
	}
	if s.Output != "" {
		if err := bus.ValidName(s.Output); err != nil {
			return fmt.Errorf("output: %w", err)
		}
		if s.Output == s.Model {
			return fmt.Errorf("output %q is the source model: the dense model is kept, name the pruned one differently", s.Output)
		}
	}
	switch s.Method {
	case "":
		s.Method = MethodMagnitude
	case MethodMagnitude, MethodHeads, MethodNeurons:
	default:
		return fmt.Errorf("method %q: want %q, %q or %q", s.Method, MethodMagnitude, MethodHeads, MethodNeurons)
	}
	if s.Sparsity == 0 {
		s.Sparsity = 0.5
	}
	if !(s.Sparsity > 0 && s.Sparsity < 1) {
		return fmt.Errorf("sparsity %g out of range (0, 1)", s.Sparsity)
	}
	switch {
	case s.Steps == 0:
		s.Steps = 100
	case s.Steps == -1:
		s.Steps = 0
	case s.Steps < -1 || s.Steps > 10_000_000:
		return fmt.Errorf("steps %d out of range [-1, 10000000]", s.Steps)
	}
	return s.Hyper.Check(s.Steps, 1e-3)
}
