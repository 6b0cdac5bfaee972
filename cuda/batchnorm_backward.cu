// batchnorm_backward.cu: per-channel gradient sums and the dx pass.
//
// Entry points (extern "C"; "_vec4" variants need 16-byte aligned tensors and inner % 4 == 0 (channels-first) or
// C % 4 == 0 (channels-last), else the host uses the scalar ones):
//
//   bn_backward_reduce_cf[_vec4]  channels-first sums Σdy and Σdy·(x − mean) per channel, with the geometry of
//                       bn_stats_cf (1-D grid of C*splits blocks of 256 threads, units [s*chunk, (s+1)*chunk) of
//                       channel b / splits); float2 per thread, shuffle + shared-memory trees, partials merged by the
//                       last-arriving block of the channel in index order. Traffic: reads x and dy once (2 S).
//   bn_backward_reduce_cl[_vec4]  the same for channels-last, with the geometry of bn_stats_cl.
//   bn_dx_cf[_vec4], bn_dx_cl[_vec4]  dx = a·dy + b·(x − p) + c per channel, with the geometry of bn_apply_cf /
//                       bn_apply_cl. Traffic: reads x and dy, writes dx (3 S).
// The finishing step (only there are outputs written) turns the sums into dbeta = Σdy, dgamma = invstd·Σdy·(x−mean)
// and, in training mode, the dx coefficients of
//     dx = gamma·invstd/M · (M·dy − dbeta − xhat·dgamma)
//        = A·dy + (−A·invstd·dgamma/M)·(x − mean) + (−A·dbeta/M),   A = gamma·invstd.
// Eval-mode dx (dy·gamma·invstd) does not need x: the host runs bn_apply on dy with coefficients from bn_prepare.
// Deterministic: fixed trees, partials merged in index order, no floating-point atomics.
#include "batchnorm_common.cuh"

struct BackwardFinish {
    long long count;
    int flags;
    int channels;
    const float* gamma;
    const float* invstd;
    float* dgamma;
    float* dbeta;
    float* coef;   // 4*C: p, a, b, c of bn_dx
};

__device__ __forceinline__ void finish_backward(const BackwardFinish& f, int c, float2 s, float mean) {
    const int C = f.channels;
    const float invstd = f.invstd[c];
    const float dbeta = s.x;
    const float dgamma = s.y * invstd;
    if (f.flags & BN_WANT_DGAMMA) f.dgamma[c] = dgamma;
    if (f.flags & BN_WANT_DBETA) f.dbeta[c] = dbeta;
    if (f.flags & BN_TRAIN_DX) {
        const float g = (f.flags & BN_HAS_GAMMA) ? f.gamma[c] : 1.0f;
        const float m = (float)f.count;
        const float a = g * invstd;
        f.coef[c] = mean;
        f.coef[C + c] = -a * invstd * dgamma / m;
        f.coef[2 * C + c] = -a * dbeta / m;
        f.coef[3 * C + c] = a;
    }
}

#define BWD_PARAMS long long count, int flags, const float* __restrict__ gamma, const float* __restrict__ mean, \
    const float* __restrict__ invstd, float* dgamma, float* dbeta, float* coef
#define BWD_INIT(C_) BackwardFinish f; f.count = count; f.flags = flags; f.channels = (C_); f.gamma = gamma; \
    f.invstd = invstd; f.dgamma = dgamma; f.dbeta = dbeta; f.coef = coef;

