// batchnorm_forward.cu: per-channel statistics, coefficient preparation and the normalize-apply pass.
//
// Entry points (all extern "C"; "_vec4" variants need 16-byte aligned tensors and inner % 4 == 0 (channels-first)
// or C % 4 == 0 (channels-last); the host picks them, else the scalar ones). The streaming kernels (bn_stats_*,
// bn_apply_*) exist once per storage type of x and y: float (the names below), __half ("_f16": bn_stats_cf_f16, ...)
// and __nv_bfloat16 ("_bf16"), whose vector variants "_vec8" move 8 halves per 16-byte load or store (inner % 8 == 0,
// or C·inner % 8 == 0 for the rows view). Statistics, coefficients and arithmetic are float for every type; y is
// rounded once to its type when stored. Traffic in units of S = bytes of x in its own type.
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
//   bn_stats_merge      one thread per channel: merges `ranks` statistics records (count, center, mean - center, M2
//                       per channel, as bn_stats_* write them with BN_STATS_ONLY; the layout is in the kernel's
//                       comment) with Chan's formula in record order, then finishes like bn_stats_*. The merge step
//                       of data-parallel batch norm (every rank runs it on the same gathered records: the same bits)
//                       and of the host API's forward with given statistics (one record). Traffic: O(ranks * C).
//   bn_prepare          one thread per channel: per-channel coefficients for eval forward, normalize with given
//                       statistics, and eval backward (BN_PREP_*). Traffic: O(C).
//   bn_apply_cf[_vec4]  out = (in - p[c]) * a[c] + b[c] over a channels-first tensor. Work is cut into units of
//                       `chunk` consecutive units of one (n, c) plane; one warp per unit (grid-stride over units),
//                       lane 0 loads the three coefficients and broadcasts them with shuffles. Traffic: 2 S.
//   bn_apply_cl[_vec4]  the same over channels-last: 2-D blocks as bn_stats_cl, coefficients staged once per block
//                       in shared memory, threads stride over rows. Traffic: 2 S.
//
// Statistics are taken of x - center (center = the channel's first element; the name is the same wherever a value
// is subtracted per channel before arithmetic, see batchnorm_common.cuh) and the apply coefficients keep it:
// y = (x - center) * scale + (beta - (mean - center) * scale), which equals (x - mean) * gamma * invstd + beta
// without the cancellation that x * scale + shift suffers when |mean| >> std.
// build-ptx-flags: --fmad=false
// (nvcc then gives every float add, sub and mul an explicit .rn, which the driver's JIT may not contract into an fma:
// the PTX means the same bits on every GPU and in the emulator; every fma in these kernels is an explicit fmaf.)
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
    float* coef;            // 3*C floats: p (center, with BN_COEF_CENTER), a, b for bn_apply (or the statistics)
    int channels;
};

