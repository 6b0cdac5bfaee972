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
//   bn_backward_reduce_relu_*, bn_dx_relu_*, bn_dx_eval_relu_*  the fused backward of BN + (add +) ReLU: the same
//                       passes on dy gated by the forward's 1-bit ReLU mask (y is never read), dx and dz = the gated
//                       dy (see "fused backward" below).
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

// ---- the ReLU mask, read by the fused backward (bn_backward_reduce_relu_*, bn_dx_relu_*, bn_dx_eval_relu_*) ----------
// One bit per element in memory order: bit e % 32 of word e / 32 (io.github.batchnorm4j.ReluMask). A unit holds W
// consecutive elements starting at a multiple of W (W divides 32), so its W bits lie in one word. The lanes of a warp
// that load units in the same word (every lane of a warp, for a channels-first run of float32 scalars) share one load:
// the lowest lane of each group of peers (match.any on the word index) loads the word and shuffles it to the others,
// so the mask costs one 4-byte load per word and warp access, S/32 for float32 data (S/16 for 16-bit data), not one
// load per lane. The group is the lanes active here (__activemask: the lanes of a slot or loop tail take this path
// together; whichever lanes do, each group loads its own words, so the bits never depend on convergence).
__device__ __forceinline__ unsigned relu_mask_bits_of(const unsigned* mask, long long e, int w_bits) {
    const unsigned act = __activemask();
    // The word index truncated to 32 bits: two words one warp access touches lie less than 2^32 words apart.
    const unsigned peers = __match_any_sync(act, (unsigned)(e >> 5));
    const int lead = __ffs(peers) - 1;
    const int lane = (int)((threadIdx.y * blockDim.x + threadIdx.x) & (BN_WARP - 1));
    unsigned word = 0u;
    if (lane == lead) word = mask[e >> 5];
    word = __shfl_sync(act, word, lead);
    return (word >> (int)(e & 31)) & ((1u << w_bits) - 1u);
}

// g = the unit of dy at element e with every element whose mask bit is 0 replaced by +0 (a select, not a product: a
// NaN or infinite dy under a 0 bit gives 0, as ReluMask.gate does on the host).
__device__ __forceinline__ float relu_gate(float v, unsigned bits) { return (bits & 1u) ? v : 0.f; }
__device__ __forceinline__ float4 relu_gate(float4 v, unsigned bits) {
    return make_float4((bits & 1u) ? v.x : 0.f, (bits & 2u) ? v.y : 0.f, (bits & 4u) ? v.z : 0.f,
                       (bits & 8u) ? v.w : 0.f);
}
template <typename H>
__device__ __forceinline__ H relu_gate_half(H v, unsigned bits) {
    unsigned short u = *reinterpret_cast<const unsigned short*>(&v);
    u = (bits & 1u) ? u : (unsigned short)0;   // +0 in both 16-bit types
    return *reinterpret_cast<const H*>(&u);
}
__device__ __forceinline__ __half relu_gate(__half v, unsigned bits) { return relu_gate_half(v, bits); }
__device__ __forceinline__ __nv_bfloat16 relu_gate(__nv_bfloat16 v, unsigned bits) { return relu_gate_half(v, bits); }
// 8 halves in 16 bytes: word j holds halves 2j (low 16 bits) and 2j + 1; a 0 bit clears its half (+0).
__device__ __forceinline__ unsigned relu_keep(unsigned bits, int j) {
    return (((bits >> (2 * j)) & 1u) ? 0x0000FFFFu : 0u) | (((bits >> (2 * j + 1)) & 1u) ? 0xFFFF0000u : 0u);
}
__device__ __forceinline__ uint4 relu_gate(uint4 v, unsigned bits) {
    return make_uint4(v.x & relu_keep(bits, 0), v.y & relu_keep(bits, 1), v.z & relu_keep(bits, 2),
                      v.w & relu_keep(bits, 3));
}

