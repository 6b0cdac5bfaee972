// batchnorm_forward.cu: per-channel statistics, coefficient preparation and the normalize-apply pass.
//
// Entry points (all extern "C"; "_vec4" variants need 16-byte aligned tensors and inner % 4 == 0 (channels-first)
// or C % 4 == 0 (channels-last); the host picks them, else the scalar ones):
//
//   bn_stats_cf[_vec4]  channels-first statistics. 1-D grid of C*splits blocks of 256 threads: block b reduces
//                       units [s*chunk, (s+1)*chunk) of channel c = b / splits (s = b % splits), where the channel's
//                       M values are N runs of `inner` floats at stride C*inner. Welford per thread, warp shuffle and
//                       shared-memory trees in the block, partial (n, mean, M2) to `partials`; the last-arriving block
//                       of the channel merges the `splits` partials in index order and finishes. Traffic: reads x
//                       once (1 S) + 24 bytes per block. Deterministic: fixed trees, fixed merge order, no FP atomics.
//   bn_stats_cl[_vec4]  channels-last statistics. 2-D blocks (bx, by), bx threads own consecutive channel units,
//                       by row groups; grid (ceil(CU/bx), splits): block (gx, gy) reduces rows [gy*chunk, ...) for
//                       its channels, merges its row groups in a shared-memory tree, stores a partial per channel;
//                       the last-arriving block of column gx merges the `splits` partials in index order and finishes.
//                       Traffic: 1 S + 24 bytes per channel per block row. Deterministic as above.
//   bn_prepare          one thread per channel: per-channel coefficients for eval forward, normalize with given
//                       statistics, and eval backward (BN_PREP_*). Traffic: O(C).
//   bn_apply_cf[_vec4]  out = (in - p[c]) * a[c] + b[c] over a channels-first tensor. Work is cut into units of
//                       `chunk` consecutive units of one (n, c) plane; one warp per unit (grid-stride over units),
//                       lane 0 loads the three coefficients and broadcasts them with shuffles. Traffic: 2 S.
//   bn_apply_cl[_vec4]  the same over channels-last: 2-D blocks as bn_stats_cl, coefficients staged once per block
//                       in shared memory, threads stride over rows. Traffic: 2 S.
//
// Statistics are taken of x - pivot (pivot = the channel's first element) and the apply coefficients keep the
// pivot: y = (x - pivot) * scale + (beta - (mean - pivot) * scale), which equals (x - mean) * gamma * invstd + beta
// without the cancellation that x * scale + shift suffers when |mean| >> std.
#include "batchnorm_common.cuh"

// Parameters of the finishing step, shared by both layouts.
struct FinishArgs {
    long long count;        // M, values per channel
    float eps;
    float momentum;         // weight of this batch in the running statistics (host resolves cumulative momentum)
    int flags;              // BN_* flags
    const float* gamma;
    const float* beta;
    float* running_mean;
    float* running_var;
    float* save_mean;
    float* save_invstd;
    float* coef;            // 3*C floats: p, a, b for bn_apply (or the statistics-only outputs)
    int channels;
};

// Turns one channel's merged statistics into every output. The only place outputs are written.
__device__ __forceinline__ void finish_channel(const FinishArgs& f, int c, Welford w, float pivot) {
    const int C = f.channels;
    if (f.flags & BN_STATS_ONLY) {
        f.coef[c] = pivot;
        f.coef[C + c] = w.mean;
        f.coef[2 * C + c] = w.m2;
        return;
    }
    const float m = (float)f.count;
    const float mean = pivot + w.mean;
    const float var = w.m2 / m;                        // biased: what training normalizes with
    const float invstd = 1.0f / sqrtf(var + f.eps);    // IEEE sqrt and division: same bits on every GPU
    if (f.flags & BN_WRITE_SAVED) {
        f.save_mean[c] = mean;
        f.save_invstd[c] = invstd;
    }
    if (f.flags & BN_HAS_RUNNING) {
        const float unbiased = w.m2 / (m - 1.0f);      // M/(M-1) * var, as PyTorch and cuDNN store it
        const float k = f.momentum;
        f.running_mean[c] = (1.0f - k) * f.running_mean[c] + k * mean;
        f.running_var[c] = (1.0f - k) * f.running_var[c] + k * unbiased;
    }
    const float g = (f.flags & BN_HAS_GAMMA) ? f.gamma[c] : 1.0f;
    const float b = (f.flags & BN_HAS_BETA) ? f.beta[c] : 0.0f;
    const float scale = g * invstd;
    f.coef[c] = pivot;
    f.coef[C + c] = scale;
    f.coef[2 * C + c] = fmaf(-w.mean, scale, b);
}

