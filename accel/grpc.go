package accel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accelv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/accel/v1"
)

// remoteError is an error that crossed the plugin boundary: its message is
// the plugin's, and errors.Is finds the sentinel its gRPC code maps to.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// toStatus maps a backend error to a gRPC status error, keeping its message.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var code codes.Code
	switch {
	case errors.Is(err, ErrNotImplemented):
		code = codes.Unimplemented
	case errors.Is(err, ErrUnknownModel):
		code = codes.NotFound
	case errors.Is(err, ErrInvalidArgument):
		code = codes.InvalidArgument
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	default:
		code = codes.Internal
	}
	return status.Error(code, err.Error())
}

// fromStatus maps an error returned by a gRPC call back to the package's
// sentinels. Like Nomad's grpcutils.HandleReqCtxGrpcErr it tells a caller
// who cancelled (ctx.Err() is returned as is) from a plugin that died
// (Unavailable, a closing connection: wraps ErrPluginDied).
func fromStatus(ctx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%w: accelerator %s: %v", ErrPluginDied, method, err)
	}
	switch st.Code() {
	case codes.Unimplemented:
		return &remoteError{msg: st.Message(), sentinel: ErrNotImplemented}
	case codes.NotFound:
		return &remoteError{msg: st.Message(), sentinel: ErrUnknownModel}
	case codes.InvalidArgument:
		return &remoteError{msg: st.Message(), sentinel: ErrInvalidArgument}
	case codes.Unavailable, codes.Canceled:
		// Canceled while the caller's ctx is live means the connection
		// closed under the call.
		return fmt.Errorf("%w: accelerator %s: %s", ErrPluginDied, method, st.Message())
	case codes.DeadlineExceeded:
		return &remoteError{msg: st.Message(), sentinel: context.DeadlineExceeded}
	default:
		return &remoteError{msg: st.Message()}
	}
}

// grpcClient is the host side of the protocol: a Backend over a gRPC
// connection to one plugin process. It does not own the connection.
type grpcClient struct {
	c    accelv1.AcceleratorClient
	bulk bulkPool // shared-memory files for gradients (bulk.go)
}

// closeBulk removes the client's bulk files; the host calls it when the
// plugin process is gone.
func (g *grpcClient) closeBulk() { g.bulk.close() }

var _ Backend = (*grpcClient)(nil)

func newGRPCClient(conn grpc.ClientConnInterface) *grpcClient {
	return &grpcClient{c: accelv1.NewAcceleratorClient(conn)}
}

func (g *grpcClient) Info(ctx context.Context) (Info, error) {
	r, err := g.c.Info(ctx, &accelv1.InfoRequest{})
	if err != nil {
		return Info{}, fromStatus(ctx, "Info", err)
	}
	return Info{
		Name:            r.GetName(),
		Version:         r.GetVersion(),
		Device:          r.GetDevice(),
		Features:        r.GetFeatures(),
		Stub:            r.GetStub(),
		ProtocolVersion: int(r.GetProtocolVersion()),
	}, nil
}

func (g *grpcClient) LoadModel(ctx context.Context, req LoadRequest) (LoadResult, error) {
	pr := &accelv1.LoadModelRequest{
		ModelId:    req.ModelID,
		ConfigJson: req.ConfigJSON,
		Weights:    req.Weights,
		Seed:       req.Seed,
	}
	if o := req.Optimizer; o != nil {
		pr.Optimizer = &accelv1.OptimizerConfig{
			Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, WeightDecay: o.WeightDecay, GradClip: o.GradClip,
			LabelSmoothing: o.LabelSmoothing, Precision: o.Precision,
			Qat: o.QAT, KeepSparsity: o.KeepSparsity,
		}
	}
	r, err := g.c.LoadModel(ctx, pr)
	if err != nil {
		return LoadResult{}, fromStatus(ctx, "LoadModel", err)
	}
	return LoadResult{Parameters: r.GetParameters(), Step: r.GetStep()}, nil
}

// checkInt32 refuses batch sizes that do not fit the protocol's int32.
func checkInt32(batch, seqLen int) error {
	if batch != int(int32(batch)) || seqLen != int(int32(seqLen)) {
		return fmt.Errorf("%w: batch %d or seq_len %d does not fit in int32", ErrInvalidArgument, batch, seqLen)
	}
	return nil
}