// Turns one channel's merged statistics into every output. The only place outputs are written.
// write_center: also store the center in coef row 0 (else the apply reads it from x).
__device__ __forceinline__ void finish_channel(const FinishArgs& f, int c, Welford w, float center,
                                               bool write_center) {
    const int C = f.channels;
    if (f.flags & BN_STATS_ONLY) {
        f.coef[c] = center;
        f.coef[C + c] = w.mean;
        f.coef[2 * C + c] = w.m2;
        return;
    }
    const float m = (float)f.count;
    const float mean = center + w.mean;
    const float var = w.m2 / m;                        // biased: what training normalizes with
    const float invstd = 1.0f / sqrtf(var + f.eps);    // IEEE sqrt and division: same bits on every GPU
    f.save_mean[c] = mean;
    f.save_invstd[c] = invstd;
    if (f.flags & BN_HAS_RUNNING) {
        const float unbiased = w.m2 / (m - 1.0f);      // M/(M-1) * var, as PyTorch and cuDNN store it
        const float k = f.momentum;
        f.running_mean[c] = (1.0f - k) * f.running_mean[c] + k * mean;
        f.running_var[c] = (1.0f - k) * f.running_var[c] + k * unbiased;
    }
    const float g = (f.flags & BN_HAS_GAMMA) ? f.gamma[c] : 1.0f;
    const float b = (f.flags & BN_HAS_BETA) ? f.beta[c] : 0.0f;
    const float scale = g * invstd;
    if (write_center) f.coef[c] = center;
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
// Welford of x - center, center = the channel's first element; finish_channel at the end.
template <typename S, bool VEC>
struct ForwardStatsOp {
    using Acc = Welford;
    using IO = bn_io<S, VEC>;
    using Item = typename IO::Unit;
    static constexpr int W = IO::W;
    const S* __restrict__ x;
    FinishArgs f;
    float n;   // rows view: rows pushed so far, shared by the W channels of a thread (one 1/n per row)

    __device__ __forceinline__ Item load(long long e) const { return IO::load(x + e); }
    // Channels-first: the W values of a unit merge as a group (one division per W); one value updates in place with
    // a correctly rounded 1/n.
    __device__ __forceinline__ void push(Welford& w, const Item& v, float center) const {
        if constexpr (W > 1) {
            float d[W];
            #pragma unroll
            for (int k = 0; k < W; k++) d[k] = IO::get(v, k) - center;
            welford_push_group<W>(w, d);
        } else {
            w.n += 1.0f;
            welford_push(w, IO::get(v, 0) - center, __frcp_rn(w.n));
        }
    }
    __device__ __forceinline__ void push_row(Welford (&w)[W], const Item& v, const float (&center)[W]) {
        n += 1.0f;
        const float inv = __frcp_rn(n);   // 1/n, correctly rounded, shared by the W channels
        #pragma unroll
        for (int k = 0; k < W; k++) welford_push(w[k], IO::get(v, k) - center[k], inv);
    }
    __device__ __forceinline__ void settle(Welford (&w)[W]) const {
        #pragma unroll
        for (int k = 0; k < W; k++) w[k].n = n;
    }
    static constexpr bool CENTER_IS_ROW0 = true;   // the center of channel c is x[c * inner], in row 0
    __device__ __forceinline__ float element(const Item& v, int k) const { return IO::get(v, k); }
    __device__ __forceinline__ void finish(int c, const Welford& w, float center) const {
        finish_channel(f, c, w, center, (f.flags & BN_COEF_CENTER) != 0);
    }
};

// Channels-first: the center of channel c is x[c * inner] (n = 0, i = 0). Rows view (channels-last, or
// channels-first with a small inner): the center of channel c is x[c * inner] (row 0). One set of four entry points
// per storage type (SUF: "" float, "_f16" __half, "_bf16" __nv_bfloat16; V: "_vec4" for float4, "_vec8" for 8 halves).
#define BN_STATS_ENTRIES(S, SUF, V) \
extern "C" __global__ void __launch_bounds__(256) \
bn_stats_cf##SUF(const S* __restrict__ x, int C, long long N, long long inner, int splits, long long chunk, \
                 float* partials, unsigned* counters, FINISH_PARAMS) { \
    FINISH_ARGS_INIT(C) \
    channel_reduce_cf(ForwardStatsOp<S, false>{x, f, 0.f}, x, inner, C, N, inner, splits, chunk, partials, counters); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_stats_cf##SUF##V(const S* __restrict__ x, int C, long long N, long long inner, int splits, long long chunk, \
                    float* partials, unsigned* counters, FINISH_PARAMS) { \
    FINISH_ARGS_INIT(C) \
    channel_reduce_cf(ForwardStatsOp<S, true>{x, f, 0.f}, x, inner, C, N, inner, splits, chunk, partials, counters); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_stats_cl##SUF(const S* __restrict__ x, long long rows, int C, int inner, long long chunk, float* partials, \
                 unsigned* counters, FINISH_PARAMS) { \
    FINISH_ARGS_INIT(C) \
    channel_reduce_cl(ForwardStatsOp<S, false>{x, f, 0.f}, x, inner, rows, C, inner, chunk, partials, counters); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_stats_cl##SUF##V(const S* __restrict__ x, long long rows, int C, int inner, long long chunk, float* partials, \
                    unsigned* counters, FINISH_PARAMS) { \
    FINISH_ARGS_INIT(C) \
    channel_reduce_cl(ForwardStatsOp<S, true>{x, f, 0.f}, x, inner, rows, C, inner, chunk, partials, counters); \
}