// ---- channels-first sums ----------------------------------------------------------------------------------------
template <bool VEC>
__device__ __forceinline__ void reduce_cf(const float* __restrict__ x, const float* __restrict__ dy, int C,
                                          long long N, long long inner, long long splits, long long chunk,
                                          float* partials, unsigned* counters, const float* __restrict__ mean,
                                          const BackwardFinish& f) {
    __shared__ float2 scratch[BN_MAX_WARPS];
    __shared__ float mean_sh;
    __shared__ unsigned last_sh;
    const long long blk = blockIdx.x;
    const int c = (int)(blk / splits);
    const long long s = blk - (long long)c * splits;
    if (threadIdx.x == 0) mean_sh = mean[c];
    __syncthreads();
    const float mu = mean_sh;

    const long long innerU = VEC ? inner / 4 : inner;
    const long long total = N * innerU;
    const long long lo = s * chunk;
    const long long hi = min(lo + chunk, total);
    const long long step = blockDim.x;
    float2 acc = make_float2(0.f, 0.f);
    long long j = lo + threadIdx.x;
    if (j < hi) {
        long long n = j / innerU, i = j - n * innerU;
        const long long q = step / innerU, r = step - q * innerU;
        for (; j < hi; j += step) {
            const long long off = ((long long)n * C + c) * innerU + i;
            if constexpr (VEC) {
                const float4 xv = load4(x + off * 4), g = load4(dy + off * 4);
                acc.x += (g.x + g.y) + (g.z + g.w);
                acc.y += (g.x * (xv.x - mu) + g.y * (xv.y - mu)) + (g.z * (xv.z - mu) + g.w * (xv.w - mu));
            } else {
                const float g = dy[off];
                acc.x += g;
                acc.y = fmaf(g, x[off] - mu, acc.y);
            }
            i += r; n += q;
            if (i >= innerU) { i -= innerU; n += 1; }
        }
    }
    acc = block_reduce(acc, scratch);
    if (splits == 1) {
        if (threadIdx.x == 0) finish_backward(f, c, acc, mu);
        return;
    }
    float* mine = partials + blk * 2;   // [c][s][2]
    if (threadIdx.x == 0) { mine[0] = acc.x; mine[1] = acc.y; }
    if (!last_block_arrives(counters + c, (unsigned)splits, &last_sh)) return;
    float2 m = make_float2(0.f, 0.f);
    const float* chan = partials + (long long)c * splits * 2;
    for (long long k = threadIdx.x; k < splits; k += blockDim.x) {
        m.x += load_cg(chan + 2 * k);
        m.y += load_cg(chan + 2 * k + 1);
    }
    m = block_reduce(m, scratch);
    if (threadIdx.x == 0) finish_backward(f, c, m, mu);
}

extern "C" __global__ void __launch_bounds__(256)
bn_backward_reduce_cf(const float* __restrict__ x, const float* __restrict__ dy, int C, long long N, long long inner,
                      long long splits, long long chunk, float* partials, unsigned* counters, BWD_PARAMS) {
    BWD_INIT(C)
    reduce_cf<false>(x, dy, C, N, inner, splits, chunk, partials, counters, mean, f);
}

extern "C" __global__ void __launch_bounds__(256)
bn_backward_reduce_cf_vec4(const float* __restrict__ x, const float* __restrict__ dy, int C, long long N,
                           long long inner, long long splits, long long chunk, float* partials, unsigned* counters,
                           BWD_PARAMS) {
    BWD_INIT(C)
    reduce_cf<true>(x, dy, C, N, inner, splits, chunk, partials, counters, mean, f);
}

