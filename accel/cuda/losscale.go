package cuda

import "fmt"

// LossScaler is dynamic loss scaling for fp16 training. The loss is
// multiplied by Scale before the backward pass, so that small gradients
// survive fp16; the gradients are then multiplied by 1/Scale and checked
// (Kernels.UnscaleCheck). A step with an inf or NaN gradient is skipped and
// the scale backs off; after Interval finite steps in a row it grows.
// This is the scheme of mixed-precision training (Micikevicius et al.,
// 2018) that PyTorch's GradScaler also follows.
type LossScaler struct {
	Scale    float32 // current scale
	Growth   float32 // factor after Interval finite steps (> 1)
	Backoff  float32 // factor after an overflow (in (0, 1))
	Interval int     // finite steps between growths
	MinScale float32 // the scale never backs off below this
	MaxScale float32 // nor grows above this

	finiteRun int
	skipped   int64
}

// NewLossScaler returns the usual settings: scale 2¹⁶, ×2 every 2000 finite
// steps, ×½ on overflow, within [1, 2²⁴].
func NewLossScaler() *LossScaler {
	return &LossScaler{Scale: 1 << 16, Growth: 2, Backoff: 0.5, Interval: 2000, MinScale: 1, MaxScale: 1 << 24}
}

// Validate checks the settings.
func (s *LossScaler) Validate() error {
	switch {
	case !(s.Scale > 0) || !(s.MinScale > 0) || s.MaxScale < s.MinScale || s.Scale < s.MinScale || s.Scale > s.MaxScale:
		return fmt.Errorf("loss scaler: scale %g outside [%g, %g] (both > 0)", s.Scale, s.MinScale, s.MaxScale)
	case !(s.Growth > 1):
		return fmt.Errorf("loss scaler: growth %g must exceed 1", s.Growth)
	case !(s.Backoff > 0 && s.Backoff < 1):
		return fmt.Errorf("loss scaler: backoff %g must be in (0, 1)", s.Backoff)
	case s.Interval < 1:
		return fmt.Errorf("loss scaler: interval %d must be at least 1", s.Interval)
	}
	return nil
}

// InvScale is the factor that unscales the gradients of the current step.
func (s *LossScaler) InvScale() float32 { return 1 / s.Scale }

// Update records whether this step's unscaled gradients were all finite
// and reports whether the optimizer step should be applied. It adjusts the
// scale for the next step.
func (s *LossScaler) Update(finite bool) (apply bool) {
	if !finite {
		s.Scale = max(s.Scale*s.Backoff, s.MinScale)
		s.finiteRun = 0
		s.skipped++
		return false
	}
	s.finiteRun++
	if s.finiteRun >= s.Interval {
		s.Scale = min(s.Scale*s.Growth, s.MaxScale)
		s.finiteRun = 0
	}
	return true
}

// Skipped counts the steps skipped for overflow.
func (s *LossScaler) Skipped() int64 { return s.skipped }