#define FINISH_PARAMS long long count, float eps, float momentum, int flags, const float* __restrict__ gamma, \
    const float* __restrict__ beta, float* running_mean, float* running_var, float* save_mean, float* save_invstd, \
    float* coef
#define FINISH_ARGS_INIT(C_) FinishArgs f; f.count = count; f.eps = eps; f.momentum = momentum; f.flags = flags; \
    f.gamma = gamma; f.beta = beta; f.running_mean = running_mean; f.running_var = running_var; \
    f.save_mean = save_mean; f.save_invstd = save_invstd; f.coef = coef; f.channels = (C_);

// ---- channels-first statistics ----------------------------------------------------------------------------------
template <bool VEC>
__device__ __forceinline__ void stats_cf(const float* __restrict__ x, int C, long long N, long long inner,
                                         long long splits, long long chunk, float* partials, unsigned* counters,
                                         const FinishArgs& f) {
    __shared__ Welford scratch[BN_MAX_WARPS];
    __shared__ float pivot_sh;
    __shared__ unsigned last_sh;
    const long long blk = blockIdx.x;
    const int c = (int)(blk / splits);
    const long long s = blk - (long long)c * splits;
    if (threadIdx.x == 0) pivot_sh = x[(long long)c * inner];
    __syncthreads();
    const float pivot = pivot_sh;

    const long long innerU = VEC ? inner / 4 : inner;   // units per run
    const long long total = N * innerU;                  // units per channel
    const long long lo = s * chunk;
    const long long hi = min(lo + chunk, total);
    const long long step = blockDim.x;
    Welford w = welford_empty();
    long long j = lo + threadIdx.x;
    if (j < hi) {
        // Walk (n, i) incrementally: one division per thread, none per element.
        long long n = j / innerU, i = j - n * innerU;
        const long long q = step / innerU, r = step - q * innerU;
        for (; j < hi; j += step) {
            const long long off = ((long long)n * C + c) * innerU + i;
            if constexpr (VEC) {
                float4 v = load4(x + off * 4);
                v.x -= pivot; v.y -= pivot; v.z -= pivot; v.w -= pivot;
                welford_push4(w, v);
            } else {
                w.n += 1.0f;
                welford_push(w, x[off] - pivot, __frcp_rn(w.n));
            }
            i += r; n += q;
            if (i >= innerU) { i -= innerU; n += 1; }
        }
    }
    w = block_reduce(w, scratch);
    if (splits == 1) {
        if (threadIdx.x == 0) finish_channel(f, c, w, pivot);
        return;
    }
    float* mine = partials + (blk * 3);   // partials laid out [c][s][3]
    if (threadIdx.x == 0) { mine[0] = w.n; mine[1] = w.mean; mine[2] = w.m2; }
    if (!last_block_arrives(counters + c, (unsigned)splits, &last_sh)) return;
    // Fixed order: thread t merges partials t, t + blockDim, ... in sequence, then the block tree.
    Welford m = welford_empty();
    const float* chan = partials + (long long)c * splits * 3;
    for (long long k = threadIdx.x; k < splits; k += blockDim.x) {
        Welford p; p.n = load_cg(chan + 3 * k); p.mean = load_cg(chan + 3 * k + 1); p.m2 = load_cg(chan + 3 * k + 2);
        m = welford_merge(m, p);
    }
    m = block_reduce(m, scratch);
    if (threadIdx.x == 0) finish_channel(f, c, m, pivot);
}

