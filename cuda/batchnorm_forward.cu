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
        // BN_UNROLL independent loads in flight per thread, then the updates in the same order as one at a time.
        for (; j < hi; j += BN_UNROLL * step) {
            float4 v[BN_UNROLL];
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {
                if (j + u * step < hi) {
                    const long long off = ((long long)n * C + c) * innerU + i;
                    if constexpr (VEC) v[u] = load4(x + off * 4);
                    else v[u].x = x[off];
                }
                i += r; n += q;
                if (i >= innerU) { i -= innerU; n += 1; }
            }
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {
                if (j + u * step < hi) {
                    if constexpr (VEC) {
                        float4 d = v[u];
                        d.x -= pivot; d.y -= pivot; d.z -= pivot; d.w -= pivot;
                        welford_push4(w, d);
                    } else {
                        w.n += 1.0f;
                        welford_push(w, v[u].x - pivot, __frcp_rn(w.n));
                    }
                }
            }
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
// After tree_over_rows the block's merged statistics sit in sh[0 .. bx*W) in channel order: finish them with
// consecutive threads on consecutive channels, so the per-channel loads and stores are coalesced.
template <int W>
__device__ __forceinline__ void finish_block_cl(const FinishArgs& f, const Welford* sh, const float* sh_pivot,
                                                int cbase) {
    const int nthreads = blockDim.x * blockDim.y, tid = threadIdx.y * blockDim.x + threadIdx.x;
    __syncthreads();
    for (int i = tid; i < (int)blockDim.x * W; i += nthreads) {
        if (cbase + i < f.channels) finish_channel(f, cbase + i, sh[i], sh_pivot[i]);
    }
}

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
    const int tid = ty * bx + tx, nthreads = bx * by;
    const int CU = VEC ? C / 4 : C;
    const int cu = blockIdx.x * bx + tx;
    const bool active = cu < CU;
    const int cbase = blockIdx.x * bx * W;   // first channel of this block; local channel i = tx*W + k
    // The pivot (row 0 of each channel) is loaded once per block, by consecutive threads (coalesced), and shared.
    for (int i = tid; i < bx * W; i += nthreads) sh_pivot[i] = cbase + i < C ? x[cbase + i] : 0.f;
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
        for (long long r = lo + ty; r < hi; r += BN_UNROLL * by) {
            float v[BN_UNROLL][W];
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {   // loads first: BN_UNROLL rows in flight
                if (r + u * by < hi) {
                    const float* p = x + (r + u * by) * C + (long long)cu * W;
                    if constexpr (VEC) {
                        float4 q = load4(p);
                        v[u][0] = q.x; v[u][1] = q.y; v[u][2] = q.z; v[u][3] = q.w;
                    } else {
                        v[u][0] = p[0];
                    }
                }
            }
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {
                if (r + u * by < hi) {
                    n += 1.0f;
                    const float inv = __frcp_rn(n);  // 1/n, correctly rounded, shared by the W channels
                    #pragma unroll
                    for (int k = 0; k < W; k++) welford_push(w[k], v[u][k] - pivot[k], inv);
                }
            }
        }
    }
    #pragma unroll
    for (int k = 0; k < W; k++) w[k].n = n;
    tree_over_rows<Welford, W>(w, sh);
    if (gridDim.y == 1) {
        finish_block_cl<W>(f, sh, sh_pivot, cbase);
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
    finish_block_cl<W>(f, sh, sh_pivot, cbase);
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
