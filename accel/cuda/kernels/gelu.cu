// GELU, tanh form, as in accel/transformer (geluTask): fp32, one thread per
// element. Compiled at run time with NVRTC; no headers.

#define GELU_C 0.7978845608028654f // sqrt(2/pi)

// gelu_forward: out[i] = 0.5·x·(1 + tanh(c·(x + 0.044715·x³))).
extern "C" __global__ void gelu_forward(float* out, const float* in, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float x = in[i];
        float u = GELU_C * (x + 0.044715f * x * x * x);
        out[i] = 0.5f * x * (1.0f + tanhf(u));
    }
}

// gelu_backward: dinp[i] = dout[i]·gelu'(inp[i]); dinp may alias dout.
extern "C" __global__ void gelu_backward(float* dinp, const float* inp, const float* dout, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float x = inp[i];
        float u = GELU_C * (x + 0.044715f * x * x * x);
        float th = tanhf(u);
        float dg = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * GELU_C * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = dout[i] * dg;
    }
}
