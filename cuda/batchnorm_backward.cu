// batchnorm_backward.cu: per-channel gradient sums and the dx pass.
//
// Entry points (extern "C"; "_vec4" variants need 16-byte aligned tensors and inner % 4 == 0 (channels-first) or
// C % 4 == 0 (channels-last), else the host uses the scalar ones). bn_backward_reduce_* and bn_dx_* exist once per
// storage type of x, dy and dx: float, __half ("_f16") and __nv_bfloat16 ("_bf16"), with "_vec8" variants for 8
// halves per 16 bytes (see batchnorm_forward.cu); sums, coefficients and arithmetic are float, dx is rounded once.
//
//   bn_backward_reduce_cf[_vec4]  channels-first sums Σdy and Σdy·(x − mean) per channel, with the geometry of
//                       bn_stats_cf (1-D grid of C*splits blocks of 256 threads, units [s*chunk, (s+1)*chunk) of
//                       channel b / splits); float2 per thread, shuffle + shared-memory trees, partials merged by the
//                       last-arriving block of the channel in index order. Traffic: reads x and dy once (2 S).
//   bn_backward_reduce_cl[_vec4]  the same for channels-last, with the geometry of bn_stats_cl.
//   bn_backward_merge   one thread per channel: adds `ranks` gradient records (count, Σdy, Σdy·xhat per channel, as
//                       bn_backward_reduce_* write them into dbeta/dgamma without BN_TRAIN_DX) in record order and
//                       finishes with the totals and the total count: data-parallel batch norm's merge step, and the
//                       host API's backward with given sums (one record). Traffic: O(ranks * C).
//   bn_dx_cf[_vec4], bn_dx_cl[_vec4]  dx = a·dy + b·(x − p) + c per channel, with the geometry of bn_apply_cf /
//                       bn_apply_cl. Traffic: reads x and dy, writes dx (3 S). dx may be dy (in place): dy is not
//                       __restrict__, so it is read with plain coherent loads, not ld.global.nc.
// The finishing step (only there are outputs written) turns the sums into dbeta = Σdy, dgamma = invstd·Σdy·(x−mean)
// and, in training mode, the dx coefficients of
//     dx = gamma·invstd/M · (M·dy − dbeta − xhat·dgamma)
//        = A·dy + (−A·invstd·dgamma/M)·(x − mean) + (−A·dbeta/M),   A = gamma·invstd.
// Eval-mode dx (dy·gamma·invstd) does not need x: the host runs bn_apply on dy with coefficients from bn_prepare.
// Deterministic: fixed trees, partials merged in index order, no floating-point atomics.
// build-ptx-flags: --fmad=false
// (nvcc then gives every float add, sub and mul an explicit .rn, which the driver's JIT may not contract into an fma:
// the PTX means the same bits on every GPU and in the emulator; every fma in these kernels is an explicit fmaf.)
#include "batchnorm_common.cuh"

struct BackwardFinish {
    long long count;
    int flags;
    int channels;
    const float* gamma;
    const float* invstd;
    float* dgamma;
    float* dbeta;
    float* coef;   // 4*C: rows 1..3 are b, c, a of bn_dx (dx = a·dy + b·(x − p) + c; p, the mean, it reads itself)
};

// Turns one channel's (Σdy, Σdy·xhat) over f.count values into every output; the only place outputs are written.
__device__ __forceinline__ void finish_backward_sums(const BackwardFinish& f, int c, float dbeta, float dgamma,
                                                     float center) {
    const int C = f.channels;
    const float invstd = f.invstd[c];
    if (f.flags & BN_WANT_DGAMMA) f.dgamma[c] = dgamma;
    if (f.flags & BN_WANT_DBETA) f.dbeta[c] = dbeta;
    if (f.flags & BN_TRAIN_DX) {
        const float g = (f.flags & BN_HAS_GAMMA) ? f.gamma[c] : 1.0f;
        const float m = (float)f.count;
        const float a = g * invstd;
        (void)center;   // the dx pass reads the mean itself (coef row 0 is not written)
        f.coef[C + c] = -a * invstd * dgamma / m;
        f.coef[2 * C + c] = -a * dbeta / m;
        f.coef[3 * C + c] = a;
    }
}

