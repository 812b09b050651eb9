package distiller

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/bus/tensor"
)

// The teacher messages. A request is a tensor payload (package bus/tensor,
// Arrow IPC) with "inputs" and "targets", int32 [batch, seq_len], and the
// metadata "k"; the reply holds "ids" (int32) and "logits" (float32), both
// [batch·seq_len, k] — one row of k per position, best first — and the
// metadata "loss" (the teacher's loss on the batch). A teacher that cannot
// answer replies with no data and the header ErrorHeader.

// ErrorHeader carries a teacher worker's error.
const ErrorHeader = "Llmesh-Error"

// ErrTeacherMessage is wrapped by every error about a malformed teacher
// request or reply.
var ErrTeacherMessage = errors.New("distiller: malformed teacher message")

// teacherTimeout bounds one teacher request.
const teacherTimeout = 2 * time.Minute

// limits of a teacher message: two tensors of rank 2.
func msgLimits(maxBytes int64) tensor.Limits {
	return tensor.Limits{MaxTensors: 2, MaxRank: 2, MaxTensorBytes: maxBytes, MaxTotalBytes: maxBytes, MaxMetaBytes: 64 << 10}
}

// EncodeRequest is a teacher request for a batch.
func EncodeRequest(batch, seqLen, k int, in, tgt []int32) ([]byte, error) {
	return tensor.Encode([]tensor.Tensor{
		tensor.FromInt32("inputs", []int{batch, seqLen}, in),
		tensor.FromInt32("targets", []int{batch, seqLen}, tgt),
	}, map[string]string{"k": strconv.Itoa(k)})
}

// DecodeRequest checks a teacher request against the teacher's vocabulary
// and context and returns its batch.
func DecodeRequest(payload []byte, vocab, nctx int) (batch, seqLen, k int, in, tgt []int32, err error) {
	fail := func(format string, args ...any) (int, int, int, []int32, []int32, error) {
		return 0, 0, 0, nil, nil, fmt.Errorf("%w: request: "+format, append([]any{ErrTeacherMessage}, args...)...)
	}
	set, err := tensor.Decode(payload, msgLimits(int64(len(payload))))
	if err != nil {
		return fail("%v", err)
	}
	k, err = strconv.Atoi(set.Meta["k"])
	if err != nil || k < 1 || k > accel.MaxTopK || k > vocab {
		return fail("k %q is not in [1, %d]", set.Meta["k"], min(accel.MaxTopK, vocab))
	}
	var shape []int
	for i, name := range []string{"inputs", "targets"} {
		t, ok := set.Get(name)
		if !ok {
			return fail("no %q tensor", name)
		}
		if len(t.Shape) != 2 || t.Shape[0] < 1 || t.Shape[1] < 1 || t.Shape[1] > nctx {
			return fail("%q has shape %v; want [batch, seq_len <= %d]", name, t.Shape, nctx)
		}
		if i == 1 && (t.Shape[0] != shape[0] || t.Shape[1] != shape[1]) {
			return fail("targets shape %v differs from inputs %v", t.Shape, shape)
		}
		shape = t.Shape
		v, err := tensor.Int32s(t)
		if err != nil {
			return fail("%q: %v", name, err)
		}
		for j, id := range v {
			if id < 0 || int(id) >= vocab {
				return fail("%q token %d at %d is outside the vocabulary %d", name, id, j, vocab)
			}
		}
		if i == 0 {
			in = append([]int32(nil), v...)
		} else {
			tgt = append([]int32(nil), v...)
		}
	}
	return shape[0], shape[1], k, in, tgt, nil
}

// EncodeSoftTargets is a teacher reply: positions rows of k ids and logits.
func EncodeSoftTargets(positions, k int, ids []int32, logits []float32, loss float64) ([]byte, error) {
	if len(ids) != positions*k || len(logits) != positions*k {
		return nil, fmt.Errorf("%w: %d ids and %d logits for %d positions x k %d", ErrTeacherMessage, len(ids), len(logits), positions, k)
	}
	return tensor.Encode([]tensor.Tensor{
		tensor.FromInt32("ids", []int{positions, k}, ids),
		tensor.FromFloat32("logits", []int{positions, k}, logits),
	}, map[string]string{"loss": strconv.FormatFloat(loss, 'g', -1, 64)})
}

