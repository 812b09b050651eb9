package transformer

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Param is a named view of one tensor inside the model's flat parameter
// vector. Data aliases Model.ParamData(); Offset is its start there.
type Param struct {
	Name   string
	Shape  []int
	Offset int
	Data   []float32
}

// Size is the number of elements.
func (p Param) Size() int { return len(p.Data) }

type layerParams struct {
	ln1W, ln1B, attnW, attnB, projW, projB []float32
	ln2W, ln2B, fcW, fcB, mprojW, mprojB   []float32
	gateW, gateB                           []float32 // SwiGLU only
}

// normParams is one norm's weight and bias (bias nil for RMSNorm).
type normParams struct{ w, b []float32 }

type modelParams struct {
	wte, wpe   []float32
	layers     []layerParams
	lnfW, lnfB []float32
	// exits[i] is the final norm of the early-exit head after layer
	// Config.ExitLayers[i].
	exits []normParams
}

// layout lists the model's tensors in their fixed order (GPT-2 names).
// The flat parameter and gradient vectors follow this order. A SwiGLU
// layer adds h.N.mlp.c_gate.{weight,bias} after h.N.mlp.c_fc (c_fc is the
// "up" projection: hidden = silu(x·c_gate) ⊙ (x·c_fc)); each exit layer L
// adds exit.L.ln_f.weight (and .bias for LayerNorm) after ln_f.
func layout(c Config) []Param {
	D := c.NEmbd
	var ps []Param
	add := func(name string, shape ...int) {
		off := 0
		if len(ps) > 0 {
			last := ps[len(ps)-1]
			off = last.Offset + numel(last.Shape)
		}
		ps = append(ps, Param{Name: name, Shape: shape, Offset: off})
	}
	norm := func(prefix string) {
		add(prefix+".weight", D)
		if !c.RMSNorm() {
			add(prefix+".bias", D)
		}
	}
	add("wte", c.VocabSize, D)
	if !c.RoPE() {
		add("wpe", c.NCtx, D)
	}
	for i := range c.NLayer {
		h := fmt.Sprintf("h.%d.", i)
		norm(h + "ln_1")
		add(h+"attn.c_attn.weight", D, 3*D)
		add(h+"attn.c_attn.bias", 3*D)
		add(h+"attn.c_proj.weight", D, D)
		add(h+"attn.c_proj.bias", D)
		norm(h + "ln_2")
		add(h+"mlp.c_fc.weight", D, 4*D)
		add(h+"mlp.c_fc.bias", 4*D)
		if c.SwiGLU() {
			add(h+"mlp.c_gate.weight", D, 4*D)
			add(h+"mlp.c_gate.bias", 4*D)
		}
		add(h+"mlp.c_proj.weight", 4*D, D)
		add(h+"mlp.c_proj.bias", D)
	}
	norm("ln_f")
	for _, l := range c.ExitLayers {
		norm(fmt.Sprintf("exit.%d.ln_f", l))
	}
	return ps
}

// bind points each Param (and the typed views) at flat.
func bind(c Config, ps []Param, flat []float32) modelParams {
	for i := range ps {
		n := numel(ps[i].Shape)
		ps[i].Data = flat[ps[i].Offset : ps[i].Offset+n : ps[i].Offset+n]
	}
	i := 0
	next := func() []float32 { d := ps[i].Data; i++; return d }
	var mp modelParams
	mp.wte = next()
	if !c.RoPE() {
		mp.wpe = next()
	}
	normPair := func() (w, b []float32) {
		w = next()
		if !c.RMSNorm() {
			b = next()
		}
		return
	}
	mp.layers = make([]layerParams, c.NLayer)
	for l := range mp.layers {
		lp := &mp.layers[l]
		lp.ln1W, lp.ln1B = normPair()
		lp.attnW, lp.attnB, lp.projW, lp.projB = next(), next(), next(), next()
		lp.ln2W, lp.ln2B = normPair()
		lp.fcW, lp.fcB = next(), next()
		if c.SwiGLU() {
			lp.gateW, lp.gateB = next(), next()
		}
		lp.mprojW, lp.mprojB = next(), next()
	}
	mp.lnfW, mp.lnfB = normPair()
	mp.exits = make([]normParams, len(c.ExitLayers))
	for i := range mp.exits {
		mp.exits[i].w, mp.exits[i].b = normPair()
	}
	return mp
}

// initParams fills the GPT-2 initialisation: normal(0, 0.02) for
// embeddings and weights, residual projections (attn.c_proj, mlp.c_proj)
// scaled by 1/sqrt(2·n_layer), biases 0 and norm weights 1.
func initParams(c Config, ps []Param, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x6c6c6d657368)) // "llmesh"
	resid := 0.02 / math.Sqrt(2*float64(c.NLayer))
	for _, p := range ps {
		switch {
		case hasSuffix(p.Name, "ln_1.weight"), hasSuffix(p.Name, "ln_2.weight"), hasSuffix(p.Name, "ln_f.weight"):
			for i := range p.Data {
				p.Data[i] = 1
			}
		case len(p.Shape) == 1:
			clear(p.Data)
		default:
			std := 0.02
			if hasSuffix(p.Name, "c_proj.weight") {
				std = resid
			}
			for i := range p.Data {
				p.Data[i] = float32(r.NormFloat64() * std)
			}
		}
	}
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }

func numel(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}