__device__ __forceinline__ void finish_backward(const BackwardFinish& f, int c, float2 s, float center) {
    finish_backward_sums(f, c, s.x, s.y * f.invstd[c], center);
}

#define BWD_PARAMS long long count, int flags, const float* __restrict__ gamma, const float* __restrict__ mean, \
    const float* __restrict__ invstd, float* dgamma, float* dbeta, float* coef
#define BWD_INIT(C_) BackwardFinish f; f.count = count; f.flags = flags; f.channels = (C_); f.gamma = gamma; \
    f.invstd = invstd; f.dgamma = dgamma; f.dbeta = dbeta; f.coef = coef;

// ---- sums: what channel_reduce_cf / _cl (batchnorm_common.cuh) accumulate --------------------------------------
// (Σdy, Σdy·(x − center)) per channel, center = the saved (or running) mean; finish_backward at the end.
template <typename S, bool VEC>
struct BackwardSumsOp {
    using Acc = float2;
    using IO = bn_io<S, VEC>;
    using Unit = typename IO::Unit;
    struct Item { Unit x, g; };
    static constexpr int W = IO::W;
    const S* __restrict__ x;
    const S* __restrict__ dy;
    BackwardFinish f;

    __device__ __forceinline__ Item load(long long e) const {
        return Item{IO::load(x + e), IO::load(dy + e)};
    }
    // Channels-first: the W values of a unit are summed pairwise first, then added to the running sums.
    __device__ __forceinline__ void push(float2& acc, const Item& v, float center) const {
        if constexpr (W > 1) {
            float g[W], p[W];
            #pragma unroll
            for (int k = 0; k < W; k++) {
                g[k] = IO::get(v.g, k);
                p[k] = g[k] * (IO::get(v.x, k) - center);
            }
            acc.x += tree_sum<W>(g);
            acc.y += tree_sum<W>(p);
        } else {
            acc.x += IO::get(v.g, 0);
            acc.y = fmaf(IO::get(v.g, 0), IO::get(v.x, 0) - center, acc.y);
        }
    }
    __device__ __forceinline__ void push_row(float2 (&acc)[W], const Item& v, const float (&center)[W]) const {
        #pragma unroll
        for (int k = 0; k < W; k++) {
            acc[k].x += IO::get(v.g, k);
            acc[k].y = fmaf(IO::get(v.g, k), IO::get(v.x, k) - center[k], acc[k].y);
        }
    }
    __device__ __forceinline__ void settle(float2 (&)[W]) const {}
    static constexpr bool CENTER_IS_ROW0 = false;   // the centers are the mean, a per-channel vector
    __device__ __forceinline__ void finish(int c, const float2& s, float center) const {
        finish_backward(f, c, s, center);
    }
};

// One set of four entry points per storage type (see batchnorm_forward.cu for SUF and V).
#define BN_BACKWARD_REDUCE_ENTRIES(S, SUF, V) \
extern "C" __global__ void __launch_bounds__(256) \
bn_backward_reduce_cf##SUF(const S* __restrict__ x, const S* __restrict__ dy, int C, long long N, long long inner, \
                           int splits, long long chunk, float* partials, unsigned* counters, BWD_PARAMS) { \
    BWD_INIT(C) \
    channel_reduce_cf(BackwardSumsOp<S, false>{x, dy, f}, mean, 1, C, N, inner, splits, chunk, partials, counters); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_backward_reduce_cf##SUF##V(const S* __restrict__ x, const S* __restrict__ dy, int C, long long N, \
                              long long inner, int splits, long long chunk, float* partials, unsigned* counters, \
                              BWD_PARAMS) { \
    BWD_INIT(C) \
    channel_reduce_cf(BackwardSumsOp<S, true>{x, dy, f}, mean, 1, C, N, inner, splits, chunk, partials, counters); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_backward_reduce_cl##SUF(const S* __restrict__ x, const S* __restrict__ dy, long long rows, int C, int inner, \
                           long long chunk, float* partials, unsigned* counters, BWD_PARAMS) { \
    BWD_INIT(C) \
    channel_reduce_cl(BackwardSumsOp<S, false>{x, dy, f}, mean, 1, rows, C, inner, chunk, partials, counters); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_backward_reduce_cl##SUF##V(const S* __restrict__ x, const S* __restrict__ dy, long long rows, int C, \
                              int inner, long long chunk, float* partials, unsigned* counters, BWD_PARAMS) { \
    BWD_INIT(C) \
    channel_reduce_cl(BackwardSumsOp<S, true>{x, dy, f}, mean, 1, rows, C, inner, chunk, partials, counters); \
}

