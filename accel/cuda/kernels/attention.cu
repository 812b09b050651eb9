// Tiled causal attention — the FlashAttention idea — in fp32, forward and
// backward. q, k, v, o, dout and the gradients are (BH, T, HD) row-major:
// one (batch, head) slice after another. lse (BH, T) keeps each query's
// logsumexp so that the backward pass recomputes the probabilities instead
// of storing the T×T matrix; no kernel here ever writes a score matrix.
//
// Visibility is transformer.Config.Visible: key j is visible to query i
// when j <= i and (window <= 0, or i − j < window, or j < global).
//
// Each thread owns one row (a query in the forward and dq kernels, a key
// in the dk/dv kernel) with its head vector in registers; the rows of the
// other side are staged through shared memory a tile at a time.

#define ATT_Q 64          // rows per block (threads)
#define ATT_K 32          // staged rows per tile
#define ATT_MAX_HD 128    // largest head dimension the kernels take

__device__ __forceinline__ bool att_visible(int i, int j, int window, int global) {
    if (j > i) return false;
    if (window <= 0 || i - j < window) return true;
    return j < global;
}

// att_tile_needed reports whether any query in [q0, q1] sees any key in
// [j0, j1] (uniform across the block, so a skipped tile skips its
// __syncthreads for every thread alike).
__device__ __forceinline__ bool att_tile_needed(int q0, int q1, int j0, int j1, int window, int global) {
    if (j0 > q1) return false;
    if (window <= 0) return true;
    if (j0 < global) return true;
    return j1 > q0 - window;
}

// flash_attn_forward: o = softmax(scale·q·kᵀ, masked)·v, lse = the row
// logsumexps. Launch grid (ceil(T/ATT_Q), BH), block (ATT_Q).
extern "C" __global__ void flash_attn_forward(const float* q, const float* k, const float* v,
                                              float* o, float* lse, int T, int HD, float scale,
                                              int window, int global) {
    __shared__ float ks[ATT_K * ATT_MAX_HD];
    __shared__ float vs[ATT_K * ATT_MAX_HD];
    const size_t base = (size_t)blockIdx.y * T * HD;
    const int q0 = blockIdx.x * ATT_Q;
    const int q1 = min(T - 1, q0 + ATT_Q - 1);
    const int i = q0 + threadIdx.x;
    const bool active = i < T;
    float qr[ATT_MAX_HD], acc[ATT_MAX_HD];
    for (int d = 0; d < HD; d++) {
        qr[d] = active ? q[base + (size_t)i * HD + d] * scale : 0.0f;
        acc[d] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j0 = 0; j0 <= q1; j0 += ATT_K) {
        const int j1 = min(T - 1, j0 + ATT_K - 1);
        if (!att_tile_needed(q0, q1, j0, j1, window, global)) continue;
        for (int idx = threadIdx.x; idx < ATT_K * HD; idx += blockDim.x) {
            int j = j0 + idx / HD;
            ks[idx] = j < T ? k[base + (size_t)j0 * HD + idx] : 0.0f;
            vs[idx] = j < T ? v[base + (size_t)j0 * HD + idx] : 0.0f;
        }
        __syncthreads();
        if (active) {
            for (int jj = 0; jj <= j1 - j0; jj++) {
                if (!att_visible(i, j0 + jj, window, global)) continue;
                const float* kr = ks + jj * HD;
                float s = 0.0f;
                for (int d = 0; d < HD; d++) s += qr[d] * kr[d];
                float mn = fmaxf(m, s);
                float corr = expf(m - mn);
                float p = expf(s - mn);
                l = l * corr + p;
                const float* vr = vs + jj * HD;
                for (int d = 0; d < HD; d++) acc[d] = acc[d] * corr + p * vr[d];
                m = mn;
            }
        }
        __syncthreads();
    }
    if (active) {
        // Query i always sees itself, so l > 0.
        float inv = 1.0f / l;
        for (int d = 0; d < HD; d++) o[base + (size_t)i * HD + d] = acc[d] * inv;
        lse[(size_t)blockIdx.y * T + i] = m + logf(l);
    }
}

// attn_row_dot: D[r] = dout[r]·o[r] for rows rows of HD, the term the
// softmax backward subtracts. Launch grid (ceil(rows/256)), block (256).
extern "C" __global__ void attn_row_dot(const float* dout, const float* o, float* D, int rows, int HD) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    float s = 0.0f;
    for (int d = 0; d < HD; d++) s += dout[(size_t)r * HD + d] * o[(size_t)r * HD + d];
    D[r] = s;
}