BN_STATS_ENTRIES(float, , _vec4)
BN_STATS_ENTRIES(__half, _f16, _vec8)
BN_STATS_ENTRIES(__nv_bfloat16, _bf16, _vec8)

// ---- per-channel coefficients -----------------------------------------------------------------------------------
// One thread per channel (1-D grid, any block size). `mean` and `var_or_invstd` are running_mean/running_var
// (BN_PREP_EVAL_*) or the given mean/invstd (BN_PREP_NORMALIZE). Writes coef[0..2] = (p, a, b) for bn_apply and,
// for BN_PREP_EVAL_BACKWARD, aux[c] = invstd for the backward sums.
extern "C" __global__ void bn_prepare(int mode, int C, float eps, int flags, const float* __restrict__ gamma,
                                      const float* __restrict__ beta, const float* __restrict__ mean,
                                      const float* __restrict__ var_or_invstd, float* coef, float* aux) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const float g = (flags & BN_HAS_GAMMA) ? gamma[c] : 1.0f;
    const float b = (flags & BN_HAS_BETA) ? beta[c] : 0.0f;
    const float invstd = mode == BN_PREP_NORMALIZE ? var_or_invstd[c] : 1.0f / sqrtf(var_or_invstd[c] + eps);
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

// ---- apply: out = (in - p) * a + b, through channel_map_cf / _cl (batchnorm_common.cuh) ---------------------------
// coef rows: p, a, b (from the statistics' finishing step or bn_prepare). The value is computed in float and rounded
// once to S when stored.
template <typename S, bool VEC>
struct ApplyOp {
    using IO = bn_io<S, VEC>;
    using Item = typename IO::Unit;
    static constexpr int W = IO::W, K = 3;
    const S* in;   // not __restrict__: in may be out (in-place apply)
    S* out;
    // The centers, when not in coef row 0: forward training reads channel c's from x[c * inner] itself (row 0, the
    // value the statistics were centered on), which saves writing and reading a row of C floats. Null for eval,
    // normalize, after a records merge, and in place (y = x: row 0 may already hold y).
    const S* center_x;
    long long center_stride;
    __device__ __forceinline__ Item load(long long e) const { return IO::load(in + e); }
    __device__ __forceinline__ float coefficient(const float* coef, int C, int j, int c) const {
        return j == 0 && center_x != nullptr ? to_float(center_x[(long long)c * center_stride]) : coef[j * C + c];
    }
    __device__ __forceinline__ float value(const Item& v, int k, const float (&q)[K]) const {
        return fmaf(IO::get(v, k) - q[0], q[1], q[2]);
    }
};

#define BN_APPLY_ENTRIES(S, SUF, V) \
extern "C" __global__ void __launch_bounds__(256) \
bn_apply_cf##SUF(const S* in, S* out, int C, unsigned units, unsigned pieces, long long inner, int chunk, \
                 const float* __restrict__ coef, const S* center_x) { \
    channel_map_cf(ApplyOp<S, false>{in, out, center_x, inner}, C, units, pieces, inner, chunk, coef); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_apply_cf##SUF##V(const S* in, S* out, int C, unsigned units, unsigned pieces, long long inner, int chunk, \
                    const float* __restrict__ coef, const S* center_x) { \
    channel_map_cf(ApplyOp<S, true>{in, out, center_x, inner}, C, units, pieces, inner, chunk, coef); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_apply_cl##SUF(const S* in, S* out, long long rows, int C, int inner, const float* __restrict__ coef, \
                 const S* center_x) { \
    channel_map_cl(ApplyOp<S, false>{in, out, center_x, inner}, rows, C, inner, coef); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_apply_cl##SUF##V(const S* in, S* out, long long rows, int C, int inner, const float* __restrict__ coef, \
                    const S* center_x) { \
    channel_map_cl(ApplyOp<S, true>{in, out, center_x, inner}, rows, C, inner, coef); \
}

