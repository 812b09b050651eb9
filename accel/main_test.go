package accel_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
	"github.com/llmesh/llmesh/accel/stub"
)

// testRoleEnv names the backend a re-executed test binary serves (go-plugin's
// re-exec helper pattern): the host in these tests launches os.Args[0] with
// it set, and TestMain serves that backend instead of running tests.
const testRoleEnv = "LLMESH_TEST_PLUGIN"

func TestMain(m *testing.M) {
	if role := os.Getenv(testRoleEnv); role != "" {
		if err := serveTestRole(role); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	code := m.Run()
	if tpuBuild.dir != "" {
		os.RemoveAll(tpuBuild.dir)
	}
	os.Exit(code)
}

const tpuReason = "the TPU backend is a stub by design"

func serveTestRole(role string) error {
	switch role {
	case "tpu":
		accel.Serve(stub.New("tpu", tpuReason))
	case "bigram":
		accel.Serve(testBigram{acceltest.NewBigram()})
	case "badversion":
		h := accel.Handshake
		h.ProtocolVersion = accel.ProtocolVersion + 1
		accel.Serve(testBigram{acceltest.NewBigram()}, accel.WithHandshakeForTest(h))
	case "badinfo":
		accel.Serve(wrongVersion{testBigram{acceltest.NewBigram()}})
	case "badcookie":
		h := accel.Handshake
		h.MagicCookieValue = "not-the-hosts-cookie"
		accel.Serve(testBigram{acceltest.NewBigram()}, accel.WithHandshakeForTest(h))
	case "badcookiekey":
		h := accel.Handshake
		h.MagicCookieKey = "SOME_OTHER_PLUGIN_SYSTEM"
		accel.Serve(testBigram{acceltest.NewBigram()}, accel.WithHandshakeForTest(h))
	case "sickly":
		// Healthy until a model named "sick" is loaded.
		accel.Serve(testBigram{acceltest.NewBigram()}, accel.WithHealth(func() bool { return !sick.Load() }))
	case "neverhealthy":
		accel.Serve(testBigram{acceltest.NewBigram()}, accel.WithHealth(func() bool { return false }))
	default:
		if serveRuntimeRole(role) {
			return nil
		}
		return fmt.Errorf("unknown test plugin role %q", role)
	}
	return nil
}

// wrongVersion reports a protocol version the host does not speak.
type wrongVersion struct{ accel.Backend }

func (w wrongVersion) Info(ctx context.Context) (accel.Info, error) {
	in, err := w.Backend.Info(ctx)
	in.ProtocolVersion = accel.ProtocolVersion + 41
	return in, err
}

// testBigram is the bigram test backend with two hooks: Evaluate of model
// "block" blocks until the call is cancelled (or a minute passes), and
// LoadModel of model "crash" writes a line to stderr and exits the process
// mid-call. LoadModel of model "sick" makes the "sickly" role unhealthy.
type testBigram struct{ *acceltest.Bigram }

func (b testBigram) Evaluate(ctx context.Context, req accel.EvalRequest) (accel.EvalResult, error) {
	if req.ModelID == "block" {
		select {
		case <-ctx.Done():
			return accel.EvalResult{}, ctx.Err()
		case <-time.After(time.Minute):
			return accel.EvalResult{}, fmt.Errorf("block: nobody cancelled")
		}
	}
	return b.Bigram.Evaluate(ctx, req)
}

// sick is set by loading model "sick"; the "sickly" role then reports
// NOT_SERVING.
var sick atomic.Bool

func (b testBigram) LoadModel(ctx context.Context, req accel.LoadRequest) (accel.LoadResult, error) {
	if req.ModelID == "sick" {
		sick.Store(true)
	}
	if req.ModelID == "crash" {
		// fd 2 is the process's real stderr; os.Stderr is go-plugin's
		// stdio stream, which might not make it out before the exit.
		fmt.Fprintln(os.NewFile(2, "stderr"), "fatal error: test plugin crashing on purpose")
		os.Exit(3)
	}
	return b.Bigram.LoadModel(ctx, req)
}