extern "C" __global__ void __launch_bounds__(256)
bn_stats_cf(const float* __restrict__ x, int C, long long N, long long inner, long long splits, long long chunk,
            float* partials, unsigned* counters, FINISH_PARAMS) {
    FINISH_ARGS_INIT(C)
    stats_cf<false>(x, C, N, inner, splits, chunk, partials, counters, f);
}

extern "C" __global__ void __launch_bounds__(256)
bn_stats_cf_vec4(const float* __restrict__ x, int C, long long N, long long inner, long long splits, long long chunk,
                 float* partials, unsigned* counters, FINISH_PARAMS) {
    FINISH_ARGS_INIT(C)
    stats_cf<true>(x, C, N, inner, splits, chunk, partials, counters, f);
}

// ---- channels-last statistics -----------------------------------------------------------------------------------
// Block (bx, by) with bx * by <= 256 and by a power of two; thread (tx, ty) owns channel unit gx*bx + tx and visits
// rows gy*chunk + ty, + by, ... below (gy+1)*chunk.
template <bool VEC>
__device__ __forceinline__ void stats_cl(const float* __restrict__ x, long long rows, int C, long long chunk,
                                         float* partials, unsigned* counters, const FinishArgs& f) {
    constexpr int W = VEC ? 4 : 1;
    __shared__ Welford sh[256 * W];
    __shared__ float sh_pivot[256 * W];
    __shared__ unsigned last_sh;
    const int bx = blockDim.x, by = blockDim.y, tx = threadIdx.x, ty = threadIdx.y;
    const int CU = VEC ? C / 4 : C;
    const int cu = blockIdx.x * bx + tx;
    const bool active = cu < CU;
    // The pivot (row 0 of each channel) is loaded once per block and shared, not once per thread.
    if (ty == 0 && active) {
        #pragma unroll
        for (int k = 0; k < W; k++) sh_pivot[tx * W + k] = x[(long long)cu * W + k];
    }
    __syncthreads();
    float pivot[W];
    #pragma unroll
    for (int k = 0; k < W; k++) pivot[k] = active ? sh_pivot[tx * W + k] : 0.f;

    Welford w[W];
    #pragma unroll
    for (int k = 0; k < W; k++) w[k] = welford_empty();
    float n = 0.f;
    const long long lo = (long long)blockIdx.y * chunk;
    const long long hi = min(lo + chunk, rows);
    if (active) {
        #pragma unroll 1
        for (long long r = lo + ty; r < hi; r += by) {
            const float* p = x + r * C + (long long)cu * W;
            float v[W];
            if constexpr (VEC) {
                float4 q = load4(p);
                v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
            } else {
                v[0] = p[0];
            }
            n += 1.0f;
            const float inv = __frcp_rn(n);  // 1/n, correctly rounded, shared by the W channels of this thread
            #pragma unroll
            for (int k = 0; k < W; k++) welford_push(w[k], v[k] - pivot[k], inv);
        }
    }
    #pragma unroll
    for (int k = 0; k < W; k++) w[k].n = n;
    tree_over_rows<Welford, W>(w, sh);
    if (gridDim.y == 1) {
        if (ty == 0 && active) {
            #pragma unroll
            for (int k = 0; k < W; k++) finish_channel(f, cu * W + k, w[k], pivot[k]);
        }
        return;
    }
    if (ty == 0 && active) {   // partials laid out [gy][channel][3]
        float* mine = partials + ((long long)blockIdx.y * C + (long long)cu * W) * 3;
        #pragma unroll
        for (int k = 0; k < W; k++) { mine[3 * k] = w[k].n; mine[3 * k + 1] = w[k].mean; mine[3 * k + 2] = w[k].m2; }
    }
    if (!last_block_arrives(counters + blockIdx.x, gridDim.y, &last_sh)) return;
    // Fixed order: thread (tx, ty) merges partials ty, ty + by, ... in sequence, then the same tree over ty.
    #pragma unroll
    for (int k = 0; k < W; k++) w[k] = welford_empty();
    if (active) {
        for (long long g = ty; g < gridDim.y; g += by) {
            const float* p = partials + (g * C + (long long)cu * W) * 3;
            #pragma unroll
            for (int k = 0; k < W; k++) {
                Welford b; b.n = load_cg(p + 3 * k); b.mean = load_cg(p + 3 * k + 1); b.m2 = load_cg(p + 3 * k + 2);
                w[k] = welford_merge(w[k], b);
            }
        }
    }
    tree_over_rows<Welford, W>(w, sh);
    if (ty == 0 && active) {
        #pragma unroll
        for (int k = 0; k < W; k++) finish_channel(f, cu * W + k, w[k], pivot[k]);
    }
}

