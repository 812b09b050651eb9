package distiller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/transformer"
	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/internal/finetune"
	"github.com/llmesh/llmesh/services/internal/jobspec"
)

// Sentinel errors of bad distill inputs.
var (
	// ErrVocabMismatch: the student's vocabulary differs from the
	// teacher's, so their distributions cannot be compared.
	ErrVocabMismatch = errors.New("distiller: student and teacher vocabularies differ")
	// ErrTokenizerMismatch: the student's tokenizer is not the teacher's,
	// so the teacher's token ids would mean other text to the student.
	ErrTokenizerMismatch = errors.New("distiller: student and teacher tokenizers differ")
)

// Launcher starts accelerator plugins; *accel.Host is one.
type Launcher interface {
	Launch(ctx context.Context, backend string) (*accel.Plugin, error)
}

// PruneFunc prunes an FP32 checkpoint (no optimizer state) of config cfg
// by method (MethodMagnitude, MethodHeads, MethodNeurons) to sparsity and
// returns the pruned checkpoint, the removed weights exactly zero.
type PruneFunc func(ck []byte, cfg transformer.Config, method string, sparsity float64) ([]byte, error)

// Config configures the service.
type Config struct {
	Bus    *bus.Bus
	Host   Launcher
	Logger *slog.Logger
	// Prune is the pruning itself (default: accel/transformer's).
	Prune PruneFunc
}

// Service runs distill and prune jobs.
type Service struct {
	bus   *bus.Bus
	host  Launcher
	log   *slog.Logger
	prune PruneFunc
}

// New validates cfg and builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Bus == nil || cfg.Host == nil {
		return nil, errors.New("distiller: config needs a bus and a plugin host")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := cfg.Prune
	if p == nil {
		p = defaultPrune
	}
	return &Service{bus: cfg.Bus, host: cfg.Host, log: log.With("service", "distiller"), prune: p}, nil
}

// Run serves distill and prune jobs until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		errc <- s.bus.ServeJobs(ctx, bus.KindPrune, s.handlePrune, bus.WorkerOptions{AckWait: time.Minute})
	}()
	err := s.bus.ServeJobs(ctx, bus.KindDistill, s.handleDistill, bus.WorkerOptions{AckWait: time.Minute})
	return errors.Join(err, <-errc)
}

// DistillResult is what a distill job reports.
type DistillResult struct {
	// Model is the student's registered name, Checkpoint its weights.
	Model      string `json:"model"`
	Checkpoint string `json:"checkpoint"`
	Teacher    string `json:"teacher"`
	// Parameters of both; ParameterRatio is the student's over the
	// teacher's.
	TeacherParameters uint64  `json:"teacher_parameters"`
	StudentParameters uint64  `json:"student_parameters"`
	ParameterRatio    float64 `json:"parameter_ratio"`
	Steps             int     `json:"steps"`
	Temperature       float64 `json:"temperature"`
	Alpha             float64 `json:"alpha"`
	TopK              int     `json:"top_k"`
	// Validation losses on the same EvalTokens tokens.
	TeacherValLoss        float64 `json:"teacher_val_loss"`
	StudentInitialValLoss float64 `json:"student_initial_val_loss"`
	StudentValLoss        float64 `json:"student_val_loss"`
	// ScratchValLoss is the same student trained without the teacher
	// (only with baseline); VsScratch = 1 - student/scratch (how much
	// lower the distilled student's loss is).
	ScratchValLoss float64 `json:"scratch_val_loss,omitempty"`
	VsScratch      float64 `json:"vs_scratch,omitempty"`
	// VsTeacher = student/teacher - 1.
	VsTeacher  float64 `json:"vs_teacher"`
	EvalTokens int64   `json:"eval_tokens"`
	// TeacherBytes is the Arrow bytes of soft targets the student
	// received, over all steps.
	TeacherBytes int64    `json:"teacher_bytes"`
	TrainRefs    []string `json:"train_refs"`
	ValRef       string   `json:"val_ref"`
	Backend      string   `json:"backend"`
	Seconds      float64  `json:"seconds"`
}