// ---- channels-last sums -----------------------------------------------------------------------------------------
template <bool VEC>
__device__ __forceinline__ void reduce_cl(const float* __restrict__ x, const float* __restrict__ dy, long long rows,
                                          int C, long long chunk, float* partials, unsigned* counters,
                                          const float* __restrict__ mean, const BackwardFinish& f) {
    constexpr int W = VEC ? 4 : 1;
    __shared__ float2 sh[256 * W];
    __shared__ float sh_mean[256 * W];
    __shared__ unsigned last_sh;
    const int bx = blockDim.x, by = blockDim.y, tx = threadIdx.x, ty = threadIdx.y;
    const int CU = VEC ? C / 4 : C;
    const int cu = blockIdx.x * bx + tx;
    const bool active = cu < CU;
    if (ty == 0 && active) {
        #pragma unroll
        for (int k = 0; k < W; k++) sh_mean[tx * W + k] = mean[cu * W + k];
    }
    __syncthreads();
    float mu[W];
    float2 acc[W];
    #pragma unroll
    for (int k = 0; k < W; k++) { mu[k] = active ? sh_mean[tx * W + k] : 0.f; acc[k] = make_float2(0.f, 0.f); }
    const long long lo = (long long)blockIdx.y * chunk;
    const long long hi = min(lo + chunk, rows);
    if (active) {
        #pragma unroll 1
        for (long long r = lo + ty; r < hi; r += by) {
            const long long off = r * C + (long long)cu * W;
            float xv[W], g[W];
            if constexpr (VEC) {
                const float4 a = load4(x + off), b = load4(dy + off);
                xv[0] = a.x; xv[1] = a.y; xv[2] = a.z; xv[3] = a.w;
                g[0] = b.x; g[1] = b.y; g[2] = b.z; g[3] = b.w;
            } else {
                xv[0] = x[off]; g[0] = dy[off];
            }
            #pragma unroll
            for (int k = 0; k < W; k++) { acc[k].x += g[k]; acc[k].y = fmaf(g[k], xv[k] - mu[k], acc[k].y); }
        }
    }
    tree_over_rows<float2, W>(acc, sh);
    if (gridDim.y == 1) {
        if (ty == 0 && active) {
            #pragma unroll
            for (int k = 0; k < W; k++) finish_backward(f, cu * W + k, acc[k], mu[k]);
        }
        return;
    }
    if (ty == 0 && active) {   // [gy][channel][2]
        float* mine = partials + ((long long)blockIdx.y * C + (long long)cu * W) * 2;
        #pragma unroll
        for (int k = 0; k < W; k++) { mine[2 * k] = acc[k].x; mine[2 * k + 1] = acc[k].y; }
    }
    if (!last_block_arrives(counters + blockIdx.x, gridDim.y, &last_sh)) return;
    #pragma unroll
    for (int k = 0; k < W; k++) acc[k] = make_float2(0.f, 0.f);
    if (active) {
        for (long long gy = ty; gy < gridDim.y; gy += by) {
            const float* p = partials + (gy * C + (long long)cu * W) * 2;
            #pragma unroll
            for (int k = 0; k < W; k++) { acc[k].x += load_cg(p + 2 * k); acc[k].y += load_cg(p + 2 * k + 1); }
        }
    }
    tree_over_rows<float2, W>(acc, sh);
    if (ty == 0 && active) {
        #pragma unroll
        for (int k = 0; k < W; k++) finish_backward(f, cu * W + k, acc[k], mu[k]);
    }
}

extern "C" __global__ void __launch_bounds__(256)
bn_backward_reduce_cl(const float* __restrict__ x, const float* __restrict__ dy, long long rows, int C,
                      long long chunk, float* partials, unsigned* counters, BWD_PARAMS) {
    BWD_INIT(C)
    reduce_cl<false>(x, dy, rows, C, chunk, partials, counters, mean, f);
}

extern "C" __global__ void __launch_bounds__(256)
bn_backward_reduce_cl_vec4(const float* __restrict__ x, const float* __restrict__ dy, long long rows, int C,
                           long long chunk, float* partials, unsigned* counters, BWD_PARAMS) {
    BWD_INIT(C)
    reduce_cl<true>(x, dy, rows, C, chunk, partials, counters, mean, f);
}

// ---- dx = a·dy + b·(x − p) + c ----------------------------------------------------------------------------------
__device__ __forceinline__ float dx_of(float g, float xv, float p, float a, float b, float c) {
    return fmaf(a, g, fmaf(b, xv - p, c));
}