BN_APPLY_ENTRIES(float, , _vec4)
BN_APPLY_ENTRIES(__half, _f16, _vec8)
BN_APPLY_ENTRIES(__nv_bfloat16, _bf16, _vec8)

// ---- merge of statistics records (data-parallel batch norm) -------------------------------------------------------
// A record holds one piece's statistics: 2 + 3*C floats, [count_hi, count_lo, center[C], mean - center[C], M2[C]]
// with count = count_hi * 2^24 + count_lo (both exact in float, so a record survives any copy of floats). The last
// 3*C floats are what bn_stats_* write with BN_STATS_ONLY. Records sit one after another, rank order. Each channel
// merges them in that order, relative to the center of the first non-empty record (pieces of one channel lie close
// together, so center_r - center is exact by Sterbenz when |mean| >> std, as within one piece); the merged count goes
// to the finishing step (variance M2/M, running variance M2/(M - 1) of the whole batch). A count below 2 is the
// host's to refuse: it reads the counts before launching when its own piece has fewer than 2 values.
extern "C" __global__ void bn_stats_merge(int ranks, int C, const float* __restrict__ records, float eps,
                                          float momentum, int flags, const float* __restrict__ gamma,
                                          const float* __restrict__ beta, float* running_mean, float* running_var,
                                          float* save_mean, float* save_invstd, float* coef) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const long long stride = 2 + 3LL * C;
    // Every record counts at least one value (a piece is a tensor, N >= 1) and ranks >= 1, so record 0's center is
    // the reference and the loop needs neither a zero-trip test nor a skip: no branch the host can never take.
    const float center = records[2 + c];
    long long total = 0;
    Welford acc = welford_empty();
    int r = 0;
    #pragma unroll 1   // a handful of ranks: no unrolled copies that few-rank runs never reach
    do {
        const float* rec = records + r * stride;
        const long long n = (long long)rec[0] * 16777216LL + (long long)rec[1];
        Welford w;
        w.n = (float)n;
        w.mean = (rec[2 + c] - center) + rec[2 + C + c];
        w.m2 = rec[2 + 2 * C + c];
        acc = welford_combine(acc, w);
        total += n;
    } while (++r < ranks);
    long long count = total;
    FINISH_ARGS_INIT(C)
    f.flags &= ~BN_STATS_ONLY;   // a merge finishes; it never writes a statistics record (no dead branch for it)
    finish_channel(f, c, acc, center, true);   // the merged center is not this rank's x[c * inner]
}

// ---- persistent single pass: forward training (cooperative launch; see persist_cf / persist_cl) -----------------
// y = (x - center) * scale + shift from the tile kept in registers, with the statistics of the whole channel merged
// across blocks. Traffic: x read once (1 S), y written (1 S), plus partials and per-channel vectors (each block
// also reads its channels' centers, the first element of each channel: one sector per channel and block). The
// finishing step is finish_channel's, its outputs written by split 0 of each channel. One set of entries per
// storage type, as the two-pass kernels (_f16, _bf16; _vec8: 8 halves per 16-byte unit).
// Units each thread keeps (LaunchGeometry.persistForwardUnits): as many as nvPTXCompiler fits in registers without
// spills at 2 blocks per SM on sm_75..sm_90 (PtxCompileTest; cuda/README.md has the table). float: 8 float4s or 16
// floats. 16-bit: 10 units of 8 halves (12 spill into 1 block per SM in the channels-last kernels; bfloat16 9: at
// 10 its channels-last kernel spilled 16 bytes on sm_90 once the two-launch phase was added), or 16 halves
// (the scalar channels-last kernels are at 126-128 registers already). More rows per block means fewer row splits,
// and the exchange (every block reads every split's partial of its channels: splits^2 records) weighs twice as much
// against a 16-bit tensor: at 8 units [8,28,28,64] channels-last moved 2.062 S, at 10 units 2.03 S.
template <typename S, bool VEC>
constexpr int persist_forward_units() {
    return VEC ? (sizeof(S) == 2 ? (bn_is_bf16<S>::value ? 9 : 10) : 8) : 16;
}