func (g *grpcClient) TrainStep(ctx context.Context, req TrainStepRequest) (TrainStepResult, error) {
	if err := checkInt32(req.Batch, req.SeqLen); err != nil {
		return TrainStepResult{}, err
	}
	pr := &accelv1.TrainStepRequest{
		ModelId:         req.ModelID,
		Batch:           int32(req.Batch),
		SeqLen:          int32(req.SeqLen),
		Inputs:          req.Inputs,
		Targets:         req.Targets,
		ReturnGradients: req.ReturnGradients,
	}
	if t := req.Teacher; t != nil {
		if t.K != int(int32(t.K)) {
			return TrainStepResult{}, fmt.Errorf("%w: teacher k %d does not fit in int32", ErrInvalidArgument, t.K)
		}
		pr.Teacher = &accelv1.SoftTargets{K: int32(t.K), Indices: t.Indices, Logits: t.Logits, Temperature: t.Temperature, Alpha: t.Alpha}
	}
	var reg *region
	if req.ReturnGradients {
		if reg = g.bulk.get(g.bulk.sizeHint()); reg != nil {
			defer g.bulk.put(reg)
			pr.GradientsBulk = &accelv1.Bulk{Path: reg.path}
		}
	}
	// unary is the plain call: the gradients are reported once, at the end.
	unary := func(reg *region) (TrainStepResult, error) {
		r, err := g.c.TrainStep(ctx, pr)
		if err != nil {
			return TrainStepResult{}, err
		}
		res, err := g.trainResult(r, reg)
		if err == nil {
			ReportGradients(req, res.Gradients)
		}
		return res, err
	}
	var (
		res TrainStepResult
		err error
	)
	if reg != nil && req.GradientsReady != nil {
		res, err = g.trainStepStream(ctx, req, pr, reg)
	} else {
		res, err = unary(reg)
	}
	if err != nil && reg != nil && status.Code(err) == codes.FailedPrecondition && ctx.Err() == nil {
		// The plugin cannot open the host's bulk files: go inline from now on.
		g.bulk.disable()
		pr.GradientsBulk = nil
		res, err = unary(nil)
	}
	if err != nil {
		if _, ok := status.FromError(err); ok {
			err = fromStatus(ctx, "TrainStep", err)
		}
		return TrainStepResult{}, err
	}
	if req.ReturnGradients {
		g.bulk.setHint(4 * len(res.Gradients))
	}
	return res, nil
}

// trainResult turns a TrainStep response into the result, reading the
// gradients from reg when the plugin put them there.
func (g *grpcClient) trainResult(r *accelv1.TrainStepResponse, reg *region) (TrainStepResult, error) {
	res := TrainStepResult{Loss: r.GetLoss(), Gradients: r.GetGradients()}
	if n := r.GetGradientsInBulk(); n > 0 {
		if reg == nil || n > uint64(len(reg.mem)/4) {
			size := 0
			if reg != nil {
				size = len(reg.mem) / 4
			}
			return TrainStepResult{}, fmt.Errorf("accelerator TrainStep: the plugin reported %d gradients in a bulk file that holds %d", n, size)
		}
		res.Gradients = append([]float32(nil), floats(reg.mem, int(n))...)
	}
	return res, nil
}

