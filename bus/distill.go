package bus

// DistillTeacherSubject is the request subject of a distill job's teacher
// worker: a request carries a batch of token ids, the reply the teacher's
// top-K logits for every position, both as Arrow tensor payloads.
func DistillTeacherSubject(jobID string) string { return "distill.teacher." + jobID }