BN_BACKWARD_REDUCE_ENTRIES(float, , _vec4)
BN_BACKWARD_REDUCE_ENTRIES(__half, _f16, _vec8)
BN_BACKWARD_REDUCE_ENTRIES(__nv_bfloat16, _bf16, _vec8)

// ---- dx = a·dy + b·(x − p) + c, through channel_map_cf / _cl (batchnorm_common.cuh) -----------------------------
// coefficients: p = the mean (read from `mean`), b, c, a (coef rows 1..3, written by finish_backward). Computed in
// float, rounded once to S when stored.
template <typename S, bool VEC>
struct DxOp {
    using IO = bn_io<S, VEC>;
    using Unit = typename IO::Unit;
    struct Item { Unit x, g; };
    static constexpr int W = IO::W, K = 4;
    const S* __restrict__ x;
    // Not __restrict__: dy may be dx (in place, element-wise: every unit is loaded before it is stored). A restrict
    // dy is read through the non-coherent path (ld.global.nc), which needs data read-only for the whole kernel.
    const S* dy;
    S* out;
    const float* __restrict__ mean;   // p, the center: read here rather than copied into coef row 0
    __device__ __forceinline__ Item load(long long e) const {
        return Item{IO::load(x + e), IO::load(dy + e)};
    }
    __device__ __forceinline__ float coefficient(const float* coef, int C, int j, int c) const {
        return j == 0 ? mean[c] : coef[j * C + c];
    }
    __device__ __forceinline__ float value(const Item& v, int k, const float (&q)[K]) const {
        return fmaf(q[3], IO::get(v.g, k), fmaf(q[1], IO::get(v.x, k) - q[0], q[2]));
    }
};

#define BN_DX_ENTRIES(S, SUF, V) \
extern "C" __global__ void __launch_bounds__(256) \
bn_dx_cf##SUF(const S* __restrict__ x, const S* dy, S* dx, int C, unsigned units, unsigned pieces, \
              long long inner, int chunk, const float* __restrict__ coef, const float* __restrict__ mean) { \
    channel_map_cf(DxOp<S, false>{x, dy, dx, mean}, C, units, pieces, inner, chunk, coef); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_dx_cf##SUF##V(const S* __restrict__ x, const S* dy, S* dx, int C, unsigned units, unsigned pieces, \
                 long long inner, int chunk, const float* __restrict__ coef, const float* __restrict__ mean) { \
    channel_map_cf(DxOp<S, true>{x, dy, dx, mean}, C, units, pieces, inner, chunk, coef); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_dx_cl##SUF(const S* __restrict__ x, const S* dy, S* dx, long long rows, int C, int inner, \
              const float* __restrict__ coef, const float* __restrict__ mean) { \
    channel_map_cl(DxOp<S, false>{x, dy, dx, mean}, rows, C, inner, coef); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_dx_cl##SUF##V(const S* __restrict__ x, const S* dy, S* dx, long long rows, int C, int inner, \
                 const float* __restrict__ coef, const float* __restrict__ mean) { \
    channel_map_cl(DxOp<S, true>{x, dy, dx, mean}, rows, C, inner, coef); \
}

