// Package pipeline is the pipeline service: it consumes jobs.pipeline and
// runs a whole model life as child jobs on the bus — dataprep, tokenize,
// train, and optionally quantize, distill and prune (each starting from the
// model of the stage before it, or of the stage its "from" names) — then
// asks the inference service for samples of the last model, and reports
// one summary of every stage.
//
// The orchestrator holds no state of its own: each child job's id is derived
// from the pipeline's, so a redelivered pipeline job finds the children that
// already finished (submits are idempotent) and continues after them. The
// children's progress is re-published on the pipeline's own event subject,
// so watching a pipeline shows everything.
package pipeline
