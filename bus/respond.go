package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/llmesh/llmesh/bus/tensor"
)

// Respond answers a request with a protobuf reply; a message without a
// reply subject (a publish, not a request) is answered with nothing.
func Respond(m *nats.Msg, reply proto.Message) error {
	if m.Reply == "" {
		return nil
	}
	b, err := proto.Marshal(reply)
	if err != nil {
		return err
	}
	return m.Respond(b)
}

// GetTensors reads an object that holds an Arrow tensor payload and decodes
// it with the default limits. The tensors alias the object's bytes.
func (b *Bus) GetTensors(ctx context.Context, ref string) (*tensor.Set, error) {
	payload, err := b.GetObject(ctx, ref)
	if err != nil {
		return nil, err
	}
	set, err := tensor.Decode(payload, tensor.Limits{})
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", ref, err)
	}
	return set, nil
}