template <typename S, bool VEC>
struct PersistForwardOp {
    using Stats = ForwardStatsOp<S, VEC>;
    using Acc = Welford;
    using IO = typename Stats::IO;
    using Item = typename Stats::Item;
    static constexpr int W = IO::W, K = 3;
    static constexpr int T = persist_forward_units<S, VEC>();   // units per thread
    Stats stats;
    S* y;                       // may be x (in place: every unit is read before the barrier, written after it)
    long long center_stride;    // channel c's center is x[c * center_stride]

    __device__ __forceinline__ float center(int c) const { return to_float(stats.x[(long long)c * center_stride]); }
    // Two-launch mode: the partials launch keeps each channel's center in coef row 0 for the outputs launch.
    __device__ __forceinline__ void keep_center(int c, float v) const { stats.f.coef[c] = v; }
    __device__ __forceinline__ float kept_center(int c) const { return stats.f.coef[c]; }
    __device__ __forceinline__ void load(Item& v, long long e, bool valid) const { if (valid) v = stats.load(e); }
    __device__ __forceinline__ void push(Welford& w, const Item& v, float c) const { stats.push(w, v, c); }
    __device__ __forceinline__ void push_row(Welford (&w)[W], const Item& v, const float (&c)[W]) {
        stats.push_row(w, v, c);
    }
    __device__ __forceinline__ void settle(Welford (&w)[W]) const { stats.settle(w); }
    // finish_channel's arithmetic, with the coefficients kept for this block instead of written to coef.
    __device__ __forceinline__ void finish(int c, bool writer, const Welford& w, float center, float* q) const {
        const FinishArgs& f = stats.f;
        const float m = (float)f.count;
        const float mean = center + w.mean;
        const float invstd = 1.0f / sqrtf(w.m2 / m + f.eps);
        if (writer) {
            f.save_mean[c] = mean;
            f.save_invstd[c] = invstd;
            if (f.flags & BN_HAS_RUNNING) {
                const float unbiased = w.m2 / (m - 1.0f);
                const float k = f.momentum;
                f.running_mean[c] = (1.0f - k) * f.running_mean[c] + k * mean;
                f.running_var[c] = (1.0f - k) * f.running_var[c] + k * unbiased;
            }
        }
        const float g = (f.flags & BN_HAS_GAMMA) ? f.gamma[c] : 1.0f;
        const float b = (f.flags & BN_HAS_BETA) ? f.beta[c] : 0.0f;
        const float scale = g * invstd;
        q[0] = center;
        q[1] = scale;
        q[2] = fmaf(-w.mean, scale, b);
    }
    __device__ __forceinline__ void store(long long e, const Item& v, const float (&q)[W][K], bool valid) const {
        if (!valid) return;
        float o[W];
        #pragma unroll
        for (int k = 0; k < W; k++) o[k] = fmaf(IO::get(v, k) - q[k][0], q[k][1], q[k][2]);
        IO::store(y + e, o);
    }
};

#define BN_PERSIST_FWD_ENTRIES(S, SUF, V) \
extern "C" __global__ void __launch_bounds__(256) \
bn_persist_fwd_cf##SUF(const S* x, S* y, int C, long long N, long long inner, int splits, long long chunk, \
                       float* partials, unsigned* bar, FINISH_PARAMS, int phase) { \
    FINISH_ARGS_INIT(C) \
    PersistForwardOp<S, false> op{{x, f, 0.f}, y, inner}; \
    persist_cf(op, C, N, inner, splits, chunk, partials, bar, phase); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_persist_fwd_cf##SUF##V(const S* x, S* y, int C, long long N, long long inner, int splits, long long chunk, \
                          float* partials, unsigned* bar, FINISH_PARAMS, int phase) { \
    FINISH_ARGS_INIT(C) \
    PersistForwardOp<S, true> op{{x, f, 0.f}, y, inner}; \
    persist_cf(op, C, N, inner, splits, chunk, partials, bar, phase); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_persist_fwd_cl##SUF(const S* x, S* y, long long rows, int C, int inner, long long chunk, float* partials, \
                       unsigned* bar, FINISH_PARAMS, int phase) { \
    FINISH_ARGS_INIT(C) \
    PersistForwardOp<S, false> op{{x, f, 0.f}, y, inner}; \
    persist_cl(op, rows, C, inner, chunk, partials, bar, phase); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_persist_fwd_cl##SUF##V(const S* x, S* y, long long rows, int C, int inner, long long chunk, float* partials, \
                          unsigned* bar, FINISH_PARAMS, int phase) { \
    FINISH_ARGS_INIT(C) \
    PersistForwardOp<S, true> op{{x, f, 0.f}, y, inner}; \
    persist_cl(op, rows, C, inner, chunk, partials, bar, phase); \
}