extern "C" __global__ void __launch_bounds__(256)
bn_stats_cl(const float* __restrict__ x, long long rows, int C, long long chunk, float* partials, unsigned* counters,
            FINISH_PARAMS) {
    FINISH_ARGS_INIT(C)
    stats_cl<false>(x, rows, C, chunk, partials, counters, f);
}

extern "C" __global__ void __launch_bounds__(256)
bn_stats_cl_vec4(const float* __restrict__ x, long long rows, int C, long long chunk, float* partials,
                 unsigned* counters, FINISH_PARAMS) {
    FINISH_ARGS_INIT(C)
    stats_cl<true>(x, rows, C, chunk, partials, counters, f);
}

// ---- per-channel coefficients -----------------------------------------------------------------------------------
// One thread per channel (1-D grid, any block size). `mean` and `spread` are running_mean/running_var
// (BN_PREP_EVAL_*) or the given mean/invstd (BN_PREP_NORMALIZE). Writes coef[0..2] = (p, a, b) for bn_apply and,
// for BN_PREP_EVAL_BACKWARD, aux[c] = invstd for the backward sums.
extern "C" __global__ void bn_prepare(int mode, int C, float eps, int flags, const float* __restrict__ gamma,
                                      const float* __restrict__ beta, const float* __restrict__ mean,
                                      const float* __restrict__ spread, float* coef, float* aux) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const float g = (flags & BN_HAS_GAMMA) ? gamma[c] : 1.0f;
    const float b = (flags & BN_HAS_BETA) ? beta[c] : 0.0f;
    const float invstd = mode == BN_PREP_NORMALIZE ? spread[c] : 1.0f / sqrtf(spread[c] + eps);
    if (mode == BN_PREP_EVAL_BACKWARD) {
        aux[c] = invstd;
        coef[c] = 0.0f;
        coef[C + c] = g * invstd;
        coef[2 * C + c] = 0.0f;
    } else {
        coef[c] = mean[c];
        coef[C + c] = g * invstd;
        coef[2 * C + c] = b;
    }
}

