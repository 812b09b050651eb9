package transformer

import (
	"strings"
	"testing"
)

// TestLayoutMatchesParamCount checks that the tensors layout lists add up to
// the count Config.Validate limits, for every architecture option, and that
// the SwiGLU gate and exit-head norms carry their documented names.
func TestLayoutMatchesParamCount(t *testing.T) {
	base := Config{VocabSize: 13, NCtx: 7, NEmbd: 8, NLayer: 3, NHead: 2}
	for name, mod := range map[string]func(*Config){
		"gpt2":    func(*Config) {},
		"rope":    func(c *Config) { c.Positions = PositionsRoPE },
		"rmsnorm": func(c *Config) { c.Norm = NormRMSNorm },
		"swiglu":  func(c *Config) { c.MLP = MLPSwiGLU },
		"exits":   func(c *Config) { c.ExitLayers = []int{1, 2} },
		"all": func(c *Config) {
			c.Positions, c.Norm, c.MLP, c.ExitLayers = PositionsRoPE, NormRMSNorm, MLPSwiGLU, []int{2}
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := base
			mod(&c)
			c = c.withDefaults()
			ps := layout(c)
			last := ps[len(ps)-1]
			if got, want := int64(last.Offset+numel(last.Shape)), c.paramCount(); got != want {
				t.Fatalf("layout has %d parameters, paramCount %d", got, want)
			}
			names := map[string]bool{}
			for _, p := range ps {
				names[p.Name] = true
			}
			if c.SwiGLU() && (!names["h.0.mlp.c_gate.weight"] || !names["h.2.mlp.c_gate.bias"]) {
				t.Errorf("swiglu layout lacks c_gate tensors")
			}
			for _, l := range c.ExitLayers {
				pre := "exit." + string(rune('0'+l)) + ".ln_f."
				if !names[pre+"weight"] || names[pre+"bias"] == c.RMSNorm() {
					t.Errorf("exit layer %d norm tensors wrong", l)
				}
			}
			m := New(c, nil, 1)
			for _, p := range m.Params() {
				if strings.HasSuffix(p.Name, "ln_f.weight") && p.Data[0] != 1 {
					t.Errorf("%s initialised to %v, want 1", p.Name, p.Data[0])
				}
			}
		})
	}
}