// (No __restrict__ on these helpers' pointers: on an inlined helper it lets nvcc read dy through ld.global.nc, which
// in place (dx or dz = dy) would read data the kernel writes. The kernels' own mask parameters are restrict.)
template <typename S, bool VEC>
__device__ __forceinline__ typename bn_io<S, VEC>::Unit relu_gated_load(const S* dy, const unsigned* mask,
                                                                        long long e) {
    using IO = bn_io<S, VEC>;
    const typename IO::Unit d = IO::load(dy + e);
    return relu_gate(d, relu_mask_bits_of(mask, e, IO::W));
}

// ---- sums: what channel_reduce_cf / _cl (batchnorm_common.cuh) accumulate --------------------------------------
// (Σdy, Σdy·(x − center)) per channel, center = the saved (or running) mean; finish_backward at the end.
// RELU (the fused backward of BN + ReLU / BN + add + ReLU): the sums are over g = dy gated by the ReLU mask instead
// of dy (relu_gated_load, below); nothing else changes, so they are the unfused sums of the gated gradient, bit for bit.
template <typename S, bool VEC, bool RELU = false>
struct BackwardSumsOp {
    using Acc = float2;
    using IO = bn_io<S, VEC>;
    using Unit = typename IO::Unit;
    struct Item { Unit x, g; };
    static constexpr int W = IO::W;
    const S* __restrict__ x;
    const S* __restrict__ dy;
    BackwardFinish f;
    const unsigned* __restrict__ mask;   // RELU only: the forward's ReLU mask