// trainStepStream is TrainStep through TrainStepStream: the plugin writes
// each finished range of gradients into reg and says so, and the host
// hands it to req.GradientsReady at once, while the backward pass goes
// on. Ranges the plugin did not report (it could not write them there)
// are handed over from the response at the end, so every gradient is
// reported exactly once. Errors are gRPC statuses or plain errors.
func (g *grpcClient) trainStepStream(ctx context.Context, req TrainStepRequest, pr *accelv1.TrainStepRequest, reg *region) (TrainStepResult, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := g.c.TrainStepStream(sctx, &accelv1.TrainStepStreamRequest{Step: pr})
	if err != nil {
		return TrainStepResult{}, err
	}
	var got []span // reported so far
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return TrainStepResult{}, fmt.Errorf("%w: accelerator TrainStepStream ended without a response", ErrPluginDied)
		}
		if err != nil {
			return TrainStepResult{}, err
		}
		switch e := ev.GetEvent().(type) {
		case *accelv1.TrainStepStreamResponse_Ready:
			lo, hi := e.Ready.GetLo(), e.Ready.GetHi()
			if lo >= hi || hi > uint64(len(reg.mem)/4) || overlaps(got, int(lo), int(hi)) {
				return TrainStepResult{}, fmt.Errorf("accelerator TrainStepStream: the plugin reported gradients [%d, %d): empty, beyond the %d of its bulk file or reported before", lo, hi, len(reg.mem)/4)
			}
			req.GradientsReady(int(lo), int(hi), floats(reg.mem, int(hi))[lo:hi])
			got = append(got, span{int(lo), int(hi)})
		case *accelv1.TrainStepStreamResponse_Done:
			res, err := g.trainResult(e.Done, reg)
			if err != nil {
				return res, err
			}
			gaps, err := uncovered(got, len(res.Gradients))
			if err != nil {
				return TrainStepResult{}, fmt.Errorf("accelerator TrainStepStream: %w", err)
			}
			for _, s := range gaps {
				req.GradientsReady(s.lo, s.hi, res.Gradients[s.lo:s.hi])
			}
			return res, nil
		default:
			return TrainStepResult{}, fmt.Errorf("accelerator TrainStepStream: an empty event")
		}
	}
}

// span is a range [lo, hi) of a vector.
type span struct{ lo, hi int }

func overlaps(spans []span, lo, hi int) bool {
	for _, s := range spans {
		if lo < s.hi && s.lo < hi {
			return true
		}
	}
	return false
}

// uncovered returns the ranges of [0, n) outside spans (which do not
// overlap), in order; a span beyond n is an error.
func uncovered(spans []span, n int) ([]span, error) {
	spans = slices.Clone(spans)
	slices.SortFunc(spans, func(a, b span) int { return a.lo - b.lo })
	var gaps []span
	at := 0
	for _, s := range spans {
		if s.hi > n {
			return nil, fmt.Errorf("gradients [%d, %d) reported of %d", s.lo, s.hi, n)
		}
		if s.lo > at {
			gaps = append(gaps, span{at, s.lo})
		}
		at = s.hi
	}
	if at < n {
		gaps = append(gaps, span{at, n})
	}
	return gaps, nil
}

func (g *grpcClient) ApplyUpdate(ctx context.Context, req UpdateRequest) (UpdateResult, error) {
	pr := &accelv1.ApplyUpdateRequest{
		ModelId:      req.ModelID,
		LearningRate: req.LearningRate,
		Gradients:    req.Gradients,
	}
	if reg := g.bulk.get(4 * len(req.Gradients)); reg != nil {
		defer g.bulk.put(reg)
		copy(floats(reg.mem, len(req.Gradients)), req.Gradients)
		pr.Gradients, pr.GradientsBulk = nil, &accelv1.Bulk{Path: reg.path, Count: uint64(len(req.Gradients))}
	}
	r, err := g.c.ApplyUpdate(ctx, pr)
	if err != nil && pr.GradientsBulk != nil && status.Code(err) == codes.FailedPrecondition && ctx.Err() == nil {
		g.bulk.disable()
		pr.Gradients, pr.GradientsBulk = req.Gradients, nil
		r, err = g.c.ApplyUpdate(ctx, pr)
	}
	if err != nil {
		return UpdateResult{}, fromStatus(ctx, "ApplyUpdate", err)
	}
	return UpdateResult{GradNorm: r.GetGradNorm(), Step: r.GetStep()}, nil
}

func (g *grpcClient) Evaluate(ctx context.Context, req EvalRequest) (EvalResult, error) {
	if err := checkInt32(req.Batch, req.SeqLen); err != nil {
		return EvalResult{}, err
	}
	if req.TopK != int(int32(req.TopK)) {
		return EvalResult{}, fmt.Errorf("%w: top_k %d does not fit in int32", ErrInvalidArgument, req.TopK)
	}
	r, err := g.c.Evaluate(ctx, &accelv1.EvaluateRequest{
		ModelId:         req.ModelID,
		Batch:           int32(req.Batch),
		SeqLen:          int32(req.SeqLen),
		Inputs:          req.Inputs,
		Targets:         req.Targets,
		TopK:            int32(req.TopK),
		ActivationStats: req.ActivationStats,
	})
	if err != nil {
		return EvalResult{}, fromStatus(ctx, "Evaluate", err)
	}
	return EvalResult{
		Loss: r.GetLoss(), Tokens: r.GetTokens(),
		TopKIndices: r.GetTopKIndices(), TopKLogits: r.GetTopKLogits(), ActivationMax: r.GetActivationMax(),
	}, nil
}