BN_DX_ENTRIES(float, , _vec4)
BN_DX_ENTRIES(__half, _f16, _vec8)
BN_DX_ENTRIES(__nv_bfloat16, _bf16, _vec8)

// ---- merge of gradient records (data-parallel batch norm) ---------------------------------------------------------
// A record holds one piece's sums: 2 + 2*C floats, [count_hi, count_lo, Σdy[C], Σdy·xhat[C]], count = count_hi * 2^24
// + count_lo; the last 2*C floats are what bn_backward_reduce_* write with dbeta = record + 2 and dgamma =
// record + 2 + C. Records sit one after another, rank order; each channel adds them in that order (every rank runs
// this on the same gathered records: the same bits) and finishes with the total count M: dgamma and dbeta are the
// totals, and the dx coefficients use M of the whole batch.
extern "C" __global__ void bn_backward_merge(int ranks, int C, const float* __restrict__ records, int flags,
                                             const float* __restrict__ gamma, const float* __restrict__ mean,
                                             const float* __restrict__ invstd, float* dgamma, float* dbeta,
                                             float* coef) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const long long stride = 2 + 2LL * C;
    long long total = 0;
    float sum_dy = 0.f;
    float sum_dy_xhat = 0.f;
    int r = 0;
    #pragma unroll 1   // a handful of ranks (at least one, so no zero-trip test): no unrolled copies
    do {
        const float* rec = records + r * stride;
        total += (long long)rec[0] * 16777216LL + (long long)rec[1];
        sum_dy += rec[2 + c];
        sum_dy_xhat += rec[2 + C + c];
    } while (++r < ranks);
    long long count = total;
    BWD_INIT(C)
    f.flags |= BN_TRAIN_DX;   // a merge always writes the dx coefficients (no dead branch for the other case)
    finish_backward_sums(f, c, sum_dy, sum_dy_xhat, mean[c]);
}

// ---- persistent single pass: backward training (cooperative launch; see persist_cf / persist_cl) ----------------
// x and dy stay in registers from the sums to dx: dbeta = Σdy, dgamma = invstd·Σdy·(x − mean), then
// dx = A·dy + (−A·invstd·dgamma/M)·(x − mean) + (−A·dbeta/M), A = gamma·invstd. Traffic: x and dy read once (2 S),
// dx written (1 S), plus partials and per-channel vectors. dgamma and dbeta are written by split 0 of each channel.
// One set of entries per storage type, as the two-pass kernels (_f16, _bf16; _vec8: 8 halves per 16-byte unit).
// Units of x and of dy each thread keeps (LaunchGeometry.persistBackwardUnits): as many as nvPTXCompiler fits in
// registers without spills at 2 blocks per SM on sm_75..sm_90 (PtxCompileTest; cuda/README.md has the table).
// __nv_bfloat16 holds one unit fewer in eight (7 vector units, 14 scalars): its rounding to bf16 is integer code on
// compute_75, and at 8 / 16 the channels-last kernels spilled (16 bytes on sm_75..sm_89; sm_90 went to 146
// registers, 1 block per SM). float16's scalar backward holds 14 too: at 16 bn_persist_bwd_cl_f16 spilled 8 bytes on
// sm_90 once the two-launch phase was added.
template <typename S, bool VEC>
constexpr int persist_backward_units() {
    return bn_is_bf16<S>::value ? (VEC ? 7 : 14) : (VEC ? 8 : (sizeof(S) == 2 ? 14 : 16));
}

template <typename S, bool VEC>
struct PersistBackwardOp {
    using Sums = BackwardSumsOp<S, VEC>;
    using Acc = float2;
    using IO = typename Sums::IO;
    using Item = typename Sums::Item;
    static constexpr int W = IO::W, K = 4;
    static constexpr int T = persist_backward_units<S, VEC>();   // units of x and of dy per thread
    Sums sums;                  // x, dy, f
    S* dx;                      // may be dy (each unit is read before the barrier, written after it)
    const float* __restrict__ mean;