BN_PERSIST_FWD_ENTRIES(float, , _vec4)
BN_PERSIST_FWD_ENTRIES(__half, _f16, _vec8)
BN_PERSIST_FWD_ENTRIES(__nv_bfloat16, _bf16, _vec8)

// ---- fused apply + (residual) + ReLU with a 1-bit mask (bn_apply_relu*) --------------------------------------------
// v = (x - p[c]) * a[c] + b[c] (+ z), y = v where !(v <= 0) else +0 (NaN passes), rounded once to S; mask bit
// i = !(v_i <= 0), bit i % 32 of word i / 32 (io.github.batchnorm4j.ReluMask). Both layouts run the same kernel: the
// channel of flat element e is (e / inner) % C, with inner = the spatial size for channels-first and 1 for
// channels-last.
//
// Geometry (LaunchGeometry.relu): a warp tile is TW = 512 bytes of consecutive elements (128 floats, 256 halves), so
// that its mask words (TW / 32 of them: 16 or 32 bytes, one sector) start at a word boundary and are stored whole, each
// by one lane. The flat tensor is cut into periods of `period` = lcm(C * inner, TW) elements; tile column ct (< tiles
// = period / TW) of every period holds the same channels at the same lanes, so each lane keeps its coefficients in
// registers while it walks down the periods. A work item is (column ct, `chunk` consecutive periods); blocks take
// items grid-stride (block-uniform), stage the item's channels' coefficients in shared memory (at most 256 channels:
// a tile spans at most TW / inner + 2 planes, and all C when that is more than C), and their 8 warps take the item's
// periods in turn. Every lane of a warp runs every iteration (the period loop is warp-uniform), so the ballots and
// shuffles see all 32 lanes; lanes past the end of the tensor load nothing, store nothing and contribute 0 bits.
// Scalar path: a lane holds T = TW / 32 elements of the tile (element s * 32 + lane), one ballot per s gives word s,
// lane s stores it. Vector path (W elements per 16-byte unit, one unit per lane): the W bits of a lane are ORed with
// shuffles across the 32 / W lanes that share a word, and the first of them stores it.
// Traffic: x (and z) read once, y written once, the mask words*4 bytes, plus per item the staged coefficients (3
// floats and, for forward training, the center x[c * inner] per channel); the host sizes `chunk` so that those stay
// below 1% of the tensors' bytes.
template <typename S, bool VEC>
struct ReluTile {
    using IO = bn_io<S, VEC>;
    static constexpr int W = IO::W;
    static constexpr int TW = 512 / (int)sizeof(S);   // elements per warp tile
    static constexpr int T = TW / (BN_WARP * W);       // units per lane per tile (1 on the vector path)
    static constexpr int E = T * W;                    // elements per lane per tile
    static constexpr int G = BN_WARP / W;              // vector path: lanes whose bits share one mask word
    // Offset within the tile of element k (< E) of a lane.
    static __device__ __forceinline__ int offset(int lane, int k) { return VEC ? lane * W + k : k * BN_WARP + lane; }
};

// One unit of y. The vector path stores with st.global.wb (the default store policy, written out): nvcc otherwise
// splits this kernel's 16-byte stores into 4-byte ones (it cannot prove the address 16-byte aligned), which would use
// a quarter of each sector a warp instruction touches.
template <typename S, bool VEC>
__device__ __forceinline__ void relu_store(S* p, const float (&o)[bn_io<S, VEC>::W]) {
    if constexpr (!VEC) {
        bn_io<S, false>::store(p, o);
    } else if constexpr (sizeof(S) == 4) {
        __stwb(reinterpret_cast<float4*>(p), make_float4(o[0], o[1], o[2], o[3]));
    } else {
        uint4 u;
        S* h = reinterpret_cast<S*>(&u);
        #pragma unroll
        for (int k = 0; k < 8; k++) h[k] = from_float<S>(o[k]);
        __stwb(reinterpret_cast<uint4*>(p), u);
    }
}

