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

// ---- sums: what channel_reduce_cf / _cl (batchnorm_common.cuh) accumulate --------------------------------------
// (Σdy, Σdy·(x − mean)) per channel, the saved mean being the reduction's centre; finish_backward at the end.
template <bool VEC>
struct BackwardSumsOp {
    using Acc = float2;
    using Unit = typename bn_unit<VEC>::type;
    struct Item { Unit x, g; };
    static constexpr int W = VEC ? 4 : 1;
    const float* __restrict__ x;
    const float* __restrict__ dy;
    BackwardFinish f;

    __device__ __forceinline__ Item load(long long e) const {
        return Item{load_unit<VEC>(x + e), load_unit<VEC>(dy + e)};
    }
    // Channels-first: the four values of a float4 are summed pairwise first, then added to the running sums.
    __device__ __forceinline__ void push(float2& acc, const Item& v, float mu) const {
        if constexpr (VEC) {
            acc.x += (v.g.x + v.g.y) + (v.g.z + v.g.w);
            acc.y += (v.g.x * (v.x.x - mu) + v.g.y * (v.x.y - mu)) + (v.g.z * (v.x.z - mu) + v.g.w * (v.x.w - mu));
        } else {
            acc.x += v.g;
            acc.y = fmaf(v.g, v.x - mu, acc.y);
        }
    }
    __device__ __forceinline__ void push_row(float2 (&acc)[W], const Item& v, const float (&mu)[W]) const {
        #pragma unroll
        for (int k = 0; k < W; k++) {
            acc[k].x += component(v.g, k);
            acc[k].y = fmaf(component(v.g, k), component(v.x, k) - mu[k], acc[k].y);
        }
    }
    __device__ __forceinline__ void settle(float2 (&)[W]) const {}
    __device__ __forceinline__ void finish(int c, const float2& s, float mu) const { finish_backward(f, c, s, mu); }
};

extern "C" __global__ void __launch_bounds__(256)
bn_backward_reduce_cf(const float* __restrict__ x, const float* __restrict__ dy, int C, long long N, long long inner,
                      long long splits, long long chunk, float* partials, unsigned* counters, BWD_PARAMS) {
    BWD_INIT(C)
    channel_reduce_cf(BackwardSumsOp<false>{x, dy, f}, mean, 1, C, N, inner, splits, chunk, partials, counters);
}

extern "C" __global__ void __launch_bounds__(256)
bn_backward_reduce_cf_vec4(const float* __restrict__ x, const float* __restrict__ dy, int C, long long N,
                           long long inner, long long splits, long long chunk, float* partials, unsigned* counters,
                           BWD_PARAMS) {
    BWD_INIT(C)
    channel_reduce_cf(BackwardSumsOp<true>{x, dy, f}, mean, 1, C, N, inner, splits, chunk, partials, counters);
}

extern "C" __global__ void __launch_bounds__(256)
bn_backward_reduce_cl(const float* __restrict__ x, const float* __restrict__ dy, long long rows, int C,
                      long long chunk, float* partials, unsigned* counters, BWD_PARAMS) {
    BWD_INIT(C)
    channel_reduce_cl(BackwardSumsOp<false>{x, dy, f}, mean, rows, C, chunk, partials, counters);
}

extern "C" __global__ void __launch_bounds__(256)
bn_backward_reduce_cl_vec4(const float* __restrict__ x, const float* __restrict__ dy, long long rows, int C,
                           long long chunk, float* partials, unsigned* counters, BWD_PARAMS) {
    BWD_INIT(C)
    channel_reduce_cl(BackwardSumsOp<true>{x, dy, f}, mean, rows, C, chunk, partials, counters);
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
        for (long long i0 = lo + lane; i0 < hi; i0 += BN_UNROLL * BN_WARP) {
            float4 xv[BN_UNROLL], g[BN_UNROLL];
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {   // all loads before any store (dx may alias dy, element-wise)
                const long long i = i0 + u * BN_WARP;
                if (i < hi) {
                    if constexpr (VEC) { xv[u] = load4(x + (base + i) * 4); g[u] = load4(dy + (base + i) * 4); }
                    else { xv[u].x = x[base + i]; g[u].x = dy[base + i]; }
                }
            }
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {
                const long long i = i0 + u * BN_WARP;
                if (i < hi) {
                    if constexpr (VEC) {
                        float4 o;
                        o.x = dx_of(g[u].x, xv[u].x, p, a, b, k); o.y = dx_of(g[u].y, xv[u].y, p, a, b, k);
                        o.z = dx_of(g[u].z, xv[u].z, p, a, b, k); o.w = dx_of(g[u].w, xv[u].w, p, a, b, k);
                        store4(dx + (base + i) * 4, o);
                    } else {
                        dx[base + i] = dx_of(g[u].x, xv[u].x, p, a, b, k);
                    }
                }
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
    const int tid = ty * bx + tx, nthreads = bx * blockDim.y;
    const int CU = VEC ? C / 4 : C;
    const int cu = blockIdx.x * bx + tx;
    const bool active = cu < CU;
    const int cbase = blockIdx.x * bx * W;
    for (int i = tid; i < bx * W; i += nthreads) {   // consecutive threads, consecutive channels: coalesced
        const int c = cbase + i;
        if (c < C) {
            #pragma unroll
            for (int q = 0; q < 4; q++) sh[q][i] = coef[q * C + c];
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
    for (long long r0 = (long long)blockIdx.y * blockDim.y + ty; r0 < rows; r0 += BN_UNROLL * step) {
        float4 xv[BN_UNROLL], g[BN_UNROLL];
        #pragma unroll
        for (int u = 0; u < BN_UNROLL; u++) {   // all loads before any store (dx may alias dy, element-wise)
            const long long r = r0 + u * step;
            if (r < rows) {
                const long long off = r * C + (long long)cu * W;
                if constexpr (VEC) { xv[u] = load4(x + off); g[u] = load4(dy + off); }
                else { xv[u].x = x[off]; g[u].x = dy[off]; }
            }
        }
        #pragma unroll
        for (int u = 0; u < BN_UNROLL; u++) {
            const long long r = r0 + u * step;
            if (r < rows) {
                const long long off = r * C + (long long)cu * W;
                if constexpr (VEC) {
                    float4 o;
                    o.x = dx_of(g[u].x, xv[u].x, p[0], a[0], b[0], k0[0]);
                    o.y = dx_of(g[u].y, xv[u].y, p[1], a[1], b[1], k0[1]);
                    o.z = dx_of(g[u].z, xv[u].z, p[2], a[2], b[2], k0[2]);
                    o.w = dx_of(g[u].w, xv[u].w, p[3], a[3], b[3], k0[3]);
                    store4(dx + off, o);
                } else {
                    dx[off] = dx_of(g[u].x, xv[u].x, p[0], a[0], b[0], k0[0]);
                }
            }
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