    __device__ __forceinline__ float center(int c) const { return mean[c]; }
    __device__ __forceinline__ void keep_center(int, float) const {}   // the saved mean is never overwritten
    __device__ __forceinline__ float kept_center(int c) const { return mean[c]; }
    __device__ __forceinline__ void load(Item& v, long long e, bool valid) const { if (valid) v = sums.load(e); }
    __device__ __forceinline__ void push(float2& a, const Item& v, float c) const { sums.push(a, v, c); }
    __device__ __forceinline__ void push_row(float2 (&a)[W], const Item& v, const float (&c)[W]) const {
        sums.push_row(a, v, c);
    }
    __device__ __forceinline__ void settle(float2 (&)[W]) const {}
    // finish_backward_sums' arithmetic, with the dx coefficients kept for this block: q = (mean, b, c, a).
    __device__ __forceinline__ void finish(int c, bool writer, const float2& s, float center, float* q) const {
        const BackwardFinish& f = sums.f;
        const float invstd = f.invstd[c];
        const float dbeta = s.x;
        const float dgamma = s.y * invstd;
        if (writer) {
            if (f.flags & BN_WANT_DGAMMA) f.dgamma[c] = dgamma;
            if (f.flags & BN_WANT_DBETA) f.dbeta[c] = dbeta;
        }
        const float g = (f.flags & BN_HAS_GAMMA) ? f.gamma[c] : 1.0f;
        const float m = (float)f.count;
        const float a = g * invstd;
        q[0] = center;
        q[1] = -a * invstd * dgamma / m;
        q[2] = -a * dbeta / m;
        q[3] = a;
    }
    __device__ __forceinline__ void store(long long e, const Item& v, const float (&q)[W][K], bool valid) const {
        if (!valid) return;
        float o[W];
        #pragma unroll
        for (int k = 0; k < W; k++) {
            o[k] = fmaf(q[k][3], IO::get(v.g, k), fmaf(q[k][1], IO::get(v.x, k) - q[k][0], q[k][2]));
        }
        IO::store(dx + e, o);
    }
};

#define BN_PERSIST_BWD_ENTRIES(S, SUF, V) \
extern "C" __global__ void __launch_bounds__(256) \
bn_persist_bwd_cf##SUF(const S* x, const S* dy, S* dx, int C, long long N, long long inner, int splits, \
                       long long chunk, float* partials, unsigned* bar, BWD_PARAMS, int phase) { \
    BWD_INIT(C) \
    PersistBackwardOp<S, false> op{{x, dy, f}, dx, mean}; \
    persist_cf(op, C, N, inner, splits, chunk, partials, bar, phase); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_persist_bwd_cf##SUF##V(const S* x, const S* dy, S* dx, int C, long long N, long long inner, int splits, \
                          long long chunk, float* partials, unsigned* bar, BWD_PARAMS, int phase) { \
    BWD_INIT(C) \
    PersistBackwardOp<S, true> op{{x, dy, f}, dx, mean}; \
    persist_cf(op, C, N, inner, splits, chunk, partials, bar, phase); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_persist_bwd_cl##SUF(const S* x, const S* dy, S* dx, long long rows, int C, int inner, long long chunk, \
                       float* partials, unsigned* bar, BWD_PARAMS, int phase) { \
    BWD_INIT(C) \
    PersistBackwardOp<S, false> op{{x, dy, f}, dx, mean}; \
    persist_cl(op, rows, C, inner, chunk, partials, bar, phase); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_persist_bwd_cl##SUF##V(const S* x, const S* dy, S* dx, long long rows, int C, int inner, long long chunk, \
                          float* partials, unsigned* bar, BWD_PARAMS, int phase) { \
    BWD_INIT(C) \
    PersistBackwardOp<S, true> op{{x, dy, f}, dx, mean}; \
    persist_cl(op, rows, C, inner, chunk, partials, bar, phase); \
}

BN_PERSIST_BWD_ENTRIES(float, , _vec4)
BN_PERSIST_BWD_ENTRIES(__half, _f16, _vec8)
BN_PERSIST_BWD_ENTRIES(__nv_bfloat16, _bf16, _vec8)