// One warp tile: the TW elements from `base` (a multiple of TW), q[k] the coefficients of the lane's element k.
template <typename S, bool VEC>
__device__ __forceinline__ void relu_tile(const S* x, const S* z, S* y, unsigned* mask, long long n, long long base,
                                          int lane, const float (&q)[ReluTile<S, VEC>::E][3]) {
    using Tile = ReluTile<S, VEC>;
    using IO = typename Tile::IO;
    constexpr int W = Tile::W, T = Tile::T, G = Tile::G;
    typename IO::Unit v[T], r[T];
    #pragma unroll
    for (int t = 0; t < T; t++) {   // all loads first (y may be x)
        const long long e = base + Tile::offset(lane, t * W);
        if (e < n) {
            v[t] = IO::load(x + e);
            if (z != nullptr) r[t] = IO::load(z + e);
        }
    }
    unsigned bits[T];
    #pragma unroll
    for (int t = 0; t < T; t++) {
        const long long e = base + Tile::offset(lane, t * W);
        float o[W];
        unsigned b = 0u;
        #pragma unroll
        for (int k = 0; k < W; k++) {
            const float* qk = q[t * W + k];
            float s = fmaf(IO::get(v[t], k) - qk[0], qk[1], qk[2]);
            if (z != nullptr) s = s + IO::get(r[t], k);
            const bool pass = !(s <= 0.f);
            o[k] = pass ? s : 0.f;
            b |= (pass && e < n ? 1u : 0u) << k;
        }
        if (e < n) relu_store<S, VEC>(y + e, o);
        bits[t] = b;
    }
    if (mask == nullptr) return;   // uniform: the caller wants no mask
    if constexpr (VEC) {
        unsigned word = bits[0] << ((lane % G) * W);
        #pragma unroll
        for (int off = G / 2; off > 0; off >>= 1) word |= __shfl_xor_sync(0xffffffffu, word, off);
        const long long e = base + (long long)lane * W;
        if (lane % G == 0 && e < n) mask[e / BN_WARP] = word;
    } else {
        unsigned mine = 0u;
        #pragma unroll
        for (int t = 0; t < T; t++) {
            const unsigned word = __ballot_sync(0xffffffffu, bits[t] != 0u);
            if (lane == t) mine = word;
        }
        if (lane < T && base + lane * BN_WARP < n) mask[base / BN_WARP + lane] = mine;
    }
}

// Coefficients of channel c into staging slot i (threads of the block, before a barrier).
__device__ __forceinline__ void relu_stage(float (*sh)[BN_BLOCK], int i, int c, int C, const float* __restrict__ coef,
                                           float center) {
    sh[0][i] = center;
    sh[1][i] = coef[C + c];
    sh[2][i] = coef[2 * C + c];
}

