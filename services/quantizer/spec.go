package quantizer

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/services/internal/finetune"
)

// Quantization modes.
const (
	// ModeInt8 quantizes the weights; activations stay FP32 and are
	// quantized per call (dynamic).
	ModeInt8 = "int8"
	// ModeW8A8 also fixes each linear layer's activation scale from
	// calibration batches (static).
	ModeW8A8 = "w8a8"
)

// Spec is the spec of a quantize job.
type Spec struct {
	// Model is the registered FP32 model to quantize; or Checkpoint (an
	// object ref) with its Config.
	Model      string          `json:"model,omitempty"`
	Checkpoint string          `json:"checkpoint,omitempty"`
	Config     json.RawMessage `json:"config,omitempty"`
	// Output is the name the quantized model is registered under
	// (default "<model>-<mode>"; a bare checkpoint registers nothing
	// unless Output is set).
	Output string `json:"output,omitempty"`
	// Mode is "int8" (default) or "w8a8".
	Mode string `json:"mode,omitempty"`
	// CalibBatches is how many validation batches calibrate the
	// activation scales (w8a8 only; default 8).
	CalibBatches int `json:"calib_batches,omitempty"`
	// QATSteps > 0 fine-tunes with quantization-aware training for that
	// many steps before quantizing.
	QATSteps int `json:"qat_steps,omitempty"`

	finetune.Hyper
}

// Validate checks the spec and fills in defaults.
func (s *Spec) Validate() error {
	if s.Model != "" {
		if err := bus.ValidName(s.Model); err != nil {
			return fmt.Errorf("model: %w", err)
		}
	}
	if (s.Model == "") == (s.Checkpoint == "") {
		return errors.New("set model (a registered model) or checkpoint (an object ref), one of them")
	}
	if s.Checkpoint != "" {
		if err := bus.ValidRef(s.Checkpoint); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		if len(s.Config) == 0 {
			return errors.New("checkpoint needs config (the transformer config)")
		}
	} else if len(s.Config) != 0 {
		return errors.New("config goes with checkpoint; a registered model has its own")
	}
	switch s.Mode {
	case "":
		s.Mode = ModeInt8
	case ModeInt8, ModeW8A8:
	default:
		return fmt.Errorf("mode %q: want %q (weights) or %q (weights and activations)", s.Mode, ModeInt8, ModeW8A8)
	}
	if s.Output == "" && s.Model != "" {
		s.Output = s.Model + "-" + s.Mode
	}
	if s.Output != "" {
		if err := bus.ValidName(s.Output); err != nil {
			return fmt.Errorf("output: %w", err)
		}
		if s.Output == s.Model {
			return fmt.Errorf("output %q is the source model: the FP32 model is kept, name the quantized one differently", s.Output)
		}
	}
	if s.Mode == ModeW8A8 && s.CalibBatches == 0 {
		s.CalibBatches = 8
	}
	switch {
	case s.CalibBatches < 0 || s.CalibBatches > 1024:
		return fmt.Errorf("calib_batches %d out of range [1, 1024]", s.CalibBatches)
	case s.CalibBatches > 0 && s.Mode != ModeW8A8:
		return fmt.Errorf("calib_batches needs mode %q (int8 quantizes activations per call)", ModeW8A8)
	case s.QATSteps < 0 || s.QATSteps > 1_000_000:
		return fmt.Errorf("qat_steps %d out of range [0, 1000000]", s.QATSteps)
	}
	return s.Hyper.Check(s.QATSteps, 1e-3)
}