// flash_attn_backward_dq: dq_i = scale·Σ_j p_ij (dout_i·v_j − D_i) k_j with
// p_ij = exp(scale·q_i·k_j − lse_i). Launch as flash_attn_forward.
extern "C" __global__ void flash_attn_backward_dq(const float* q, const float* k, const float* v,
                                                  const float* dout, const float* lse, const float* D,
                                                  float* dq, int T, int HD, float scale,
                                                  int window, int global) {
    __shared__ float ks[ATT_K * ATT_MAX_HD];
    __shared__ float vs[ATT_K * ATT_MAX_HD];
    const size_t base = (size_t)blockIdx.y * T * HD;
    const int q0 = blockIdx.x * ATT_Q;
    const int q1 = min(T - 1, q0 + ATT_Q - 1);
    const int i = q0 + threadIdx.x;
    const bool active = i < T;
    float qr[ATT_MAX_HD], dor[ATT_MAX_HD], acc[ATT_MAX_HD];
    for (int d = 0; d < HD; d++) {
        qr[d] = active ? q[base + (size_t)i * HD + d] * scale : 0.0f;
        dor[d] = active ? dout[base + (size_t)i * HD + d] : 0.0f;
        acc[d] = 0.0f;
    }
    const float li = active ? lse[(size_t)blockIdx.y * T + i] : 0.0f;
    const float Di = active ? D[(size_t)blockIdx.y * T + i] : 0.0f;
    for (int j0 = 0; j0 <= q1; j0 += ATT_K) {
        const int j1 = min(T - 1, j0 + ATT_K - 1);
        if (!att_tile_needed(q0, q1, j0, j1, window, global)) continue;
        for (int idx = threadIdx.x; idx < ATT_K * HD; idx += blockDim.x) {
            int j = j0 + idx / HD;
            ks[idx] = j < T ? k[base + (size_t)j0 * HD + idx] : 0.0f;
            vs[idx] = j < T ? v[base + (size_t)j0 * HD + idx] : 0.0f;
        }
        __syncthreads();
        if (active) {
            for (int jj = 0; jj <= j1 - j0; jj++) {
                if (!att_visible(i, j0 + jj, window, global)) continue;
                const float* kr = ks + jj * HD;
                const float* vr = vs + jj * HD;
                float s = 0.0f, dp = 0.0f;
                for (int d = 0; d < HD; d++) {
                    s += qr[d] * kr[d];
                    dp += dor[d] * vr[d];
                }
                float ds = expf(s - li) * (dp - Di);
                for (int d = 0; d < HD; d++) acc[d] += ds * kr[d];
            }
        }
        __syncthreads();
    }
    if (active)
        for (int d = 0; d < HD; d++) dq[base + (size_t)i * HD + d] = acc[d] * scale;
}

// flash_attn_backward_dkv: for key j, dv_j = Σ_i p_ij dout_i and
// dk_j = scale·Σ_i p_ij (dout_i·v_j − D_i) q_i, over the queries that see
// it. Each thread owns a key; query tiles are staged. Launch grid
// (ceil(T/ATT_Q), BH), block (ATT_Q).
extern "C" __global__ void flash_attn_backward_dkv(const float* q, const float* k, const float* v,
                                                   const float* dout, const float* lse, const float* D,
                                                   float* dk, float* dv, int T, int HD, float scale,
                                                   int window, int global) {
    __shared__ float qs[ATT_K * ATT_MAX_HD];
    __shared__ float ds_[ATT_K * ATT_MAX_HD];
    __shared__ float ls[ATT_K], Ds[ATT_K];
    const size_t base = (size_t)blockIdx.y * T * HD;
    const int k0 = blockIdx.x * ATT_Q;
    const int k1 = min(T - 1, k0 + ATT_Q - 1);
    const int j = k0 + threadIdx.x;
    const bool active = j < T;
    float kr[ATT_MAX_HD], vr[ATT_MAX_HD], dka[ATT_MAX_HD], dva[ATT_MAX_HD];
    for (int d = 0; d < HD; d++) {
        kr[d] = active ? k[base + (size_t)j * HD + d] : 0.0f;
        vr[d] = active ? v[base + (size_t)j * HD + d] : 0.0f;
        dka[d] = 0.0f;
        dva[d] = 0.0f;
    }
    // Queries from k0 on can see keys of this block.
    for (int i0 = (k0 / ATT_K) * ATT_K; i0 < T; i0 += ATT_K) {
        const int i1 = min(T - 1, i0 + ATT_K - 1);
        if (!att_tile_needed(i0, i1, k0, k1, window, global)) continue;
        for (int idx = threadIdx.x; idx < ATT_K * HD; idx += blockDim.x) {
            int i = i0 + idx / HD;
            qs[idx] = i < T ? q[base + (size_t)i0 * HD + idx] * scale : 0.0f;
            ds_[idx] = i < T ? dout[base + (size_t)i0 * HD + idx] : 0.0f;
        }
        for (int ii = threadIdx.x; ii < ATT_K; ii += blockDim.x) {
            int i = i0 + ii;
            ls[ii] = i < T ? lse[(size_t)blockIdx.y * T + i] : 0.0f;
            Ds[ii] = i < T ? D[(size_t)blockIdx.y * T + i] : 0.0f;
        }
        __syncthreads();
        if (active) {
            for (int ii = 0; ii <= i1 - i0; ii++) {
                if (!att_visible(i0 + ii, j, window, global)) continue;
                const float* qi = qs + ii * HD;
                const float* doi = ds_ + ii * HD;
                float s = 0.0f, dp = 0.0f;
                for (int d = 0; d < HD; d++) {
                    s += qi[d] * kr[d];
                    dp += doi[d] * vr[d];
                }
                float p = expf(s - ls[ii]);
                float ds = p * (dp - Ds[ii]);
                // qi already carries the scale: dk = scale·Σ ds·q.
                for (int d = 0; d < HD; d++) {
                    dva[d] += p * doi[d];
                    dka[d] += ds * qi[d];
                }
            }
        }
        __syncthreads();
    }
    if (active) {
        for (int d = 0; d < HD; d++) {
            dk[base + (size_t)j * HD + d] = dka[d];
            dv[base + (size_t)j * HD + d] = dva[d];
        }
    }
}
