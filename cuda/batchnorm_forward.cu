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

// ---- statistics: what channel_reduce_cf / _cl (batchnorm_common.cuh) accumulate --------------------------------
// Welford of x - pivot, pivot = the channel's first element (the reduction's centre); finish_channel at the end.
template <bool VEC>
struct ForwardStatsOp {
    using Acc = Welford;
    using Item = typename bn_unit<VEC>::type;
    static constexpr int W = VEC ? 4 : 1;
    const float* __restrict__ x;
    FinishArgs f;
    float n;   // channels-last: rows pushed so far, shared by the W channels of a thread (one 1/n per row)

    __device__ __forceinline__ Item load(long long e) const { return load_unit<VEC>(x + e); }
    // Channels-first: four values of one channel merge as a group (one division per four); one value updates in
    // place with a correctly rounded 1/n.
    __device__ __forceinline__ void push(Welford& w, Item v, float pivot) const {
        if constexpr (VEC) {
            welford_push4(w, make_float4(v.x - pivot, v.y - pivot, v.z - pivot, v.w - pivot));
        } else {
            w.n += 1.0f;
            welford_push(w, v - pivot, __frcp_rn(w.n));
        }
    }
    __device__ __forceinline__ void push_row(Welford (&w)[W], Item v, const float (&pivot)[W]) {
        n += 1.0f;
        const float inv = __frcp_rn(n);   // 1/n, correctly rounded, shared by the W channels
        #pragma unroll
        for (int k = 0; k < W; k++) welford_push(w[k], component(v, k) - pivot[k], inv);
    }
    __device__ __forceinline__ void settle(Welford (&w)[W]) const {
        #pragma unroll
        for (int k = 0; k < W; k++) w[k].n = n;
    }
    __device__ __forceinline__ void finish(int c, const Welford& w, float pivot) const {
        finish_channel(f, c, w, pivot);
    }
};

// Channels-first: the pivot of channel c is x[c * inner] (n = 0, i = 0).
extern "C" __global__ void __launch_bounds__(256)
bn_stats_cf(const float* __restrict__ x, int C, long long N, long long inner, long long splits, long long chunk,
            float* partials, unsigned* counters, FINISH_PARAMS) {
    FINISH_ARGS_INIT(C)
    channel_reduce_cf(ForwardStatsOp<false>{x, f, 0.f}, x, inner, C, N, inner, splits, chunk, partials, counters);
}

extern "C" __global__ void __launch_bounds__(256)
bn_stats_cf_vec4(const float* __restrict__ x, int C, long long N, long long inner, long long splits, long long chunk,
                 float* partials, unsigned* counters, FINISH_PARAMS) {
    FINISH_ARGS_INIT(C)
    channel_reduce_cf(ForwardStatsOp<true>{x, f, 0.f}, x, inner, C, N, inner, splits, chunk, partials, counters);
}

// Channels-last: the pivot of channel c is x[c] (row 0).
extern "C" __global__ void __launch_bounds__(256)
bn_stats_cl(const float* __restrict__ x, long long rows, int C, long long chunk, float* partials, unsigned* counters,
            FINISH_PARAMS) {
    FINISH_ARGS_INIT(C)
    channel_reduce_cl(ForwardStatsOp<false>{x, f, 0.f}, x, rows, C, chunk, partials, counters);
}

extern "C" __global__ void __launch_bounds__(256)
bn_stats_cl_vec4(const float* __restrict__ x, long long rows, int C, long long chunk, float* partials,
                 unsigned* counters, FINISH_PARAMS) {
    FINISH_ARGS_INIT(C)
    channel_reduce_cl(ForwardStatsOp<true>{x, f, 0.f}, x, rows, C, chunk, partials, counters);
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
        for (long long i0 = lo + lane; i0 < hi; i0 += BN_UNROLL * BN_WARP) {
            float4 v[BN_UNROLL];
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {   // all loads before any store (in may alias out, element-wise)
                const long long i = i0 + u * BN_WARP;
                if (i < hi) {
                    if constexpr (VEC) v[u] = load4(in + (base + i) * 4);
                    else v[u].x = in[base + i];
                }
            }
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {
                const long long i = i0 + u * BN_WARP;
                if (i < hi) {
                    if constexpr (VEC) {
                        float4 o;
                        o.x = fmaf(v[u].x - p, a, b); o.y = fmaf(v[u].y - p, a, b);
                        o.z = fmaf(v[u].z - p, a, b); o.w = fmaf(v[u].w - p, a, b);
                        store4(out + (base + i) * 4, o);
                    } else {
                        out[base + i] = fmaf(v[u].x - p, a, b);
                    }
                }
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
    const int tid = ty * bx + tx, nthreads = bx * blockDim.y;
    const int CU = VEC ? C / 4 : C;
    const int cu = blockIdx.x * bx + tx;
    const bool active = cu < CU;
    const int cbase = blockIdx.x * bx * W;
    for (int i = tid; i < bx * W; i += nthreads) {   // consecutive threads, consecutive channels: coalesced
        const int c = cbase + i;
        if (c < C) { sh[0][i] = coef[c]; sh[1][i] = coef[C + c]; sh[2][i] = coef[2 * C + c]; }
    }
    __syncthreads();
    if (!active) return;
    float p[W], a[W], b[W];
    #pragma unroll
    for (int k = 0; k < W; k++) { p[k] = sh[0][tx * W + k]; a[k] = sh[1][tx * W + k]; b[k] = sh[2][tx * W + k]; }
    const long long step = (long long)gridDim.y * blockDim.y;
    for (long long r0 = (long long)blockIdx.y * blockDim.y + ty; r0 < rows; r0 += BN_UNROLL * step) {
        float4 v[BN_UNROLL];
        #pragma unroll
        for (int u = 0; u < BN_UNROLL; u++) {   // all loads before any store (in may alias out, element-wise)
            const long long r = r0 + u * step;
            if (r < rows) {
                const long long off = r * C + (long long)cu * W;
                if constexpr (VEC) v[u] = load4(in + off);
                else v[u].x = in[off];
            }
        }
        #pragma unroll
        for (int u = 0; u < BN_UNROLL; u++) {
            const long long r = r0 + u * step;
            if (r < rows) {
                const long long off = r * C + (long long)cu * W;
                if constexpr (VEC) {
                    float4 o;
                    o.x = fmaf(v[u].x - p[0], a[0], b[0]); o.y = fmaf(v[u].y - p[1], a[1], b[1]);
                    o.z = fmaf(v[u].z - p[2], a[2], b[2]); o.w = fmaf(v[u].w - p[3], a[3], b[3]);
                    store4(out + off, o);
                } else {
                    out[off] = fmaf(v[u].x - p[0], a[0], b[0]);
                }
            }
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