// Channels-first: one warp per (plane, piece) unit, as bn_apply_cf; lane 0 loads the four coefficients.
template <bool VEC>
__device__ __forceinline__ void dx_cf(const float* __restrict__ x, const float* __restrict__ dy, float* dx, int C,
                                      long long planes, long long inner, long long chunk,
                                      const float* __restrict__ coef) {
    const int lane = threadIdx.x % BN_WARP;
    const long long warps = (long long)gridDim.x * (blockDim.x / BN_WARP);
    const long long innerU = VEC ? inner / 4 : inner;
    const long long pieces = (innerU + chunk - 1) / chunk;
    const long long units = planes * pieces;
    for (long long u = (long long)blockIdx.x * (blockDim.x / BN_WARP) + threadIdx.x / BN_WARP; u < units; u += warps) {
        const long long plane = u / pieces, piece = u - plane * pieces;
        const int c = (int)(plane % C);
        float p = 0.f, b = 0.f, k = 0.f, a = 0.f;
        if (lane == 0) { p = coef[c]; b = coef[C + c]; k = coef[2 * C + c]; a = coef[3 * C + c]; }
        p = __shfl_sync(0xffffffffu, p, 0);
        b = __shfl_sync(0xffffffffu, b, 0);
        k = __shfl_sync(0xffffffffu, k, 0);
        a = __shfl_sync(0xffffffffu, a, 0);
        const long long lo = piece * chunk, hi = min(lo + chunk, innerU);
        const long long base = plane * innerU;
        for (long long i = lo + lane; i < hi; i += BN_WARP) {
            if constexpr (VEC) {
                const float4 xv = load4(x + (base + i) * 4), g = load4(dy + (base + i) * 4);
                float4 o;
                o.x = dx_of(g.x, xv.x, p, a, b, k); o.y = dx_of(g.y, xv.y, p, a, b, k);
                o.z = dx_of(g.z, xv.z, p, a, b, k); o.w = dx_of(g.w, xv.w, p, a, b, k);
                store4(dx + (base + i) * 4, o);
            } else {
                dx[base + i] = dx_of(dy[base + i], x[base + i], p, a, b, k);
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(256)
bn_dx_cf(const float* __restrict__ x, const float* __restrict__ dy, float* dx, int C, long long planes,
         long long inner, long long chunk, const float* __restrict__ coef) {
    dx_cf<false>(x, dy, dx, C, planes, inner, chunk, coef);
}

extern "C" __global__ void __launch_bounds__(256)
bn_dx_cf_vec4(const float* __restrict__ x, const float* __restrict__ dy, float* dx, int C, long long planes,
              long long inner, long long chunk, const float* __restrict__ coef) {
    dx_cf<true>(x, dy, dx, C, planes, inner, chunk, coef);
}

// Channels-last: geometry of bn_apply_cl; the block stages its four coefficient rows in shared memory once.
template <bool VEC>
__device__ __forceinline__ void dx_cl(const float* __restrict__ x, const float* __restrict__ dy, float* dx,
                                      long long rows, int C, const float* __restrict__ coef) {
    constexpr int W = VEC ? 4 : 1;
    __shared__ float sh[4][256 * W];
    const int bx = blockDim.x, tx = threadIdx.x, ty = threadIdx.y;
    const int CU = VEC ? C / 4 : C;
    const int cu = blockIdx.x * bx + tx;
    const bool active = cu < CU;
    if (ty == 0 && active) {
        #pragma unroll
        for (int k = 0; k < W; k++) {
            const int c = cu * W + k;
            #pragma unroll
            for (int q = 0; q < 4; q++) sh[q][tx * W + k] = coef[q * C + c];
        }
    }
    __syncthreads();
    if (!active) return;
    float p[W], b[W], k0[W], a[W];
    #pragma unroll
    for (int k = 0; k < W; k++) {
        p[k] = sh[0][tx * W + k]; b[k] = sh[1][tx * W + k]; k0[k] = sh[2][tx * W + k]; a[k] = sh[3][tx * W + k];
    }
    const long long step = (long long)gridDim.y * blockDim.y;
    for (long long r = (long long)blockIdx.y * blockDim.y + ty; r < rows; r += step) {
        const long long off = r * C + (long long)cu * W;
        if constexpr (VEC) {
            const float4 xv = load4(x + off), g = load4(dy + off);
            float4 o;
            o.x = dx_of(g.x, xv.x, p[0], a[0], b[0], k0[0]); o.y = dx_of(g.y, xv.y, p[1], a[1], b[1], k0[1]);
            o.z = dx_of(g.z, xv.z, p[2], a[2], b[2], k0[2]); o.w = dx_of(g.w, xv.w, p[3], a[3], b[3], k0[3]);
            store4(dx + off, o);
        } else {
            dx[off] = dx_of(dy[off], x[off], p[0], a[0], b[0], k0[0]);
        }
    }
}

extern "C" __global__ void __launch_bounds__(256)
bn_dx_cl(const float* __restrict__ x, const float* __restrict__ dy, float* dx, long long rows, int C,
         const float* __restrict__ coef) {
    dx_cl<false>(x, dy, dx, rows, C, coef);
}

extern "C" __global__ void __launch_bounds__(256)
bn_dx_cl_vec4(const float* __restrict__ x, const float* __restrict__ dy, float* dx, long long rows, int C,
              const float* __restrict__ coef) {
    dx_cl<true>(x, dy, dx, rows, C, coef);
}
