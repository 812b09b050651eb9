// Row softmax with cross-entropy, as in accel/transformer (ceTask): one
// block of 256 threads per row of logits, fp32 with fp32 reductions.

#define XENT_THREADS 256
#define NEG_INF __int_as_float(0xff800000) // −∞ without math.h

// block_reduce combines one value per thread of a 256-thread block with
// op (0: max, 1: sum); every thread gets the result.
__device__ float block_reduce(float v, int op, float* scratch) {
    for (int off = 16; off > 0; off >>= 1) {
        float o = __shfl_down_sync(0xffffffffu, v, off);
        v = op == 0 ? fmaxf(v, o) : v + o;
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (XENT_THREADS / 32) ? scratch[lane] : (op == 0 ? NEG_INF : 0.0f);
        for (int off = 16; off > 0; off >>= 1) {
            float o = __shfl_down_sync(0xffffffffu, v, off);
            v = op == 0 ? fmaxf(v, o) : v + o;
        }
        if (lane == 0) scratch[0] = v;
    }
    __syncthreads();
    float r = scratch[0];
    __syncthreads();
    return r;
}

// softmax_xent: for row r of logits (rows×V), losses[r] = logsumexp(row) −
// row[targets[r]]. When grad is non-zero the row is overwritten with
// dloss/dlogits = (softmax(row) − onehot(target))·grad_scale (grad_scale is
// 1/rows for a mean loss). Launch with grid (rows), block (256).
extern "C" __global__ void softmax_xent(float* logits, float* losses, const int* targets,
                                        int rows, int V, float grad_scale, int grad) {
    __shared__ float scratch[XENT_THREADS / 32];
    int r = blockIdx.x;
    if (r >= rows) return;
    float* row = logits + (size_t)r * V;
    float mx = NEG_INF;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, row[j]);
    mx = block_reduce(mx, 0, scratch);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) sum += expf(row[j] - mx);
    sum = block_reduce(sum, 1, scratch);
    int tgt = targets[r];
    if (threadIdx.x == 0) losses[r] = logf(sum) + mx - row[tgt];
    __syncthreads(); // row[tgt] is read above before it is overwritten below
    if (grad) {
        float inv = grad_scale / sum;
        for (int j = threadIdx.x; j < V; j += blockDim.x) {
            float p = expf(row[j] - mx) * inv;
            row[j] = j == tgt ? p - grad_scale : p;
        }
    }
}
