package distiller

import (
	"bytes"
	"fmt"
	"math"

	"github.com/llmesh/llmesh/accel/transformer"
)

// defaultPrune is accel/transformer's pruning: magnitude per matrix to
// sparsity; heads: round(sparsity·n_head) heads of every layer; neurons:
// that fraction of every layer's MLP neurons.
func defaultPrune(ck []byte, cfg transformer.Config, method string, sparsity float64) ([]byte, error) {
	c, err := transformer.ReadCheckpoint(ck, cfg, nil)
	if err != nil {
		return nil, err
	}
	ps := transformer.PruneSpec{Method: method}
	switch method {
	case MethodMagnitude:
		ps.Method, ps.Sparsity = transformer.PruneMethodMagnitude, sparsity
	case MethodHeads:
		n := int(math.Round(sparsity * float64(cfg.NHead)))
		if n < 1 || n >= cfg.NHead {
			return nil, fmt.Errorf("sparsity %g of %d heads a layer removes %d; want at least one and fewer than all", sparsity, cfg.NHead, n)
		}
		ps.Method, ps.HeadsPerLayer = transformer.PruneMethodHeads, n
	case MethodNeurons:
		ps.Method, ps.NeuronFraction = transformer.PruneMethodNeurons, sparsity
	}
	if _, err := ps.Apply(c.Model); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := transformer.WriteCheckpoint(&buf, c.Model, c.Step, nil); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