// ---- apply: out = (in - p) * a + b ------------------------------------------------------------------------------
// Channels-first. Unit u = (plane, piece): plane = n*C + c (a run of `inner` floats), piece k covers units
// [k*chunk, min((k+1)*chunk, innerU)) of that run; chunk is a multiple of 32 chosen by the host. One warp per unit,
// grid-stride over units, so each warp loads three coefficients per `chunk` units, not per element.
template <bool VEC>
__device__ __forceinline__ void apply_cf(const float* in, float* out, int C, long long planes, long long inner,
                                         long long chunk, const float* __restrict__ coef) {
    const int lane = threadIdx.x % BN_WARP;
    const long long warps = (long long)gridDim.x * (blockDim.x / BN_WARP);
    const long long innerU = VEC ? inner / 4 : inner;
    const long long pieces = (innerU + chunk - 1) / chunk;
    const long long units = planes * pieces;
    for (long long u = (long long)blockIdx.x * (blockDim.x / BN_WARP) + threadIdx.x / BN_WARP; u < units; u += warps) {
        const long long plane = u / pieces, piece = u - plane * pieces;
        const int c = (int)(plane % C);
        float p = 0.f, a = 0.f, b = 0.f;
        if (lane == 0) { p = coef[c]; a = coef[C + c]; b = coef[2 * C + c]; }
        p = __shfl_sync(0xffffffffu, p, 0);
        a = __shfl_sync(0xffffffffu, a, 0);
        b = __shfl_sync(0xffffffffu, b, 0);
        const long long lo = piece * chunk, hi = min(lo + chunk, innerU);
        const long long base = plane * innerU;
        for (long long i = lo + lane; i < hi; i += BN_WARP) {
            if constexpr (VEC) {
                float4 v = load4(in + (base + i) * 4);
                v.x = fmaf(v.x - p, a, b); v.y = fmaf(v.y - p, a, b);
                v.z = fmaf(v.z - p, a, b); v.w = fmaf(v.w - p, a, b);
                store4(out + (base + i) * 4, v);
            } else {
                out[base + i] = fmaf(in[base + i] - p, a, b);
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(256)
bn_apply_cf(const float* in, float* out, int C, long long planes, long long inner, long long chunk,
            const float* __restrict__ coef) {
    apply_cf<false>(in, out, C, planes, inner, chunk, coef);
}

extern "C" __global__ void __launch_bounds__(256)
bn_apply_cf_vec4(const float* in, float* out, int C, long long planes, long long inner, long long chunk,
                 const float* __restrict__ coef) {
    apply_cf<true>(in, out, C, planes, inner, chunk, coef);
}

// Channels-last. Grid (ceil(CU/bx), gy), block (bx, by): thread (tx, ty) owns channel unit gx*bx + tx and visits rows
// gy*by + ty, + gridDim.y*by, ... The block stages its coefficients in shared memory once.
template <bool VEC>
__device__ __forceinline__ void apply_cl(const float* in, float* out, long long rows, int C,
                                         const float* __restrict__ coef) {
    constexpr int W = VEC ? 4 : 1;
    __shared__ float sh[3][256 * W];
    const int bx = blockDim.x, tx = threadIdx.x, ty = threadIdx.y;
    const int CU = VEC ? C / 4 : C;
    const int cu = blockIdx.x * bx + tx;
    const bool active = cu < CU;
    if (ty == 0 && active) {
        #pragma unroll
        for (int k = 0; k < W; k++) {
            const int c = cu * W + k;
            sh[0][tx * W + k] = coef[c]; sh[1][tx * W + k] = coef[C + c]; sh[2][tx * W + k] = coef[2 * C + c];
        }
    }
    __syncthreads();
    if (!active) return;
    float p[W], a[W], b[W];
    #pragma unroll
    for (int k = 0; k < W; k++) { p[k] = sh[0][tx * W + k]; a[k] = sh[1][tx * W + k]; b[k] = sh[2][tx * W + k]; }
    const long long step = (long long)gridDim.y * blockDim.y;
    for (long long r = (long long)blockIdx.y * blockDim.y + ty; r < rows; r += step) {
        const long long off = r * C + (long long)cu * W;
        if constexpr (VEC) {
            float4 v = load4(in + off);
            v.x = fmaf(v.x - p[0], a[0], b[0]); v.y = fmaf(v.y - p[1], a[1], b[1]);
            v.z = fmaf(v.z - p[2], a[2], b[2]); v.w = fmaf(v.w - p[3], a[3], b[3]);
            store4(out + off, v);
        } else {
            out[off] = fmaf(in[off] - p[0], a[0], b[0]);
        }
    }
}

extern "C" __global__ void __launch_bounds__(256)
bn_apply_cl(const float* in, float* out, long long rows, int C, const float* __restrict__ coef) {
    apply_cl<false>(in, out, rows, C, coef);
}

extern "C" __global__ void __launch_bounds__(256)
bn_apply_cl_vec4(const float* in, float* out, long long rows, int C, const float* __restrict__ coef) {
    apply_cl<true>(in, out, rows, C, coef);
}
