package quantizer

import "github.com/llmesh/llmesh/accel/transformer"

// defaultQuantize is accel/transformer's quantization: per-output-channel
// INT8 weights — the learned position table too (one scale per position),
// which at n_ctx 256 is the difference between a 3.74x and a 3.91x smaller
// file — and static activation scales when actMax is set.
func defaultQuantize(ck []byte, cfg transformer.Config, actMax map[string]float32) ([]byte, error) {
	q, _, err := transformer.Quantize(ck, cfg, transformer.QuantOptions{ActivationMax: actMax, Positions: true})
	return q, err
}
