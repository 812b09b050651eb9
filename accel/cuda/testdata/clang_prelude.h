// What NVRTC provides without headers, declared for clang's CUDA front end,
// so that TestKernelsCompileWithClang can compile kernels/*.cu to PTX on a
// machine with no CUDA toolkit. Only declarations: nothing here runs.
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define __host__ __attribute__((host))
#define __constant__ __attribute__((constant))
#define __forceinline__ __inline__ __attribute__((always_inline))
#include <__clang_cuda_builtin_vars.h>
#define INFINITY __builtin_huge_valf()
#define NAN __builtin_nanf("")
typedef unsigned long size_t;
extern "C" {
__device__ float sqrtf(float); __device__ float rsqrtf(float); __device__ float expf(float);
__device__ float logf(float); __device__ float tanhf(float); __device__ float fmaxf(float, float);
__device__ float fminf(float, float); __device__ float fabsf(float); __device__ float __expf(float);
}
__device__ int min(int, int);
__device__ int max(int, int);
__device__ float __shfl_down_sync(unsigned mask, float v, int delta, int width = 32);
__device__ float __shfl_xor_sync(unsigned mask, float v, int delta, int width = 32);
__device__ float atomicAdd(float* addr, float v);
__device__ int atomicOr(int* addr, int v);
__device__ float __int_as_float(int);
__device__ int __float_as_int(float);
__device__ unsigned __float_as_uint(float);
__device__ float __uint_as_float(unsigned);