// tiles > 0: items are (tile column, chunk of periods), coefficients staged per item by plane (see above).
// tiles == 0 (the host's choice when C <= 256 and per-column staging would cost more than 1% of the traffic, e.g. a
// rows view whose C·inner shares few factors with TW): every channel is staged once per block, and an item is `chunk`
// consecutive tiles of the flat tensor (periods = the number of tiles), one item per block; lanes look their
// channels up per tile.
template <typename S, bool VEC>
__device__ __forceinline__ void relu_map(const S* x, const S* z, S* y, unsigned* mask, long long n, int C,
                                         long long inner, long long period, int tiles, long long periods,
                                         long long chunk, int items, const float* __restrict__ coef,
                                         const S* center_x) {
    using Tile = ReluTile<S, VEC>;
    constexpr int TW = Tile::TW, E = Tile::E;
    __shared__ float sh[3][BN_BLOCK];
    const int lane = threadIdx.x % BN_WARP, warp = threadIdx.x / BN_WARP;
    int item = blockIdx.x;   // < items: the grid is at most one block per item
    if (tiles == 0) {
        if ((int)threadIdx.x < C) {
            const int c = threadIdx.x;
            relu_stage(sh, c, c, C, coef, center_x != nullptr ? to_float(center_x[(long long)c * inner]) : coef[c]);
        }
        __syncthreads();
        const long long t_hi = min((long long)(item + 1) * chunk, periods);   // one item per block: grid == items
        #pragma unroll 1
        for (long long t = (long long)item * chunk + warp; t < t_hi; t += BN_BLOCK_WARPS) {   // warp-uniform
            const long long base = t * TW;
            const long long p0 = base / inner;          // inner <= TW here: the offsets below are 32-bit
            const int r0 = (int)(base - p0 * inner), c0 = (int)(p0 % C);
            float q[E][3];
            #pragma unroll
            for (int k = 0; k < E; k++) {
                const int c = (c0 + (r0 + Tile::offset(lane, k)) / (int)inner) % C;
                q[k][0] = sh[0][c];
                q[k][1] = sh[1][c];
                q[k][2] = sh[2][c];
            }
            relu_tile<S, VEC>(x, z, y, mask, n, base, lane, q);
        }
        return;
    }
    #pragma unroll 1
    do {
        const int ct = item % tiles;
        const long long col0 = (long long)ct * TW;
        const long long first = col0 / inner;
        const long long planes = (col0 + TW - 1) / inner - first + 1;
        const bool all = planes > C;   // the tile sees every channel (then C < planes <= 256): index by channel
        const int staged = all ? C : (int)planes;
        __syncthreads();   // every thread has read the previous item's coefficients
        if ((int)threadIdx.x < staged) {
            const int c = all ? (int)threadIdx.x : (int)((first + threadIdx.x) % C);
            relu_stage(sh, threadIdx.x, c, C, coef,
                       center_x != nullptr ? to_float(center_x[(long long)c * inner]) : coef[c]);
        }
        __syncthreads();
        float q[E][3];
        #pragma unroll
        for (int k = 0; k < E; k++) {
            const long long plane = (col0 + Tile::offset(lane, k)) / inner;
            const int j = all ? (int)(plane % C) : (int)(plane - first);
            q[k][0] = sh[0][j];
            q[k][1] = sh[1][j];
            q[k][2] = sh[2][j];
        }
        const long long p_lo = (long long)(item / tiles) * chunk, p_hi = min(p_lo + chunk, periods);
        #pragma unroll 1
        for (long long p = p_lo + warp; p < p_hi; p += BN_BLOCK_WARPS) {   // warp-uniform
            relu_tile<S, VEC>(x, z, y, mask, n, p * period + col0, lane, q);   // base: a multiple of TW
        }
    } while ((item += gridDim.x) < items);
}

#define BN_APPLY_RELU_ENTRIES(S, SUF, V) \
extern "C" __global__ void __launch_bounds__(256, 3) \
bn_apply_relu##SUF(const S* x, const S* z, S* y, unsigned* mask, long long n, int C, long long inner, \
                   long long period, int tiles, long long periods, long long chunk, int items, \
                   const float* __restrict__ coef, const S* center_x) { \
    relu_map<S, false>(x, z, y, mask, n, C, inner, period, tiles, periods, chunk, items, coef, center_x); \
} \
extern "C" __global__ void __launch_bounds__(256, 3) \
bn_apply_relu##SUF##V(const S* x, const S* z, S* y, unsigned* mask, long long n, int C, long long inner, \
                      long long period, int tiles, long long periods, long long chunk, int items, \
                      const float* __restrict__ coef, const S* center_x) { \
    relu_map<S, true>(x, z, y, mask, n, C, inner, period, tiles, periods, chunk, items, coef, center_x); \
}

BN_APPLY_RELU_ENTRIES(float, , _vec4)
BN_APPLY_RELU_ENTRIES(__half, _f16, _vec8)
BN_APPLY_RELU_ENTRIES(__nv_bfloat16, _bf16, _vec8)