func (g *grpcClient) DecodeStep(ctx context.Context, req DecodeRequest) (DecodeResult, error) {
	seqs := make([]*accelv1.Sequence, len(req.Sequences))
	for i, s := range req.Sequences {
		seqs[i] = &accelv1.Sequence{Tokens: s}
	}
	r, err := g.c.DecodeStep(ctx, &accelv1.DecodeStepRequest{
		ModelId: req.ModelID, Sequences: seqs, CacheIds: req.CacheIDs,
		Release: req.Release, ExitThreshold: req.ExitThreshold,
		Steps: int32(req.Steps), StopTokens: req.StopTokens,
	})
	if err != nil {
		return DecodeResult{}, fromStatus(ctx, "DecodeStep", err)
	}
	var toks [][]int32
	if ts := r.GetTokens(); len(ts) > 0 {
		toks = make([][]int32, len(ts))
		for i, t := range ts {
			toks[i] = t.GetTokens()
		}
	}
	logits := make([][]float32, len(r.GetLogits()))
	for i, l := range r.GetLogits() {
		logits[i] = l.GetValues()
	}
	return DecodeResult{Logits: logits, CachedTokens: ints(r.GetCachedTokens()), ExitLayers: ints(r.GetExitLayers()), Tokens: toks}, nil
}

func (g *grpcClient) SaveWeights(ctx context.Context, req SaveRequest) (SaveResult, error) {
	r, err := g.c.SaveWeights(ctx, &accelv1.SaveWeightsRequest{ModelId: req.ModelID, WithOptimizer: req.WithOptimizer})
	if err != nil {
		return SaveResult{}, fromStatus(ctx, "SaveWeights", err)
	}
	return SaveResult{Safetensors: r.GetSafetensors(), ConfigJSON: r.GetConfigJson(), Step: r.GetStep()}, nil
}

func (g *grpcClient) Unload(ctx context.Context, modelID string) error {
	_, err := g.c.Unload(ctx, &accelv1.UnloadRequest{ModelId: modelID})
	return fromStatus(ctx, "Unload", err)
}

// grpcServer is the plugin side of the protocol: it serves any Backend.
type grpcServer struct {
	accelv1.UnimplementedAcceleratorServer
	impl Backend
	maps bulkMaps // the host's bulk files, mapped (bulk.go)
}

