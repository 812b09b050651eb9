package tokbench

import (
	"fmt"

	"github.com/llmesh/llmesh/services/internal/bpe"
)

// ourEncodings maps Encodings to our codec's rank-file modes.
var ourEncodings = map[string]bpe.Encoding{
	"cl100k_base": bpe.Cl100kBase,
	"r50k_base":   bpe.R50kBase,
}

// loadOurs loads our codec from a tiktoken rank file.
func loadOurs(name string, data []byte) (*bpe.Tokenizer, error) {
	enc, ok := ourEncodings[name]
	if !ok {
		return nil, fmt.Errorf("tokbench: encoding %q is not one of %v", name, Encodings)
	}
	tok, err := bpe.LoadTiktoken(data, enc)
	if err != nil {
		return nil, fmt.Errorf("tokbench: encoding %s: %w", name, err)
	}
	return tok, nil
}
