// Package quantizer is the quantizer service: it consumes jobs.quantize,
// turns an FP32 model (a registered model or a checkpoint ref) into an INT8
// checkpoint — symmetric per-output-channel weight scales, and with mode
// "w8a8" static activation scales calibrated on validation batches through
// the backend's Evaluate activation statistics — stores it in the object
// store, registers it as a model, and reports the file size before and
// after and the validation perplexity of both, measured through the
// backend on the same tokens.
//
// With qat_steps the job first fine-tunes the model with quantization-aware
// training (the backend's fake-quantized forward pass, straight-through
// gradients) and quantizes the result.
//
// A model that is already quantized, an unknown model or checkpoint and
// bad options fail the job with a message that says which; the source
// model is never changed. Every backend call runs in one plugin launched
// for the job and closed with it.
package quantizer