// bulkStatus maps a bulk-file error to a status: FailedPrecondition for a
// file this process cannot open (the host then goes inline), the usual
// mapping otherwise.
func bulkStatus(err error) error {
	if errors.Is(err, errBulkUnavailable) {
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return toStatus(err)
}

func (s *grpcServer) Info(ctx context.Context, _ *accelv1.InfoRequest) (*accelv1.InfoResponse, error) {
	in, err := s.impl.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	pv := in.ProtocolVersion
	if pv == 0 {
		pv = ProtocolVersion
	}
	return &accelv1.InfoResponse{
		Name:            in.Name,
		Version:         in.Version,
		Device:          in.Device,
		Features:        in.Features,
		Stub:            in.Stub,
		ProtocolVersion: uint32(pv),
	}, nil
}

func (s *grpcServer) LoadModel(ctx context.Context, r *accelv1.LoadModelRequest) (*accelv1.LoadModelResponse, error) {
	req := LoadRequest{
		ModelID:    r.GetModelId(),
		ConfigJSON: r.GetConfigJson(),
		Weights:    r.GetWeights(),
		Seed:       r.GetSeed(),
	}
	if o := r.GetOptimizer(); o != nil {
		req.Optimizer = &OptimizerConfig{
			Beta1: o.GetBeta1(), Beta2: o.GetBeta2(), Eps: o.GetEps(), WeightDecay: o.GetWeightDecay(), GradClip: o.GetGradClip(),
			LabelSmoothing: o.GetLabelSmoothing(), Precision: o.GetPrecision(),
			QAT: o.GetQat(), KeepSparsity: o.GetKeepSparsity(),
		}
	}
	res, err := s.impl.LoadModel(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	return &accelv1.LoadModelResponse{Parameters: res.Parameters, Step: res.Step}, nil
}

// trainRequest is the Go form of a TrainStep request.
func trainRequest(r *accelv1.TrainStepRequest) TrainStepRequest {
	req := TrainStepRequest{
		ModelID:         r.GetModelId(),
		Batch:           int(r.GetBatch()),
		SeqLen:          int(r.GetSeqLen()),
		Inputs:          r.GetInputs(),
		Targets:         r.GetTargets(),
		ReturnGradients: r.GetReturnGradients(),
	}
	if t := r.GetTeacher(); t != nil {
		req.Teacher = &SoftTargets{K: int(t.GetK()), Indices: t.GetIndices(), Logits: t.GetLogits(), Temperature: t.GetTemperature(), Alpha: t.GetAlpha()}
	}
	return req
}

func (s *grpcServer) TrainStep(ctx context.Context, r *accelv1.TrainStepRequest) (*accelv1.TrainStepResponse, error) {
	res, err := s.impl.TrainStep(ctx, trainRequest(r))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &accelv1.TrainStepResponse{Loss: res.Loss, Gradients: res.Gradients}
	if b := r.GetGradientsBulk(); b != nil && len(res.Gradients) > 0 {
		mem, release, err := s.maps.view(b.GetPath(), 0)
		if err != nil {
			return nil, bulkStatus(err)
		}
		if 4*len(res.Gradients) <= len(mem) { // otherwise inline: the host's hint was stale
			copy(floats(mem, len(res.Gradients)), res.Gradients)
			out.Gradients, out.GradientsInBulk = nil, uint64(len(res.Gradients))
		}
		release()
	}
	return out, nil
}

// TrainStepStream runs the step with a GradientsReady that copies each
// finished range into the host's bulk file and tells the host, so that the
// host can use it while the backward pass goes on. A range that does not
// fit the file is not reported (nor any after it): the response then
// carries the gradients inline and the host reports the rest itself.
func (s *grpcServer) TrainStepStream(r *accelv1.TrainStepStreamRequest, stream accelv1.Accelerator_TrainStepStreamServer) error {
	pr := r.GetStep()
	b := pr.GetGradientsBulk()
	if b == nil || !pr.GetReturnGradients() {
		return status.Error(codes.InvalidArgument, "train step stream: needs return_gradients and a bulk file")
	}
	mem, release, err := s.maps.view(b.GetPath(), 0)
	if err != nil {
		return bulkStatus(err)
	}
	defer release()
	req := trainRequest(pr)
	var (
		sent    int  // gradients reported
		stopped bool // a range did not fit, or the host is gone
		sendErr error
	)
	req.GradientsReady = func(lo, hi int, vals []float32) {
		if stopped {
			return
		}
		if lo < 0 || lo >= hi || 4*hi > len(mem) {
			stopped = true
			return
		}
		copy(floats(mem, hi)[lo:hi], vals)
		ev := &accelv1.TrainStepStreamResponse{Event: &accelv1.TrainStepStreamResponse_Ready{Ready: &accelv1.GradientsReady{Lo: uint64(lo), Hi: uint64(hi)}}}
		if sendErr = stream.Send(ev); sendErr != nil {
			stopped = true
			return
		}
		sent += hi - lo
	}
	res, err := s.impl.TrainStep(stream.Context(), req)
	if err != nil {
		return toStatus(err)
	}
	if sendErr != nil {
		return sendErr
	}
	out := &accelv1.TrainStepResponse{Loss: res.Loss, Gradients: res.Gradients}
	if n := len(res.Gradients); n > 0 && 4*n <= len(mem) {
		if sent != n { // a range went unreported: write the whole vector
			copy(floats(mem, n), res.Gradients)
		}
		out.Gradients, out.GradientsInBulk = nil, uint64(n)
	}
	return stream.Send(&accelv1.TrainStepStreamResponse{Event: &accelv1.TrainStepStreamResponse_Done{Done: out}})
}

func (s *grpcServer) ApplyUpdate(ctx context.Context, r *accelv1.ApplyUpdateRequest) (*accelv1.ApplyUpdateResponse, error) {
	req := UpdateRequest{
		ModelID:      r.GetModelId(),
		LearningRate: r.GetLearningRate(),
		Gradients:    r.GetGradients(),
	}
	if b := r.GetGradientsBulk(); b != nil {
		if len(req.Gradients) > 0 {
			return nil, status.Error(codes.InvalidArgument, "apply update: gradients both inline and in a bulk file")
		}
		if b.GetCount() > maxBulkBytes/4 {
			return nil, status.Errorf(codes.InvalidArgument, "apply update: %d bulk gradients is over the limit", b.GetCount())
		}
		n := int(b.GetCount())
		mem, release, err := s.maps.view(b.GetPath(), 4*n)
		if err != nil {
			return nil, bulkStatus(err)
		}
		defer release()
		// The view aliases the shared file for the length of the call only
		// (backends copy request slices they keep).
		req.Gradients = floats(mem, n)
	}
	res, err := s.impl.ApplyUpdate(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	return &accelv1.ApplyUpdateResponse{GradNorm: res.GradNorm, Step: res.Step}, nil
}

func (s *grpcServer) Evaluate(ctx context.Context, r *accelv1.EvaluateRequest) (*accelv1.EvaluateResponse, error) {
	res, err := s.impl.Evaluate(ctx, EvalRequest{
		ModelID:         r.GetModelId(),
		Batch:           int(r.GetBatch()),
		SeqLen:          int(r.GetSeqLen()),
		Inputs:          r.GetInputs(),
		Targets:         r.GetTargets(),
		TopK:            int(r.GetTopK()),
		ActivationStats: r.GetActivationStats(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &accelv1.EvaluateResponse{
		Loss: res.Loss, Tokens: res.Tokens,
		TopKIndices: res.TopKIndices, TopKLogits: res.TopKLogits, ActivationMax: res.ActivationMax,
	}, nil
}

func (s *grpcServer) DecodeStep(ctx context.Context, r *accelv1.DecodeStepRequest) (*accelv1.DecodeStepResponse, error) {
	seqs := make([][]int32, len(r.GetSequences()))
	for i, sq := range r.GetSequences() {
		seqs[i] = sq.GetTokens()
	}
	res, err := s.impl.DecodeStep(ctx, DecodeRequest{
		ModelID: r.GetModelId(), Sequences: seqs, CacheIDs: r.GetCacheIds(),
		Release: r.GetRelease(), ExitThreshold: r.GetExitThreshold(),
		Steps: int(r.GetSteps()), StopTokens: r.GetStopTokens(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	logits := make([]*accelv1.Logits, len(res.Logits))
	for i, l := range res.Logits {
		logits[i] = &accelv1.Logits{Values: l}
	}
	var toks []*accelv1.Sequence
	for _, t := range res.Tokens {
		toks = append(toks, &accelv1.Sequence{Tokens: t})
	}
	return &accelv1.DecodeStepResponse{Logits: logits, CachedTokens: int32s(res.CachedTokens), ExitLayers: int32s(res.ExitLayers), Tokens: toks}, nil
}

func (s *grpcServer) SaveWeights(ctx context.Context, r *accelv1.SaveWeightsRequest) (*accelv1.SaveWeightsResponse, error) {
	res, err := s.impl.SaveWeights(ctx, SaveRequest{ModelID: r.GetModelId(), WithOptimizer: r.GetWithOptimizer()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &accelv1.SaveWeightsResponse{Safetensors: res.Safetensors, ConfigJson: res.ConfigJSON, Step: res.Step}, nil
}

func (s *grpcServer) Unload(ctx context.Context, r *accelv1.UnloadRequest) (*accelv1.UnloadResponse, error) {
	if err := s.impl.Unload(ctx, r.GetModelId()); err != nil {
		return nil, toStatus(err)
	}
	return &accelv1.UnloadResponse{}, nil
}

func ints(v []int32) []int {
	if v == nil {
		return nil
	}
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

func int32s(v []int) []int32 {
	if v == nil {
		return nil
	}
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}
