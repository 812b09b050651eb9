// Reduced precision: conversions between fp32 and bf16/fp16 storage, and
// the overflow check of dynamic loss scaling. bf16 and fp16 values travel
// as their 16 bits (unsigned short), so no header is needed.

#define PREC_BLOCK(n) int i = blockIdx.x * blockDim.x + threadIdx.x; if (i >= (n)) return

// f32_to_bf16 rounds to nearest even; NaNs stay (quiet) NaNs. Launch grid
// (ceil(n/256)), block (256), like every elementwise kernel here.
extern "C" __global__ void f32_to_bf16(unsigned short* out, const float* in, int n) {
    PREC_BLOCK(n);
    unsigned int u = __float_as_uint(in[i]);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        out[i] = (unsigned short)((u >> 16) | 0x40u);
        return;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    out[i] = (unsigned short)(u >> 16);
}

// bf16_to_f32 widens exactly.
extern "C" __global__ void bf16_to_f32(float* out, const unsigned short* in, int n) {
    PREC_BLOCK(n);
    out[i] = __uint_as_float(((unsigned int)in[i]) << 16);
}

// f32_to_f16 rounds to nearest even (the PTX conversion); out-of-range
// values become ±inf, which the loss scaler then catches.
extern "C" __global__ void f32_to_f16(unsigned short* out, const float* in, int n) {
    PREC_BLOCK(n);
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(in[i]));
    out[i] = h;
}

// f16_to_f32 widens exactly.
extern "C" __global__ void f16_to_f32(float* out, const unsigned short* in, int n) {
    PREC_BLOCK(n);
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(in[i]));
    out[i] = f;
}

// unscale_check multiplies the gradients by inv_scale (1/loss scale) and
// sets *found_inf to 1 when any of them is inf or NaN, in which case the
// step must be skipped and the scale lowered. *found_inf must be 0 before
// the launch.
extern "C" __global__ void unscale_check(float* g, int n, float inv_scale, int* found_inf) {
    PREC_BLOCK(n);
    float x = g[i] * inv_scale;
    if ((__float_as_uint(x) & 0x7f800000u) == 0x7f800000u) atomicOr(found_inf, 1);
    g[i] = x;
}
