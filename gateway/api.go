package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/llmesh/llmesh/bus"
	apiv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/api/v1"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

type jobs struct{ g *Gateway }

func (h *jobs) SubmitJob(ctx context.Context, req *connect.Request[apiv1.SubmitJobRequest]) (*connect.Response[apiv1.SubmitJobResponse], error) {
	if err := bus.ValidKind(req.Msg.Kind); err != nil {
		return nil, connectError(err)
	}
	spec := []byte("{}")
	if req.Msg.Spec != nil {
		var err error
		if spec, err = protojson.Marshal(req.Msg.Spec); err != nil {
			return nil, connectError(fmt.Errorf("%w: spec: %v", errInvalid, err))
		}
	}
	rec, err := h.g.bus.SubmitJob(ctx, req.Msg.Kind, spec, bus.SubmitOptions{ID: req.Msg.Id})
	if err != nil {
		return nil, connectError(err)
	}
	h.g.log.Info("job submitted", "id", rec.Id, "kind", rec.Kind)
	return connect.NewResponse(&apiv1.SubmitJobResponse{Job: jobFromRecord(rec)}), nil
}

func (h *jobs) GetJob(ctx context.Context, req *connect.Request[apiv1.GetJobRequest]) (*connect.Response[apiv1.GetJobResponse], error) {
	rec, err := h.g.bus.GetJob(ctx, req.Msg.Id)
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&apiv1.GetJobResponse{Job: jobFromRecord(rec)}), nil
}

func (h *jobs) ListJobs(ctx context.Context, req *connect.Request[apiv1.ListJobsRequest]) (*connect.Response[apiv1.ListJobsResponse], error) {
	if req.Msg.Kind != "" {
		if err := bus.ValidKind(req.Msg.Kind); err != nil {
			return nil, connectError(err)
		}
	}
	recs, err := h.g.bus.ListJobs(ctx, req.Msg.Kind)
	if err != nil {
		return nil, connectError(err)
	}
	out := &apiv1.ListJobsResponse{}
	for _, r := range recs {
		out.Jobs = append(out.Jobs, jobFromRecord(r))
	}
	return connect.NewResponse(out), nil
}

func (h *jobs) WatchJob(ctx context.Context, req *connect.Request[apiv1.WatchJobRequest], stream *connect.ServerStream[apiv1.JobEvent]) error {
	if _, err := h.g.bus.GetJob(ctx, req.Msg.Id); err != nil {
		return connectError(err)
	}
	events, err := h.g.bus.WatchEvents(ctx, req.Msg.Id)
	if err != nil {
		return connectError(err)
	}
	for ev := range events {
		if err := stream.Send(eventToAPI(ev)); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (h *jobs) CancelJob(ctx context.Context, req *connect.Request[apiv1.CancelJobRequest]) (*connect.Response[apiv1.CancelJobResponse], error) {
	rec, err := h.g.bus.CancelJob(ctx, req.Msg.Id)
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&apiv1.CancelJobResponse{Job: jobFromRecord(rec)}), nil
}

// jsonStruct turns a JSON object into a Struct; anything else gives nil.
func jsonStruct(b []byte) *structpb.Struct {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var s structpb.Struct
	if err := protojson.Unmarshal(b, &s); err != nil {
		return nil
	}
	return &s
}

func jobFromRecord(r *busv1.JobRecord) *apiv1.Job {
	return &apiv1.Job{
		Id: r.Id, Kind: r.Kind, State: stateName(r.State), Spec: jsonStruct(r.SpecJson), Result: jsonStruct(r.ResultJson),
		Error: r.Error, SubmittedAt: r.SubmittedAt, UpdatedAt: r.UpdatedAt, Parent: r.Parent,
	}
}

func stateName(s busv1.JobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATE_"))
}

func eventToAPI(ev *busv1.Event) *apiv1.JobEvent {
	out := &apiv1.JobEvent{JobId: ev.JobId, Type: ev.Type, Time: ev.Time}
	switch b := ev.Body.(type) {
	case *busv1.Event_Progress:
		out.Stage, out.Done, out.Total, out.Message = b.Progress.Stage, b.Progress.Done, b.Progress.Total, b.Progress.Message
	case *busv1.Event_Metric:
		out.Metric, out.Value, out.Step = b.Metric.Name, b.Metric.Value, b.Metric.Step
	case *busv1.Event_Log:
		out.Message = b.Log
	case *busv1.Event_Artifact:
		out.Stage, out.Artifact, out.Ref, out.Total = b.Artifact.Kind, b.Artifact.Name, b.Artifact.Ref, b.Artifact.Size
	case *busv1.Event_ResultJson:
		out.Result = jsonStruct(b.ResultJson)
	case *busv1.Event_Error:
		out.Error = b.Error
	}
	return out
}

type datasets struct{ g *Gateway }

func (h *datasets) UploadDataset(ctx context.Context, req *connect.Request[apiv1.UploadDatasetRequest]) (*connect.Response[apiv1.UploadDatasetResponse], error) {
	m := req.Msg
	if err := bus.ValidName(m.Name); err != nil {
		return nil, connectError(err)
	}
	if int64(len(m.Content)) > h.g.cfg.MaxUpload {
		return nil, connect.NewError(connect.CodeResourceExhausted,
			fmt.Errorf("dataset %q: upload of %d bytes exceeds the limit of %d bytes", m.Name, len(m.Content), h.g.cfg.MaxUpload))
	}
	format := m.Format
	if format == "" {
		format = "jsonl"
	}
	docs, err := countDocuments(m.Content, format)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("dataset %q: %w", m.Name, err))
	}
	info, err := h.g.bus.PutBytes(ctx, m.Content)
	if err != nil {
		return nil, connectError(err)
	}
	rec := &busv1.DatasetRecord{Name: m.Name, Ref: info.Ref, Size: info.Size, Format: format, Documents: docs, CreatedAt: timestamppb.Now()}
	if err := h.g.bus.PutDataset(ctx, rec); err != nil {
		return nil, connectError(err)
	}
	h.g.log.Info("dataset uploaded", "name", m.Name, "bytes", info.Size, "documents", docs)
	return connect.NewResponse(&apiv1.UploadDatasetResponse{Dataset: datasetToAPI(rec)}), nil
}