func (s *Service) handleDistill(ctx context.Context, job *bus.Job) ([]byte, error) {
	var sp DistillSpec
	if err := jobspec.Decode("distill", job.Spec, &sp); err != nil {
		return nil, err
	}
	res, err := s.Distill(ctx, job, &sp)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// tokenizerRef resolves a registered tokenizer to its object ref.
func (s *Service) tokenizerRef(ctx context.Context, name string) (string, int32, error) {
	tr, err := s.bus.GetTokenizer(ctx, name)
	if err != nil {
		return "", 0, err
	}
	return tr.Ref, tr.VocabSize, nil
}

// Distill runs a validated spec for job.
func (s *Service) Distill(ctx context.Context, job *bus.Job, sp *DistillSpec) (*DistillResult, error) {
	start := time.Now()
	teacher, err := finetune.Resolve(ctx, s.bus, sp.Teacher, sp.TeacherCheckpoint, sp.TeacherConfig)
	if err != nil {
		return nil, fmt.Errorf("distiller: teacher: %w", err)
	}
	if sp.TeacherTokenizer != "" {
		if teacher.TokenizerRef, _, err = s.tokenizerRef(ctx, sp.TeacherTokenizer); err != nil {
			return nil, fmt.Errorf("distiller: teacher_tokenizer: %w", err)
		}
	}
	tname, twhat := sp.Teacher, fmt.Sprintf("%q", sp.Teacher)
	if tname == "" {
		tname, twhat = sp.TeacherCheckpoint, "checkpoint "+sp.TeacherCheckpoint
	}
	// The student: a config, or a registered model's weights and config.
	var studentJSON json.RawMessage
	var studentWeights []byte
	studentTok, studentTokWhat := "", ""
	if sp.StudentModel != "" {
		sm, err := finetune.Resolve(ctx, s.bus, sp.StudentModel, "", nil)
		if err != nil {
			return nil, fmt.Errorf("distiller: student_model: %w", err)
		}
		if q, _, _ := finetune.IsQuantized(sm.Weights); q {
			return nil, fmt.Errorf("distiller: student_model %q is quantized; a student trains in FP32", sp.StudentModel)
		}
		studentJSON, studentWeights = sm.ConfigJSON, sm.Weights
		studentTok, studentTokWhat = sm.TokenizerRef, fmt.Sprintf("model %q's tokenizer", sp.StudentModel)
	} else {
		var cfg map[string]any
		if err := json.Unmarshal(sp.Student, &cfg); err != nil || cfg == nil {
			return nil, fmt.Errorf("%w: distill: student is not a JSON object", jobspec.ErrInvalid)
		}
		if v, ok := cfg["vocab_size"]; !ok || v == nil {
			cfg["vocab_size"] = teacher.Config.VocabSize
		}
		studentJSON, _ = json.Marshal(cfg)
	}
	student, err := transformer.ParseConfig(studentJSON)
	if err != nil {
		return nil, fmt.Errorf("%w: distill: student config: %w", jobspec.ErrInvalid, err)
	}
	if student.VocabSize != teacher.Config.VocabSize {
		return nil, fmt.Errorf("%w: the student's vocab_size is %d, the teacher %s's is %d: distillation matches distributions over the same tokens",
			ErrVocabMismatch, student.VocabSize, twhat, teacher.Config.VocabSize)
	}
	if sp.Tokenizer != "" {
		ref, vocab, err := s.tokenizerRef(ctx, sp.Tokenizer)
		if err != nil {
			return nil, fmt.Errorf("distiller: tokenizer: %w", err)
		}
		if int(vocab) > student.VocabSize {
			return nil, fmt.Errorf("%w: tokenizer %q has %d tokens, more than the student's vocab_size %d", ErrVocabMismatch, sp.Tokenizer, vocab, student.VocabSize)
		}
		if studentTok != "" && studentTok != ref {
			return nil, fmt.Errorf("%w: tokenizer %q (%s) is not %s (%s)", ErrTokenizerMismatch, sp.Tokenizer, short(ref), studentTokWhat, short(studentTok))
		}
		studentTok, studentTokWhat = ref, fmt.Sprintf("tokenizer %q", sp.Tokenizer)
	}
	if studentTok != "" && teacher.TokenizerRef != "" && studentTok != teacher.TokenizerRef {
		return nil, fmt.Errorf("%w: the student's %s (%s) is not the teacher %s's (%s): the teacher's token ids would mean other text to the student",
			ErrTokenizerMismatch, studentTokWhat, short(studentTok), twhat, short(teacher.TokenizerRef))
	}
	if studentTok == "" {
		studentTok = teacher.TokenizerRef
	}
	if err := sp.Refs(teacher, true); err != nil {
		return nil, fmt.Errorf("distiller: %w", err)
	}
	if err := sp.CheckSeqLen(min(teacher.Config.NCtx, student.NCtx)); err != nil {
		return nil, fmt.Errorf("%w: distill: %w", jobspec.ErrInvalid, err)
	}
	if need := int64(sp.Batch*sp.SeqLen*sp.TopK)*8 + 4096; need > s.bus.Conn().MaxPayload() {
		return nil, fmt.Errorf("%w: distill: batch %d x seq_len %d x top_k %d soft targets need %d bytes a message, above the bus limit %d; lower top_k or batch",
			jobspec.ErrInvalid, sp.Batch, sp.SeqLen, sp.TopK, need, s.bus.Conn().MaxPayload())
	}
	data, err := finetune.Load(ctx, s.bus, sp.TrainRefs, sp.ValRef, teacher.Config.VocabSize, sp.Batch, sp.SeqLen, sp.Seed)
	if err != nil {
		return nil, fmt.Errorf("distiller: %w", err)
	}
	windows := data.ValWindows(sp.EvalBatches)
	be, err := s.host.Launch(ctx, sp.Backend)
	if err != nil {
		return nil, fmt.Errorf("distiller: launch %s backend: %w", sp.Backend, err)
	}
	defer be.Close()
	res := &DistillResult{Model: sp.Output, Teacher: tname, Steps: sp.Steps, Temperature: sp.Temperature, Alpha: sp.Alpha, TopK: sp.TopK,
		TrainRefs: sp.TrainRefs, ValRef: sp.ValRef, Backend: sp.Backend}
	for _, w := range windows {
		res.EvalTokens += int64(w.Rows * sp.SeqLen)
	}

	// The teacher, served on the job's teacher subject.
	tid := job.ID + "-teacher"
	lr, err := be.LoadModel(ctx, accel.LoadRequest{ModelID: tid, ConfigJSON: teacher.ConfigJSON, Weights: teacher.Weights})
	if err != nil {
		return nil, fmt.Errorf("distiller: load teacher %s: %w", twhat, err)
	}
	defer be.Unload(context.WithoutCancel(ctx), tid)
	res.TeacherParameters = lr.Parameters
	if res.TeacherValLoss, err = finetune.Evaluate(ctx, be, tid, sp.SeqLen, windows); err != nil {
		return nil, fmt.Errorf("distiller: evaluate teacher: %w", err)
	}
	subject := bus.DistillTeacherSubject(job.ID)
	w := &teacherWorker{be: be, id: tid, vocab: teacher.Config.VocabSize, nctx: teacher.Config.NCtx}
	stop, err := w.serve(ctx, s.bus.Conn(), subject)
	if err != nil {
		return nil, err
	}
	defer stop()
	job.Log(fmt.Sprintf("teacher %s: %d parameters, validation loss %.4f; serving top-%d logits on %s", twhat, res.TeacherParameters, res.TeacherValLoss, sp.TopK, subject))

	// The student.
	opt := sp.Optimizer()
	sid := job.ID + "-student"
	load := func(id string) (uint64, error) {
		r, err := be.LoadModel(ctx, accel.LoadRequest{ModelID: id, ConfigJSON: studentJSON, Weights: studentWeights, Seed: sp.Seed, Optimizer: opt})
		return r.Parameters, err
	}
	if res.StudentParameters, err = load(sid); err != nil {
		return nil, fmt.Errorf("distiller: load student: %w", err)
	}
	defer be.Unload(context.WithoutCancel(ctx), sid)
	res.ParameterRatio = float64(res.StudentParameters) / float64(res.TeacherParameters)
	if res.StudentInitialValLoss, err = finetune.Evaluate(ctx, be, sid, sp.SeqLen, windows); err != nil {
		return nil, fmt.Errorf("distiller: evaluate student: %w", err)
	}
	job.Log(fmt.Sprintf("student: %d parameters (%.2f of the teacher's), initial validation loss %.4f", res.StudentParameters, res.ParameterRatio, res.StudentInitialValLoss))
	nc := s.bus.Conn()
	teach := func(ctx context.Context, step int, in, tgt []int32) (*accel.SoftTargets, error) {
		ids, logits, n, err := askTeacher(ctx, nc, subject, sp.Batch, sp.SeqLen, sp.TopK, teacher.Config.VocabSize, in, tgt)
		if err != nil {
			return nil, err
		}
		res.TeacherBytes += int64(n)
		return &accel.SoftTargets{K: sp.TopK, Indices: ids, Logits: logits, Temperature: float32(sp.Temperature), Alpha: float32(sp.Alpha)}, nil
	}
	if _, err := finetune.Train(ctx, be, sid, data, sp.Schedule(sp.Steps), teach, s.progress(job, "distill", sp.Steps)); err != nil {
		return nil, fmt.Errorf("distiller: distill: %w", err)
	}
	if res.StudentValLoss, err = finetune.Evaluate(ctx, be, sid, sp.SeqLen, windows); err != nil {
		return nil, fmt.Errorf("distiller: evaluate student: %w", err)
	}
	job.Metric("val_loss", res.StudentValLoss, int64(sp.Steps))
	saved, err := be.SaveWeights(ctx, accel.SaveRequest{ModelID: sid})
	if err != nil {
		return nil, fmt.Errorf("distiller: student weights: %w", err)
	}
	_ = be.Unload(ctx, sid)

	if sp.Baseline {
		bid := job.ID + "-scratch"
		if _, err := load(bid); err != nil {
			return nil, fmt.Errorf("distiller: load the scratch student: %w", err)
		}
		defer be.Unload(context.WithoutCancel(ctx), bid)
		if _, err := finetune.Train(ctx, be, bid, data, sp.Schedule(sp.Steps), nil, s.progress(job, "scratch", sp.Steps)); err != nil {
			return nil, fmt.Errorf("distiller: scratch baseline: %w", err)
		}
		if res.ScratchValLoss, err = finetune.Evaluate(ctx, be, bid, sp.SeqLen, windows); err != nil {
			return nil, fmt.Errorf("distiller: evaluate the scratch student: %w", err)
		}
		res.VsScratch = 1 - res.StudentValLoss/res.ScratchValLoss
		job.Metric("scratch_val_loss", res.ScratchValLoss, int64(sp.Steps))
	}
	res.VsTeacher = res.StudentValLoss/res.TeacherValLoss - 1

	info, err := s.bus.PutBytes(ctx, saved.Safetensors)
	if err != nil {
		return nil, fmt.Errorf("distiller: store the student: %w", err)
	}
	res.Checkpoint = info.Ref
	job.Artifact("student", sp.Output, info.Ref, info.Size)
	rec := &busv1.ModelRecord{Name: sp.Output, Checkpoint: info.Ref, Tokenizer: studentTok, ConfigJson: studentJSON,
		Parameters: res.StudentParameters, Step: int64(sp.Steps), ValLoss: res.StudentValLoss, CreatedAt: timestamppb.Now(), JobId: job.ID}
	if err := s.bus.PutModel(ctx, rec); err != nil {
		return nil, fmt.Errorf("distiller: register %s: %w", sp.Output, err)
	}
	res.Seconds = time.Since(start).Seconds()
	msg := fmt.Sprintf("student %s: validation loss %.4f (teacher %.4f, %+.1f%%)", sp.Output, res.StudentValLoss, res.TeacherValLoss, 100*res.VsTeacher)
	if sp.Baseline {
		msg += fmt.Sprintf("; from scratch %.4f (distilled %.1f%% lower)", res.ScratchValLoss, 100*res.VsScratch)
	}
	job.Log(msg)
	return res, nil
}

// progress reports training steps as a job's progress, about 20 times.
func (s *Service) progress(job *bus.Job, stage string, steps int) func(int, float64) {
	every := max(steps/20, 1)
	return func(step int, loss float64) {
		if step%every == 0 || step == steps {
			job.Progress(stage, int64(step), int64(steps), fmt.Sprintf("loss %.4f", loss))
		}
	}
}

func short(ref string) string {
	if len(ref) > 19 {
		return ref[:19]
	}
	return ref
}

func perplexity(loss float64) float64 { return math.Exp(loss) }
