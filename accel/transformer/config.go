package transformer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrInvalidConfig is wrapped by every error from Config.Validate and
// ParseConfig.
var ErrInvalidConfig = errors.New("transformer: invalid config")

// Limits that keep a hostile or mistaken config from allocating without
// bound. MaxParams bounds the parameter count (so one flat []float32 of
// weights, one of gradients and two of optimizer state stay addressable).
const (
	MaxVocab  = 1 << 20
	MaxCtx    = 1 << 16
	MaxEmbd   = 1 << 16
	MaxLayer  = 1 << 10
	MaxHead   = 1 << 10
	MaxParams = 1 << 31
)

// Positions and norms a Config may name.
const (
	PositionsLearned = "learned"
	PositionsRoPE    = "rope"
	NormLayerNorm    = "layernorm"
	NormRMSNorm      = "rmsnorm"
	MLPGELU          = "gelu"
	MLPSwiGLU        = "swiglu"
)

// Config describes a decoder-only GPT. Its JSON form is what checkpoints and
// accel.LoadRequest carry.
type Config struct {
	VocabSize int    `json:"vocab_size"`
	NCtx      int    `json:"n_ctx"`
	NEmbd     int    `json:"n_embd"`
	NLayer    int    `json:"n_layer"`
	NHead     int    `json:"n_head"`
	Positions string `json:"positions,omitempty"` // "learned" (default) or "rope"
	Norm      string `json:"norm,omitempty"`      // "layernorm" (default) or "rmsnorm"
	MLP       string `json:"mlp,omitempty"`       // "gelu" (default) or "swiglu"
	// AttnWindow > 0 makes attention a sliding window: a position sees
	// itself and the AttnWindow-1 positions before it. 0 is full causal.
	AttnWindow int `json:"attn_window,omitempty"`
	// AttnGlobal > 0 (with AttnWindow) adds global tokens: the first
	// AttnGlobal positions stay visible to every later position (the
	// local+global sparse pattern).
	AttnGlobal int `json:"attn_global,omitempty"`
	// ExitLayers lists the layers (1..n_layer-1, ascending) after which the
	// model has an early-exit head: its own final norm, then the tied
	// embedding as the vocabulary projection.
	ExitLayers []int `json:"exit_layers,omitempty"`
}

// ParseConfig decodes a JSON config strictly (unknown fields are an error),
// fills defaults and validates it.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if dec.More() {
		return Config{}, fmt.Errorf("%w: trailing data after config object", ErrInvalidConfig)
	}
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// JSON returns the config as JSON, defaults filled in.
func (c Config) JSON() []byte {
	b, _ := json.Marshal(c.withDefaults())
	return b
}

func (c Config) withDefaults() Config {
	if c.Positions == "" {
		c.Positions = PositionsLearned
	}
	if c.Norm == "" {
		c.Norm = NormLayerNorm
	}
	if c.MLP == "" {
		c.MLP = MLPGELU
	}
	return c
}

// HeadDim is n_embd / n_head.
func (c Config) HeadDim() int { return c.NEmbd / c.NHead }

// RoPE reports whether positions are rotary.
func (c Config) RoPE() bool { return c.Positions == PositionsRoPE }

// RMSNorm reports whether norms are RMSNorm (weight only).
func (c Config) RMSNorm() bool { return c.Norm == NormRMSNorm }

// SwiGLU reports whether the MLP is SwiGLU (gate, up and down projections
// of the same 4·n_embd hidden width) instead of GELU.
func (c Config) SwiGLU() bool { return c.MLP == MLPSwiGLU }

// Visible reports whether query position q attends to key position k
// (k <= q) under the config's attention pattern.
func (c Config) Visible(q, k int) bool {
	if k > q {
		return false
	}
	if c.AttnWindow <= 0 || q-k < c.AttnWindow {
		return true
	}
	return k < c.AttnGlobal
}