    __device__ __forceinline__ Item load(long long e) const {
        if constexpr (RELU) return Item{IO::load(x + e), relu_gated_load<S, VEC>(dy, mask, e)};
        else return Item{IO::load(x + e), IO::load(dy + e)};
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
// RELU: dy gated by the ReLU mask (g), and dz = g stored beside dx (store_values below).
template <typename S, bool VEC, bool RELU = false>
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
    const unsigned* __restrict__ mask;   // RELU only: the ReLU mask
    S* dz;                               // RELU only: the residual's gradient, or null (not written); may be dy
    __device__ __forceinline__ Item load(long long e) const {
        if constexpr (RELU) return Item{IO::load(x + e), relu_gated_load<S, VEC>(dy, mask, e)};
        else return Item{IO::load(x + e), IO::load(dy + e)};
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

// ---- fused backward of BN + ReLU and BN + add + ReLU: the ReLU mask, never y ------------------------------------
// g = dy where the forward's ReLU mask bit is 1, else +0 (gated as each unit is loaded; see relu_gated_load); then the
// batch-norm backward of g, and dz = g (the residual's gradient) stored beside dx when dz is not null. The kernels are
// the unfused ones with RELU set in their functors: the same skeletons, trees and arithmetic on g, so dx, dgamma and
// dbeta are bitwise those of the unfused kernels run on the gated gradient, and dz is the gated dy unit itself (a raw
// store of the loaded, gated bits: exact in every storage type).
//   bn_backward_reduce_relu_cf[_vec4], _cl[_vec4] (+ _f16/_bf16 with _vec8)  Σg, Σg·(x − mean): bn_backward_reduce_*'s
//                       arguments with the mask after dy. Traffic: x and dy (2 S) and the mask (S/32 in float32).
//   bn_dx_relu_cf[_vec4], _cl[_vec4] (+ 16-bit)  dx = a·g + b·(x − p) + c and dz = g: bn_dx_*'s arguments with the
//                       mask after dy and dz after dx. Traffic: x, dy, the mask, dx and dz: 4 S + S/32 (3 S + S/32
//                       without dz). dx may be dy, or dz may be dy (in place; not both).
//   bn_dx_eval_relu_cf[_vec4], _cl[_vec4] (+ 16-bit)  eval mode: dx = (g − q0)·q1 + q2 with bn_prepare's eval-backward
//                       coefficients (bn_apply_*'s arithmetic on g), dz = g; x is not read. Traffic: dy, the mask, dx,
//                       dz: 3 S + S/32 (2 S + S/32 without dz).
// The training backward is reduce + dx: 6 S + S/16 with dz (5 S + S/16 without); eval with dgamma or dbeta is the
// reduce (with the running mean and bn_prepare's invstd) + eval dx: 5 S + S/16 (4 S + S/16), without them 3 S + S/32.

// Eval-mode dx of the fused backward: bn_apply_*'s value on g (ApplyOp in batchnorm_forward.cu), K = 3 coefficients
// from coef (bn_prepare, BN_PREP_EVAL_BACKWARD: 0, gamma·invstd, 0).
template <typename S, bool VEC>
struct EvalDxReluOp {
    using IO = bn_io<S, VEC>;
    using Unit = typename IO::Unit;
    using Item = Unit;
    static constexpr int W = IO::W, K = 3;
    const S* dy;   // not __restrict__: dy may be dx or dz
    S* out;
    const unsigned* __restrict__ mask;
    S* dz;
    __device__ __forceinline__ Item load(long long e) const { return relu_gated_load<S, VEC>(dy, mask, e); }
    __device__ __forceinline__ float coefficient(const float* coef, int C, int j, int c) const {
        return coef[j * C + c];
    }
    __device__ __forceinline__ float value(const Item& v, int k, const float (&q)[K]) const {
        return fmaf(IO::get(v, k) - q[0], q[1], q[2]);
    }
};

// channel_map_cf / _cl store through store_values (batchnorm_common.cuh); for the fused backward's functors these
// overloads, more specialized and found by argument-dependent lookup when the skeleton is instantiated, also store
// dz = g: the gated unit as loaded, with one store of the unit's type.
template <typename Op>
__device__ __forceinline__ void store_values_and_dz(const Op& op, long long e, const typename Op::Unit& g,
                                                    const float (&o)[Op::W]) {
    Op::IO::store(op.out + e, o);
    if (op.dz != nullptr) *reinterpret_cast<typename Op::Unit*>(op.dz + e) = g;
}
template <typename S, bool VEC>
__device__ __forceinline__ void store_values(const DxOp<S, VEC, true>& op, long long e,
                                             const typename DxOp<S, VEC, true>::Item& v,
                                             const float (&q)[bn_io<S, VEC>::W][4]) {
    using Op = DxOp<S, VEC, true>;
    float o[Op::W];
    #pragma unroll
    for (int k = 0; k < Op::W; k++) o[k] = op.value(v, k, q[k]);
    store_values_and_dz(op, e, v.g, o);
}
template <typename S, bool VEC>
__device__ __forceinline__ void store_values(const EvalDxReluOp<S, VEC>& op, long long e,
                                             const typename EvalDxReluOp<S, VEC>::Item& v,
                                             const float (&q)[bn_io<S, VEC>::W][3]) {
    using Op = EvalDxReluOp<S, VEC>;
    float o[Op::W];
    #pragma unroll
    for (int k = 0; k < Op::W; k++) o[k] = op.value(v, k, q[k]);
    store_values_and_dz(op, e, v, o);
}

#define BN_BACKWARD_RELU_ENTRIES(S, SUF, V) \
extern "C" __global__ void __launch_bounds__(256) \
bn_backward_reduce_relu_cf##SUF(const S* __restrict__ x, const S* __restrict__ dy, \
                                const unsigned* __restrict__ mask, int C, long long N, long long inner, int splits, \
                                long long chunk, float* partials, unsigned* counters, BWD_PARAMS) { \
    BWD_INIT(C) \
    channel_reduce_cf(BackwardSumsOp<S, false, true>{x, dy, f, mask}, mean, 1, C, N, inner, splits, chunk, partials, \
                      counters); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_backward_reduce_relu_cf##SUF##V(const S* __restrict__ x, const S* __restrict__ dy, \
                                   const unsigned* __restrict__ mask, int C, long long N, long long inner, \
                                   int splits, long long chunk, float* partials, unsigned* counters, BWD_PARAMS) { \
    BWD_INIT(C) \
    channel_reduce_cf(BackwardSumsOp<S, true, true>{x, dy, f, mask}, mean, 1, C, N, inner, splits, chunk, partials, \
                      counters); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_backward_reduce_relu_cl##SUF(const S* __restrict__ x, const S* __restrict__ dy, \
                                const unsigned* __restrict__ mask, long long rows, int C, int inner, \
                                long long chunk, float* partials, unsigned* counters, BWD_PARAMS) { \
    BWD_INIT(C) \
    channel_reduce_cl(BackwardSumsOp<S, false, true>{x, dy, f, mask}, mean, 1, rows, C, inner, chunk, partials, \
                      counters); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_backward_reduce_relu_cl##SUF##V(const S* __restrict__ x, const S* __restrict__ dy, \
                                   const unsigned* __restrict__ mask, long long rows, int C, int inner, \
                                   long long chunk, float* partials, unsigned* counters, BWD_PARAMS) { \
    BWD_INIT(C) \
    channel_reduce_cl(BackwardSumsOp<S, true, true>{x, dy, f, mask}, mean, 1, rows, C, inner, chunk, partials, \
                      counters); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_dx_relu_cf##SUF(const S* __restrict__ x, const S* dy, const unsigned* __restrict__ mask, S* dx, S* dz, int C, \
                   unsigned units, unsigned pieces, long long inner, int chunk, const float* __restrict__ coef, \
                   const float* __restrict__ mean) { \
    channel_map_cf(DxOp<S, false, true>{x, dy, dx, mean, mask, dz}, C, units, pieces, inner, chunk, coef); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_dx_relu_cf##SUF##V(const S* __restrict__ x, const S* dy, const unsigned* __restrict__ mask, S* dx, S* dz, \
                      int C, unsigned units, unsigned pieces, long long inner, int chunk, \
                      const float* __restrict__ coef, const float* __restrict__ mean) { \
    channel_map_cf(DxOp<S, true, true>{x, dy, dx, mean, mask, dz}, C, units, pieces, inner, chunk, coef); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_dx_relu_cl##SUF(const S* __restrict__ x, const S* dy, const unsigned* __restrict__ mask, S* dx, S* dz, \
                   long long rows, int C, int inner, const float* __restrict__ coef, const float* __restrict__ mean) { \
    channel_map_cl(DxOp<S, false, true>{x, dy, dx, mean, mask, dz}, rows, C, inner, coef); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_dx_relu_cl##SUF##V(const S* __restrict__ x, const S* dy, const unsigned* __restrict__ mask, S* dx, S* dz, \
                      long long rows, int C, int inner, const float* __restrict__ coef, \
                      const float* __restrict__ mean) { \
    channel_map_cl(DxOp<S, true, true>{x, dy, dx, mean, mask, dz}, rows, C, inner, coef); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_dx_eval_relu_cf##SUF(const S* dy, const unsigned* __restrict__ mask, S* dx, S* dz, int C, unsigned units, \
                        unsigned pieces, long long inner, int chunk, const float* __restrict__ coef) { \
    channel_map_cf(EvalDxReluOp<S, false>{dy, dx, mask, dz}, C, units, pieces, inner, chunk, coef); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_dx_eval_relu_cf##SUF##V(const S* dy, const unsigned* __restrict__ mask, S* dx, S* dz, int C, unsigned units, \
                           unsigned pieces, long long inner, int chunk, const float* __restrict__ coef) { \
    channel_map_cf(EvalDxReluOp<S, true>{dy, dx, mask, dz}, C, units, pieces, inner, chunk, coef); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_dx_eval_relu_cl##SUF(const S* dy, const unsigned* __restrict__ mask, S* dx, S* dz, long long rows, int C, \
                        int inner, const float* __restrict__ coef) { \
    channel_map_cl(EvalDxReluOp<S, false>{dy, dx, mask, dz}, rows, C, inner, coef); \
} \
extern "C" __global__ void __launch_bounds__(256) \
bn_dx_eval_relu_cl##SUF##V(const S* dy, const unsigned* __restrict__ mask, S* dx, S* dz, long long rows, int C, \
                           int inner, const float* __restrict__ coef) { \
    channel_map_cl(EvalDxReluOp<S, true>{dy, dx, mask, dz}, rows, C, inner, coef); \
}

BN_BACKWARD_RELU_ENTRIES(float, , _vec4)
BN_BACKWARD_RELU_ENTRIES(__half, _f16, _vec8)
BN_BACKWARD_RELU_ENTRIES(__nv_bfloat16, _bf16, _vec8)

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
