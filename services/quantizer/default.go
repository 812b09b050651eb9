package quantizer

import "github.com/llmesh/llmesh/accel/transformer"

// defaultQuantize is accel/transformer's quantization: per-output-channel
// INT8 weights, static activation scales when actMax is set.
func defaultQuantize(ck []byte, cfg transformer.Config, actMax map[string]float32) ([]byte, error) {
	q, _, err := transformer.Quantize(ck, cfg, transformer.QuantOptions{ActivationMax: actMax})
	return q, err
}