// countDocuments checks the upload's framing (the services parse it fully)
// so that a wrong file is refused at the door, not in a job later.
func countDocuments(b []byte, format string) (int64, error) {
	switch format {
	case "jsonl":
		var n int64
		for i, line := range bytes.Split(b, []byte("\n")) {
			line = bytes.TrimSpace(line)
			if len(line) == 0 {
				continue
			}
			var rec struct {
				Text *string `json:"text"`
			}
			if err := json.Unmarshal(line, &rec); err != nil || rec.Text == nil {
				return 0, fmt.Errorf("line %d is not a JSON object with a \"text\" string", i+1)
			}
			n++
		}
		return n, nil
	case "text":
		n := int64(0)
		for _, d := range bytes.Split(b, []byte("\n\n")) {
			if len(bytes.TrimSpace(d)) > 0 {
				n++
			}
		}
		return n, nil
	}
	return 0, fmt.Errorf("unknown format %q (want jsonl or text)", format)
}

func datasetToAPI(r *busv1.DatasetRecord) *apiv1.Dataset {
	return &apiv1.Dataset{Name: r.Name, Ref: r.Ref, Size: r.Size, Format: r.Format, Documents: r.Documents, CreatedAt: r.CreatedAt}
}

func (h *datasets) ListDatasets(ctx context.Context, req *connect.Request[apiv1.ListDatasetsRequest]) (*connect.Response[apiv1.ListDatasetsResponse], error) {
	recs, err := h.g.bus.ListDatasets(ctx)
	if err != nil {
		return nil, connectError(err)
	}
	out := &apiv1.ListDatasetsResponse{}
	for _, r := range recs {
		out.Datasets = append(out.Datasets, datasetToAPI(r))
	}
	return connect.NewResponse(out), nil
}

type models struct{ g *Gateway }

func (h *models) ListModels(ctx context.Context, req *connect.Request[apiv1.ListModelsRequest]) (*connect.Response[apiv1.ListModelsResponse], error) {
	recs, err := h.g.bus.ListModels(ctx)
	if err != nil {
		return nil, connectError(err)
	}
	out := &apiv1.ListModelsResponse{}
	for _, r := range recs {
		out.Models = append(out.Models, &apiv1.Model{Name: r.Name, Parameters: r.Parameters, Step: r.Step, ValLoss: r.ValLoss, Checkpoint: r.Checkpoint, CreatedAt: r.CreatedAt})
	}
	return connect.NewResponse(out), nil
}

type inference struct{ g *Gateway }

func (h *inference) Generate(ctx context.Context, req *connect.Request[apiv1.GenerateRequest], stream *connect.ServerStream[apiv1.GenerateResponse]) error {
	m := req.Msg
	if err := bus.ValidName(m.Model); err != nil {
		return connectError(err)
	}
	if _, err := h.g.bus.GetModel(ctx, m.Model); err != nil {
		return connectError(err)
	}
	return connectError(h.g.bus.Generate(ctx, &busv1.GenerateRequest{
		Model: m.Model, Prompt: m.Prompt, MaxTokens: m.MaxTokens, Temperature: m.Temperature, TopK: m.TopK, Seed: m.Seed,
		TopP: m.TopP, RepetitionPenalty: m.RepetitionPenalty, Stop: m.Stop, ExitThreshold: m.ExitThreshold,
	}, func(c *busv1.GenerateChunk) error {
		return stream.Send(&apiv1.GenerateResponse{
			Text: c.Text, Done: c.Done, FinishReason: c.FinishReason, PromptTokens: c.PromptTokens, CompletionTokens: c.CompletionTokens,
			LayersSaved: c.LayersSaved,
		})
	}))
}
