// Package distiller is the distiller service. It consumes two job kinds
// that both make a smaller model from an existing one and then train it:
//
//   - jobs.distill: a teacher (a registered model or a checkpoint ref) and
//     a student config (or a registered student to start from). The job
//     loads the teacher in a backend and serves its top-K logits on
//     distill.teacher.<job> (bus.DistillTeacherSubject) as Arrow tensor
//     payloads (teacher.go: ids int32 and logits float32, [positions, K]);
//     the student asks for every training batch over the bus and trains on
//     Alpha·T²·KL(teacher_T ‖ student_T) + (1−Alpha)·CE with AdamW and
//     warmup + cosine. With baseline the same student, from the same
//     initialisation, is also trained on the same batches without the
//     teacher. The report holds the validation loss of teacher, student and
//     baseline on the same tokens. A student of another vocabulary size or
//     another tokenizer (by the tokenizer refs recorded with the models) is
//     refused before anything trains.
//   - jobs.prune: a model and a method (magnitude to a sparsity target;
//     whole attention heads; MLP neurons) → the pruned model, fine-tuned
//     with KeepSparsity so its zeros stay zero; the report holds the
//     sparsity, nonzero parameters, dense and sparse bytes, and the loss
//     before pruning, after it and after the fine-tune.
//
// Pruning lives here rather than in a service of its own because it is the
// same kind of job as distillation — read a model, change it, fine-tune it
// through a backend, register the result — and shares all of that code and
// the plugin it runs in; a separate service would only add a deployment.
//
// Each job launches one plugin of its backend and closes it when it ends;
// its models (teacher, student, baseline) live in that plugin for the job.
// A failed job registers nothing; source models are never changed.
package distiller