// Validate checks sizes against the limits above. Empty Positions and Norm
// mean the defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	check := func(name string, v, max int) error {
		if v <= 0 {
			return fmt.Errorf("%w: %s %d must be positive", ErrInvalidConfig, name, v)
		}
		if v > max {
			return fmt.Errorf("%w: %s %d exceeds %d", ErrInvalidConfig, name, v, max)
		}
		return nil
	}
	for _, f := range []struct {
		name   string
		v, max int
	}{
		{"vocab_size", c.VocabSize, MaxVocab},
		{"n_ctx", c.NCtx, MaxCtx},
		{"n_embd", c.NEmbd, MaxEmbd},
		{"n_layer", c.NLayer, MaxLayer},
		{"n_head", c.NHead, MaxHead},
	} {
		if err := check(f.name, f.v, f.max); err != nil {
			return err
		}
	}
	if c.NEmbd%c.NHead != 0 {
		return fmt.Errorf("%w: n_embd %d is not divisible by n_head %d", ErrInvalidConfig, c.NEmbd, c.NHead)
	}
	switch c.Positions {
	case PositionsLearned:
	case PositionsRoPE:
		if c.HeadDim()%2 != 0 {
			return fmt.Errorf("%w: head dim %d (n_embd/n_head) must be even for rope", ErrInvalidConfig, c.HeadDim())
		}
	default:
		return fmt.Errorf("%w: positions %q is not %q or %q", ErrInvalidConfig, c.Positions, PositionsLearned, PositionsRoPE)
	}
	switch c.Norm {
	case NormLayerNorm, NormRMSNorm:
	default:
		return fmt.Errorf("%w: norm %q is not %q or %q", ErrInvalidConfig, c.Norm, NormLayerNorm, NormRMSNorm)
	}
	switch c.MLP {
	case MLPGELU, MLPSwiGLU:
	default:
		return fmt.Errorf("%w: mlp %q is not %q or %q", ErrInvalidConfig, c.MLP, MLPGELU, MLPSwiGLU)
	}
	if c.AttnWindow < 0 || c.AttnWindow > MaxCtx {
		return fmt.Errorf("%w: attn_window %d is outside 0..%d", ErrInvalidConfig, c.AttnWindow, MaxCtx)
	}
	if c.AttnGlobal < 0 || c.AttnGlobal > MaxCtx {
		return fmt.Errorf("%w: attn_global %d is outside 0..%d", ErrInvalidConfig, c.AttnGlobal, MaxCtx)
	}
	if c.AttnGlobal > 0 && c.AttnWindow == 0 {
		return fmt.Errorf("%w: attn_global %d needs an attn_window", ErrInvalidConfig, c.AttnGlobal)
	}
	for i, l := range c.ExitLayers {
		if l < 1 || l >= c.NLayer {
			return fmt.Errorf("%w: exit layer %d is outside 1..%d", ErrInvalidConfig, l, c.NLayer-1)
		}
		if i > 0 && l <= c.ExitLayers[i-1] {
			return fmt.Errorf("%w: exit_layers %v are not strictly ascending", ErrInvalidConfig, c.ExitLayers)
		}
	}
	if n := c.paramCount(); n > MaxParams {
		return fmt.Errorf("%w: %d parameters exceed %d", ErrInvalidConfig, n, int64(MaxParams))
	}
	return nil
}

// paramCount computes the parameter count in int64 so that it cannot
// overflow for any config within the per-field limits.
func (c Config) paramCount() int64 {
	V, C, D, L := int64(c.VocabSize), int64(c.NCtx), int64(c.NEmbd), int64(c.NLayer)
	norm := 2 * D
	if c.withDefaults().RMSNorm() {
		norm = D
	}
	n := V * D
	if !c.withDefaults().RoPE() {
		n += C * D
	}
	mlp := D*4*D + 4*D + 4*D*D + D
	if c.withDefaults().SwiGLU() {
		mlp += D*4*D + 4*D
	}
	layer := 2*norm + D*3*D + 3*D + D*D + D + mlp
	return n + L*layer + norm + int64(len(c.ExitLayers))*norm
}
