package acceltest_test

import (
	"testing"

	"github.com/llmesh/llmesh/accel/acceltest"
	"github.com/llmesh/llmesh/accel/stub"
)

func TestBigram(t *testing.T) {
	acceltest.Run(t, acceltest.NewBigram(), acceltest.Options{Reference: acceltest.NewBigram()})
}

func TestStub(t *testing.T) {
	acceltest.Run(t, stub.New("tpu", "the TPU backend is a stub by design"), acceltest.Options{})
}
