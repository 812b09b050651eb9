package stub

import (
	"context"
	"fmt"

	"github.com/llmesh/llmesh/accel"
)

// Version is the version the stub reports in Info.
const Version = "0.1.0"

// Backend is the stub backend; see New.
type Backend struct {
	name, reason string
	device       string
	features     []string
}

var _ accel.Backend = (*Backend)(nil)

// Option configures a stub.
type Option func(*Backend)

// WithDevice sets the device Info reports (default "none").
func WithDevice(device string) Option { return func(b *Backend) { b.device = device } }

// WithFeatures sets the features Info reports.
func WithFeatures(f ...string) Option { return func(b *Backend) { b.features = f } }

// New returns a stub backend called name. reason completes the error
// message of every compute call, e.g. "the TPU backend is a stub by design".
func New(name, reason string, opts ...Option) *Backend {
	b := &Backend{name: name, reason: reason, device: "none"}
	for _, o := range opts {
		o(b)
	}
	return b
}

func (b *Backend) notImplemented(call string) error {
	return fmt.Errorf("%s backend: %s not implemented: %s: %w", b.name, call, b.reason, accel.ErrNotImplemented)
}

// Info reports the stub: Stub is true.
func (b *Backend) Info(context.Context) (accel.Info, error) {
	return accel.Info{
		Name:            b.name,
		Version:         Version,
		Device:          b.device,
		Features:        append([]string(nil), b.features...),
		Stub:            true,
		ProtocolVersion: accel.ProtocolVersion,
	}, nil
}

func (b *Backend) LoadModel(context.Context, accel.LoadRequest) (accel.LoadResult, error) {
	return accel.LoadResult{}, b.notImplemented("LoadModel")
}

func (b *Backend) TrainStep(context.Context, accel.TrainStepRequest) (accel.TrainStepResult, error) {
	return accel.TrainStepResult{}, b.notImplemented("TrainStep")
}

func (b *Backend) ApplyUpdate(context.Context, accel.UpdateRequest) (accel.UpdateResult, error) {
	return accel.UpdateResult{}, b.notImplemented("ApplyUpdate")
}

func (b *Backend) Evaluate(context.Context, accel.EvalRequest) (accel.EvalResult, error) {
	return accel.EvalResult{}, b.notImplemented("Evaluate")
}

func (b *Backend) DecodeStep(context.Context, accel.DecodeRequest) (accel.DecodeResult, error) {
	return accel.DecodeResult{}, b.notImplemented("DecodeStep")
}

func (b *Backend) SaveWeights(context.Context, accel.SaveRequest) (accel.SaveResult, error) {
	return accel.SaveResult{}, b.notImplemented("SaveWeights")
}

// Unload succeeds: a stub holds no models, so there is nothing to free.
func (b *Backend) Unload(_ context.Context, modelID string) error {
	if modelID == "" {
		return fmt.Errorf("%s backend: Unload: %w: empty model id", b.name, accel.ErrInvalidArgument)
	}
	return nil
}
