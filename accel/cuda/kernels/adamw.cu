// AdamW update, as in accel/transformer (AdamW.Step) after clipping: fp32,
// one thread per parameter. The host computes the bias corrections once
// per step: step_size = lr / (1 − β1^t), inv_sqrt_bc2 = 1/√(1 − β2^t).

// adamw_update: g = grads[i]·grad_scale; m = β1·m + (1−β1)·g;
// v = β2·v + (1−β2)·g²; p −= lr·wd·p + step_size·m / (√v·inv_sqrt_bc2 + eps).
extern "C" __global__ void adamw_update(float* params, const float* grads, float* m, float* v, int n,
                                        float lr, float beta1, float beta2, float eps, float wd,
                                        float step_size, float inv_sqrt_bc2, float grad_scale) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float g = grads[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) * inv_sqrt_bc2 + eps;
        params[i] -= lr * wd * params[i] + step_size * mi / denom;
    }
}