// DecodeSoftTargets checks a teacher reply for the batch it answers:
// exactly positions rows of k, ids inside the vocabulary and distinct
// within a row, finite logits. The slices returned are copies.
func DecodeSoftTargets(payload []byte, positions, k, vocab int) (ids []int32, logits []float32, loss float64, err error) {
	fail := func(format string, args ...any) ([]int32, []float32, float64, error) {
		return nil, nil, 0, fmt.Errorf("%w: reply: "+format, append([]any{ErrTeacherMessage}, args...)...)
	}
	want := int64(positions) * int64(k) * 4
	set, err := tensor.Decode(payload, msgLimits(2*want))
	if err != nil {
		return fail("%v", err)
	}
	for _, name := range []string{"ids", "logits"} {
		t, ok := set.Get(name)
		if !ok {
			return fail("no %q tensor", name)
		}
		if len(t.Shape) != 2 || t.Shape[0] != positions || t.Shape[1] != k {
			return fail("%q has shape %v; want [%d, %d]", name, t.Shape, positions, k)
		}
		switch name {
		case "ids":
			v, err := tensor.Int32s(t)
			if err != nil {
				return fail("ids: %v", err)
			}
			ids = append([]int32(nil), v...)
		case "logits":
			v, err := tensor.Float32s(t)
			if err != nil {
				return fail("logits: %v", err)
			}
			logits = append([]float32(nil), v...)
		}
	}
	seen := make(map[int32]int, k)
	for r := range positions {
		row := ids[r*k : (r+1)*k]
		for j, id := range row {
			if id < 0 || int(id) >= vocab {
				return fail("id %d at position %d is outside the vocabulary %d", id, r, vocab)
			}
			if p, dup := seen[id]; dup && p == r {
				return fail("id %d appears twice at position %d", id, r)
			}
			seen[id] = r
			if l := logits[r*k+j]; math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
				return fail("logit %v at position %d is not finite", l, r)
			}
		}
	}
	if s, ok := set.Meta["loss"]; ok {
		if loss, err = strconv.ParseFloat(s, 64); err != nil {
			return fail("loss %q: %v", s, err)
		}
	}
	return ids, logits, loss, nil
}

// teacherWorker answers teacher requests on a job's subject with model id
// of backend be.
type teacherWorker struct {
	be    accel.Backend
	id    string
	vocab int
	nctx  int
}

// serve subscribes the worker (queue group "teacher") until the returned
// stop is called.
func (w *teacherWorker) serve(ctx context.Context, nc *nats.Conn, subject string) (stop func(), err error) {
	sub, err := nc.QueueSubscribe(subject, "teacher", func(m *nats.Msg) {
		data, err := w.answer(ctx, m.Data)
		reply := &nats.Msg{Data: data}
		if err != nil {
			reply = &nats.Msg{Header: nats.Header{ErrorHeader: []string{err.Error()}}}
		}
		_ = m.RespondMsg(reply)
	})
	if err != nil {
		return nil, fmt.Errorf("distiller: teacher worker: %w", err)
	}
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

func (w *teacherWorker) answer(ctx context.Context, payload []byte) ([]byte, error) {
	batch, seqLen, k, in, tgt, err := DecodeRequest(payload, w.vocab, w.nctx)
	if err != nil {
		return nil, err
	}
	res, err := w.be.Evaluate(ctx, accel.EvalRequest{ModelID: w.id, Batch: batch, SeqLen: seqLen, Inputs: in, Targets: tgt, TopK: k})
	if err != nil {
		return nil, err
	}
	n := batch * seqLen
	if len(res.TopKIndices) != n*k || len(res.TopKLogits) != n*k {
		return nil, fmt.Errorf("the backend returned %d top-k entries for %d positions x k %d (does it support top-k evaluation?)", len(res.TopKIndices), n, k)
	}
	return EncodeSoftTargets(n, k, res.TopKIndices, res.TopKLogits, res.Loss)
}

// askTeacher sends one batch to the teacher worker and returns its soft
// targets.
// It also returns the reply's size in bytes.
func askTeacher(ctx context.Context, nc *nats.Conn, subject string, batch, seqLen, k, vocab int, in, tgt []int32) ([]int32, []float32, int, error) {
	req, err := EncodeRequest(batch, seqLen, k, in, tgt)
	if err != nil {
		return nil, nil, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, teacherTimeout)
	defer cancel()
	m, err := nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: req})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("teacher request on %s: %w", subject, err)
	}
	if e := m.Header.Get(ErrorHeader); e != "" {
		return nil, nil, 0, fmt.Errorf("teacher: %s", e)
	}
	ids, logits, _, err := DecodeSoftTargets(m.Data, batch*seqLen, k, vocab)
	return ids, logits, len(m.Data), err
}
