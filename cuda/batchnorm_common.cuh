// batchnorm_common.cuh: device helpers shared by batchnorm_forward.cu and batchnorm_backward.cu.
//
//   Welford            (count, mean, M2) of one channel, with an in-order update and Chan's merge
//   warp_/block_reduce fixed-shape shuffle + shared-memory trees: the same inputs always merge in the same order,
//                      so results are bitwise identical run to run (no floating-point atomics anywhere)
//   last_block_arrives the "last-arriving block" protocol that lets one block merge every block's partial
//   load_cg            loads that bypass L1, for partials written by other blocks of the same launch
//   channel_reduce_cf/_cl   the whole per-channel reduction (streaming loop, block trees, partials, last-block merge)
//                      as templates over a small functor: bn_stats_* and bn_backward_reduce_* differ only in it
//   channel_map_cf/_cl the per-channel elementwise pass (coefficients broadcast or staged once, loads before stores),
//                      likewise: bn_apply_* and bn_dx_* differ only in their functor
//   The _cl skeletons take the "rows" view: rows of L = C*inner floats whose column k belongs to channel k / inner.
//   inner = 1 is channels-last proper; the host also runs channels-first tensors with a small inner extent through
//   them (the same memory: row n of [N, C, inner] is C runs of `inner` floats), so that warps read whole rows.
//   flags and coefficient slots shared with the host (gpu/KernelConstants.java mirrors them)
//
//   bn_io<S, VEC>      the storage type S of the activation tensors (float, __half, __nv_bfloat16) and the unit the
//                      kernels load: one element, or 16 bytes (a float4, or 8 halves in a uint4)
//
// Conventions: every element offset is 64-bit (long long); a "unit" is one element (scalar path) or 16 bytes of
// elements (vector path: W = 4 floats or 8 halves, only when the host has proven 16-byte alignment and the
// divisibility it needs). Activations (x, y, dy, dx) are stored as S; everything else (per-channel tensors, partials,
// coefficients) is float, and all arithmetic is float: a 16-bit value is widened exactly when loaded and a result
// rounded once (to nearest even) when stored. Every kernel runs blocks of at most BN_BLOCK threads
// (__launch_bounds__), which the trees below rely on.
//
// No dead code: a loop whose trip count is small for every geometry the host launches is kept rolled
// (#pragma unroll 1), so that every instruction of the shipped PTX is reachable and executed by the emulator suite
// (the coverage gate of EmulatorBatchNormOpsTest); the streaming loops keep BN_UNROLL loads in flight, and each of
// their slots is live for large blocks.
#pragma once

#include <cuda_fp16.h>
#include <cuda_bf16.h>

// ---- flags passed by the host (gpu/KernelConstants.java mirrors them; KernelConstantsTest compares) -----------
#define BN_HAS_GAMMA     1   // gamma pointer is valid (else gamma = 1)
#define BN_HAS_BETA      2   // beta pointer is valid (else beta = 0)
#define BN_HAS_RUNNING   4   // update running_mean / running_var
#define BN_COEF_CENTER   8   // forward: also write the center into coef row 0, for an apply that cannot read it from
                             // x (in place: y over x); the records merge always writes it
#define BN_STATS_ONLY   16   // statistics op: write center, mean-center, M2 into coef[0..2] and nothing else
#define BN_WANT_DGAMMA  32   // backward: write dgamma
#define BN_WANT_DBETA   64   // backward: write dbeta
#define BN_TRAIN_DX    128   // backward: write the training-mode dx coefficients into coef

// prepare modes (bn_prepare)
#define BN_PREP_EVAL_FORWARD  0  // coef = (running_mean, gamma/sqrt(running_var+eps), beta)
#define BN_PREP_NORMALIZE     1  // coef = (mean, gamma*invstd, beta)
#define BN_PREP_EVAL_BACKWARD 2  // aux = invstd of running_var; coef = (0, gamma*invstd, 0) for dx = dy*gamma*invstd

// persistent kernels' phase (gpu/KernelConstants.java mirrors them): one cooperative launch (partials, grid barrier,
// outputs), or the same work in two ordinary launches of the same grid for a device that cannot hold the grid at once:
// PARTIALS stores the partials (and the centers), OUTPUTS reloads the tile and merges them. The same arithmetic in the
// same order either way, so the same bits whatever the device's size.
#define BN_PERSIST_ONE_LAUNCH 0
#define BN_PERSIST_PARTIALS   1
#define BN_PERSIST_OUTPUTS    2

#define BN_WARP 32
#define BN_UNROLL 4        // independent global loads each thread keeps in flight in the streaming loops
#define BN_BLOCK 256       // threads per block at most (every kernel declares __launch_bounds__(BN_BLOCK))
#define BN_BLOCK_WARPS 8   // BN_BLOCK / BN_WARP
#define BN_MAX_SPLITS (2 * BN_BLOCK)   // channels-first: blocks per channel at most (two partials per merging thread)

// ---- Welford / Chan ---------------------------------------------------------------------------------------------
// Statistics of one channel over the values seen so far. Values are deviations from a per-channel center (the
// channel's first element), so that |mean| >> std loses nothing: x - center is exact when both are within a factor
// of two (Sterbenz), and the accumulators only ever hold numbers of the size of the spread.
struct Welford {
    float n;     // count (exact in float up to 2^24 per partial; larger partials lose nothing that matters for M2)
    float mean;  // mean of the deviations
    float m2;    // sum of squared deviations from mean
};

__device__ __forceinline__ Welford welford_empty() {
    Welford w; w.n = 0.f; w.mean = 0.f; w.m2 = 0.f; return w;
}

// One value, given 1/(n+1) computed by the caller (shared by several channels in the channels-last path).
__device__ __forceinline__ void welford_push(Welford& w, float v, float inv_n1) {
    float d = v - w.mean;
    w.mean = fmaf(d, inv_n1, w.mean);
    w.m2 = fmaf(d, v - w.mean, w.m2);
}

// Chan et al.: merge two disjoint partials, b non-empty. An empty a (n = 0, mean = 0, M2 = 0) gives b exactly:
// wb = 1, mean = fma(b.mean, 1, 0), and the correction d*(d*(0*1)) is 0, so no branch is needed for it.
__device__ __forceinline__ Welford welford_combine(const Welford& a, const Welford& b) {
    Welford r;
    r.n = a.n + b.n;
    const float wb = b.n / r.n;
    const float d = b.mean - a.mean;
    r.mean = fmaf(d, wb, a.mean);
    r.m2 = a.m2 + b.m2 + d * (d * (a.n * wb));
    return r;
}

// Either side may be empty (idle threads in a tree).
__device__ __forceinline__ Welford welford_merge(const Welford& a, const Welford& b) {
    return b.n == 0.f ? a : welford_combine(a, b);
}

// Pairwise sum of W values ((a0 + a1) + (a2 + a3)) + ...: a fixed tree, so results do not depend on the compiler.
template <int W>
__device__ __forceinline__ float tree_sum(const float (&a)[W]) {
    if constexpr (W == 1) {
        return a[0];
    } else {
        float h[W / 2];
        #pragma unroll
        for (int k = 0; k < W / 2; k++) h[k] = a[2 * k] + a[2 * k + 1];
        return tree_sum<W / 2>(h);
    }
}

// W values of the same channel (one 16-byte unit: 4 floats or 8 halves), merged as a group: one division per W values.
template <int W>
__device__ __forceinline__ void welford_push_group(Welford& w, const float (&v)[W]) {
    const float m = tree_sum<W>(v) * (1.0f / W);   // 1/W is a power of two: exact
    float sq[W];
    #pragma unroll
    for (int k = 0; k < W; k++) { const float d = v[k] - m; sq[k] = d * d; }
    Welford g; g.n = (float)W; g.mean = m; g.m2 = tree_sum<W>(sq);
    w = welford_combine(w, g);
}

// ---- reductions -------------------------------------------------------------------------------------------------
// Shuffle trees over the first WIDTH lanes (offsets WIDTH/2, ..., 1); the result is valid in lane 0.
template <int WIDTH>
__device__ __forceinline__ Welford warp_reduce(Welford w) {
    #pragma unroll
    for (int off = WIDTH / 2; off > 0; off >>= 1) {
        Welford o;
        o.n = __shfl_down_sync(0xffffffffu, w.n, off);
        o.mean = __shfl_down_sync(0xffffffffu, w.mean, off);
        o.m2 = __shfl_down_sync(0xffffffffu, w.m2, off);
        w = welford_merge(w, o);
    }
    return w;
}

template <int WIDTH>
__device__ __forceinline__ float2 warp_reduce(float2 s) {
    #pragma unroll
    for (int off = WIDTH / 2; off > 0; off >>= 1) {
        s.x += __shfl_down_sync(0xffffffffu, s.x, off);
        s.y += __shfl_down_sync(0xffffffffu, s.y, off);
    }
    return s;
}

// ---- accumulator operations ---------------------------------------------------------------------------------------
// The reduction skeletons below are templates over the accumulator type T; these overloads are all they need of it:
//   set_empty(T&)          the identity of merge2 (an empty partial)
//   merge2(a, b)           combine two disjoint partials; a before b, and the skeletons fix that order
//   combine2(a, b)         the same when b is known to be non-empty (no test for an empty b)
//   partial_floats<T>, store_partial, load_partial<T>   one partial in the global workspace (see further down)
// Welford: forward statistics (count, mean, M2). float2: backward sums (Σdy, Σdy·(x − mean)).
__device__ __forceinline__ Welford merge2(const Welford& a, const Welford& b) { return welford_merge(a, b); }
__device__ __forceinline__ float2 merge2(const float2& a, const float2& b) { return make_float2(a.x + b.x, a.y + b.y); }
__device__ __forceinline__ Welford combine2(const Welford& a, const Welford& b) { return welford_combine(a, b); }
__device__ __forceinline__ float2 combine2(const float2& a, const float2& b) { return merge2(a, b); }
__device__ __forceinline__ void set_empty(Welford& w) { w = welford_empty(); }
__device__ __forceinline__ void set_empty(float2& s) { s = make_float2(0.f, 0.f); }

// Reduces over a 1-D block (blockDim.x a multiple of 32, at most BN_BLOCK); the result is valid in thread 0.
// The second level merges at most BN_BLOCK_WARPS warp results, so its tree has 3 levels, not 5.
// Begins with a barrier so that it may be called several times in a row on the same shared scratch.
template <typename T>
__device__ __forceinline__ T block_reduce(T v, T* scratch /* BN_BLOCK_WARPS entries */) {
    const int lane = threadIdx.x % BN_WARP, warp = threadIdx.x / BN_WARP, warps = blockDim.x / BN_WARP;
    v = warp_reduce<BN_WARP>(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        T w;
        if (lane < warps) w = scratch[lane]; else set_empty(w);
        v = warp_reduce<BN_BLOCK_WARPS>(w);
    }
    return v;
}

// ---- loads ------------------------------------------------------------------------------------------------------
// Partials written by other blocks of this launch: read through L2 (not a possibly stale L1 line).
__device__ __forceinline__ float load_cg(const float* p) { return __ldcg(p); }

// ---- storage types ----------------------------------------------------------------------------------------------
// to_float widens a stored value exactly; from_float<S> rounds once to nearest even (cvt.rn.f16.f32 for __half; on
// compute_75, integer code for __nv_bfloat16, which newer GPUs run as well since the PTX is compute_75).
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename S> __device__ __forceinline__ S from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

template <typename S> struct bn_is_bf16 { static constexpr bool value = false; };
template <> struct bn_is_bf16<__nv_bfloat16> { static constexpr bool value = true; };

// One unit of a tensor stored as S: Unit (what one load returns), W (elements per unit), load, get(v, k) (element k
// as a float; k is a constant after unrolling, so the selection costs nothing) and store (W floats, rounded to S,
// with one store).
template <typename S, bool VEC> struct bn_io;

template <> struct bn_io<float, false> {
    using Unit = float;
    static constexpr int W = 1;
    static __device__ __forceinline__ Unit load(const float* p) { return *p; }
    static __device__ __forceinline__ float get(Unit v, int) { return v; }
    static __device__ __forceinline__ void store(float* p, const float (&o)[W]) { *p = o[0]; }
};

template <> struct bn_io<float, true> {
    using Unit = float4;
    static constexpr int W = 4;
    static __device__ __forceinline__ Unit load(const float* p) { return *reinterpret_cast<const float4*>(p); }
    static __device__ __forceinline__ float get(const Unit& v, int k) {
        return k == 0 ? v.x : k == 1 ? v.y : k == 2 ? v.z : v.w;
    }
    static __device__ __forceinline__ void store(float* p, const float (&o)[W]) {
        *reinterpret_cast<float4*>(p) = make_float4(o[0], o[1], o[2], o[3]);
    }
};

// 16-bit, one element: ld/st.global.u16 and one conversion.
template <typename H> struct bn_io<H, false> {
    using Unit = H;
    static constexpr int W = 1;
    static __device__ __forceinline__ Unit load(const H* p) { return *p; }
    static __device__ __forceinline__ float get(Unit v, int) { return to_float(v); }
    static __device__ __forceinline__ void store(H* p, const float (&o)[W]) { *p = from_float<H>(o[0]); }
};

// 16-bit, 8 elements in 16 bytes: one ld/st.global.v4.u32; the halves are unpacked and packed in registers.
template <typename H> struct bn_io<H, true> {
    using Unit = uint4;
    static constexpr int W = 8;
    static __device__ __forceinline__ Unit load(const H* p) { return *reinterpret_cast<const uint4*>(p); }
    static __device__ __forceinline__ float get(const Unit& v, int k) {
        return to_float(reinterpret_cast<const H*>(&v)[k]);
    }
    static __device__ __forceinline__ void store(H* p, const float (&o)[W]) {
        uint4 u;
        H* h = reinterpret_cast<H*>(&u);
        #pragma unroll
        for (int k = 0; k < W; k++) h[k] = from_float<H>(o[k]);
        *reinterpret_cast<uint4*>(p) = u;
    }
};

// ---- last-arriving block ----------------------------------------------------------------------------------------
// Called by every thread of the block after the block's partial has been stored (by any of its threads). Returns
// true in every thread of exactly one block of the group: the last to arrive. That block then reads every partial
// (all stores are visible: each block fenced before its atomic) and resets the counter, so the workspace is ready
// for the next launch without a memset. The merge order afterwards is fixed by partial index, never by arrival.
__device__ __forceinline__ bool last_block_arrives(unsigned* counter, unsigned group_size, unsigned* flag_sh) {
    __threadfence();     // make this thread's partial stores visible device-wide before the block is counted
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0) {
        unsigned ticket = atomicAdd(counter, 1u);
        bool last = ticket == group_size - 1u;
        if (last) *counter = 0u;  // every other block of the group has already incremented it
        *flag_sh = last ? 1u : 0u;
    }
    __syncthreads();
    bool last = *flag_sh != 0u;
    if (last) __threadfence();
    return last;
}

// ---- grid-wide barrier (cooperative launches only) ---------------------------------------------------------------
// Every block of a cooperative grid is resident at once (the host launches with cuLaunchCooperativeKernel, whose grid
// it sizes from the kernel's occupancy), so blocks may wait for each other. bar[0] counts arrivals and bar[1]
// departures; the last block to leave resets both, so the two words are zero again after every launch (the host
// declares them self-resetting). Ordering, as last_block_arrives: every thread fences its own stores, the block
// barrier, then thread 0's atomic arrival publishes them; thread 0 spins on a volatile load (gpu scope, not served
// from L1) and fences after it (acquire); the closing block barrier hands that on to every thread, whose loads of
// other blocks' data must still bypass L1 (load_cg). A non-cooperative launch of a kernel that waits here hangs on a
// GPU once its grid exceeds the resident blocks; the emulator reports it (a block spinning past its budget).
__device__ __forceinline__ void grid_barrier(unsigned* bar, unsigned blocks) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0) {
        atomicAdd(bar, 1u);
        while (*(volatile unsigned*)bar < blocks) {
        }
        __threadfence();
        // The last block to leave: every block has passed the spin above, so the words can be reset.
        if (atomicAdd(bar + 1, 1u) == blocks - 1u) {
            bar[0] = 0u;
            bar[1] = 0u;
        }
    }
    __syncthreads();
}

// After tree_over_rows: sh[i] holds column i. With inner > 1 a channel spans `inner` consecutive columns: thread j
// merges channel j's columns in order into chan_sh[j] (the host keeps cpb <= bx * by). Returns where the per-channel
// values are (sh itself when inner == 1: the columns are the channels). Shared by the two-pass and persistent rows
// reductions, so both merge a channel's columns in the same order.
template <typename Acc>
__device__ __forceinline__ const Acc* merge_columns_into_channels(const Acc* sh, Acc* chan_sh, int inner, int cpb,
                                                                   int tid) {
    const Acc* chans = sh;
    if (inner > 1) {
        __syncthreads();
        if (tid < cpb) {
            Acc a = sh[tid * inner];
            #pragma unroll 1
            for (int k = 1; k < inner; k++) a = combine2(a, sh[tid * inner + k]);
            chan_sh[tid] = a;
        }
        chans = chan_sh;
    }
    return chans;
}

// ---- channels-last row-group tree -------------------------------------------------------------------------------
// Block (bx, by), by a power of two, bx * by <= 256. Each thread holds W per-channel values for channel unit tx;
// merges them over ty with a fixed tree in shared memory; the result is valid in the threads with ty == 0.
// `sh` must hold blockDim.x * blockDim.y * W entries. Starts with a barrier so that `sh` may be reused.
template <typename T, int W>
__device__ __forceinline__ void tree_over_rows(T (&v)[W], T* sh) {
    const int bx = blockDim.x, by = blockDim.y, tid = threadIdx.y * bx + threadIdx.x;
    __syncthreads();
    #pragma unroll
    for (int k = 0; k < W; k++) sh[tid * W + k] = v[k];
    for (int half = by / 2; half > 0; half >>= 1) {
        __syncthreads();
        if ((int)threadIdx.y < half) {
            const int o = tid + half * bx;
            #pragma unroll
            for (int k = 0; k < W; k++) {
                v[k] = merge2(v[k], sh[o * W + k]);
                sh[tid * W + k] = v[k];
            }
        }
    }
}

// ---- partials in the global workspace ---------------------------------------------------------------------------
template <typename T> struct partial_floats;   // floats per partial
template <> struct partial_floats<Welford> { static constexpr int value = 3; };
template <> struct partial_floats<float2> { static constexpr int value = 2; };

__device__ __forceinline__ void store_partial(float* p, const Welford& w) { p[0] = w.n; p[1] = w.mean; p[2] = w.m2; }
__device__ __forceinline__ void store_partial(float* p, const float2& s) { p[0] = s.x; p[1] = s.y; }

template <typename T> __device__ __forceinline__ T load_partial(const float* p);
template <> __device__ __forceinline__ Welford load_partial<Welford>(const float* p) {
    Welford w; w.n = load_cg(p); w.mean = load_cg(p + 1); w.m2 = load_cg(p + 2); return w;
}
template <> __device__ __forceinline__ float2 load_partial<float2>(const float* p) {
    return make_float2(load_cg(p), load_cg(p + 1));
}

// ---- channel reductions: the structure shared by forward statistics and backward sums ---------------------------
// Both reduce every value of a channel to one accumulator, relative to a per-channel "center" (the forward center,
// the backward mean; read from a tensor of type CT, the storage type or float), and hand it to a finishing step, the
// only place that writes outputs. What differs is a small functor type Op (see ForwardStatsOp in batchnorm_forward.cu,
// BackwardSumsOp in batchnorm_backward.cu):
//   Op::Acc                                accumulator (Welford or float2; the overloads above)
//   Op::W                                  elements per unit: 16 bytes on the vector path (4 floats, 8 halves),
//                                          else 1 (bn_io<S, VEC>::W)
//   Op::Item                               what one unit loads (x, or x and dy)
//   Item op.load(long long e)              the unit at element offset e (64-bit)
//   void op.push(Acc&, Item, float center) channels-first: the W values of one unit belong to one channel
//   void op.push_row(Acc (&)[W], Item, const float (&center)[W])   rows: value k is column k's
//   void op.settle(Acc (&)[W])             rows: anything push_row kept outside the accumulators
//   Op::CENTER_IS_ROW0, op.element(Item, k)   rows: whether the centers are row 0 of the tensor read (then blocks of
//                                          row 0 stage them from their own first loads) and element k of a unit
//   void op.finish(int c, Acc, float center)   channel c's merged accumulator -> outputs
// The skeletons fix every order: each thread pushes its units in index order, trees have a fixed shape, and the
// last-arriving block merges the partials in index order. The host derives the whole geometry (splits, chunk, block
// shape) from the tensor's shape alone, never from the GPU, so results are bitwise identical for any block schedule
// and on every GPU model.

// Channels-first. 1-D grid of C*splits blocks of BN_BLOCK threads: block b reduces units [s*chunk, (s+1)*chunk) of
// channel c = b / splits (s = b % splits), the channel's M values being N runs of `inner` floats at stride C*inner.
// center = center_src[c * center_stride], loaded once per block. Partials are laid out [c][s][partial_floats];
// counters[c] counts arrivals.
template <typename Op, typename CT>
__device__ __forceinline__ void channel_reduce_cf(Op op, const CT* __restrict__ center_src, long long center_stride,
                                                  int C, long long N, long long inner, int splits, long long chunk,
                                                  float* partials, unsigned* counters) {
    using Acc = typename Op::Acc;
    constexpr int W = Op::W, F = partial_floats<Acc>::value;
    __shared__ Acc scratch[BN_BLOCK_WARPS];
    __shared__ float center_sh;
    __shared__ unsigned last_sh;
    const int c = (int)(blockIdx.x / (unsigned)splits);   // 32-bit: gridDim.x < 2^31
    const int s = (int)(blockIdx.x - (unsigned)c * (unsigned)splits);
    if (threadIdx.x == 0) center_sh = to_float(center_src[(long long)c * center_stride]);
    __syncthreads();
    const float center = center_sh;

    const long long innerU = inner / W;        // units per run
    const long long total = N * innerU;        // units per channel
    const long long lo = s * chunk;
    const long long hi = min(lo + chunk, total);
    const unsigned step = blockDim.x;
    Acc acc;
    set_empty(acc);
    long long j = lo + threadIdx.x;
    if (j < hi) {
        // Walk (n, i) incrementally: one division per thread, none per element. A step of blockDim.x units moves
        // q runs and r units (q = 0 when a run is longer than a step).
        long long n = j / innerU, i = j - n * innerU;
        const unsigned q = innerU > step ? 0u : step / (unsigned)innerU;
        const long long r = step - (long long)q * innerU;
        // BN_UNROLL independent loads in flight per thread, then the pushes in the same order as one at a time.
        // Slot u is live when the block has more than u * blockDim.x units (chunk > 3 * 256 for every slot).
        for (; j < hi; j += BN_UNROLL * step) {
            typename Op::Item v[BN_UNROLL];
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {   // slot 0 is live: j < hi
                if (u == 0 || j + u * step < hi) v[u] = op.load((((long long)n * C + c) * innerU + i) * W);
                i += r; n += q;
                if (i >= innerU) { i -= innerU; n += 1; }
            }
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {
                if (u == 0 || j + u * step < hi) op.push(acc, v[u], center);
            }
        }
    }
    acc = block_reduce(acc, scratch);
    if (splits > 1) {
        if (threadIdx.x == 0) store_partial(partials + (long long)blockIdx.x * F, acc);
        if (!last_block_arrives(counters + c, (unsigned)splits, &last_sh)) return;
        // Fixed order: thread t merges partials t and t + blockDim (splits <= BN_MAX_SPLITS = 2 * blockDim, which
        // the host guarantees; a second partial only for C <= 2), then the block tree.
        const float* chan = partials + (long long)c * splits * F;
        const int k = threadIdx.x;
        Acc m;
        if (k < splits) m = load_partial<Acc>(chan + F * k); else set_empty(m);
        if (k + (int)step < splits) m = combine2(m, load_partial<Acc>(chan + F * (k + step)));
        acc = block_reduce(m, scratch);
    }
    if (threadIdx.x == 0) op.finish(c, acc, center);
}

// Rows view ([rows][L], L = C * inner floats, column k in channel k / inner). Blocks (bx, by), by a power of two,
// bx * by <= BN_BLOCK; the bx * W columns of a block hold whole channels (the host makes bx * W a multiple of inner,
// and at most BN_BLOCK channels per block); grid (ceil(L / (W * bx)), splits). Thread (tx, ty) owns column unit
// gx*bx + tx and visits rows gy*chunk + ty, + by, ... below (gy+1)*chunk; the block merges its row groups in a
// shared-memory tree, then each channel's `inner` columns in column order. The center of channel c is
// center_src[c * center_stride], staged once per block. Partials are laid out [gy][C][partial_floats];
// counters[gx] counts the arrivals of column block gx.
template <typename Op, typename CT>
__device__ __forceinline__ void channel_reduce_cl(Op op, const CT* __restrict__ center_src, long long center_stride,
                                                  long long rows, int C, int inner, long long chunk, float* partials,
                                                  unsigned* counters) {
    using Acc = typename Op::Acc;
    constexpr int W = Op::W, F = partial_floats<Acc>::value;
    __shared__ Acc sh[BN_BLOCK * W];
    __shared__ Acc chan_sh[BN_BLOCK];
    __shared__ float center_sh[BN_BLOCK];   // per channel of the block
    __shared__ unsigned last_sh;
    const int bx = blockDim.x, by = blockDim.y, tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * bx + tx;
    const int L = C * inner;                 // the host keeps C * inner < 2^31 on this path
    const int cu = blockIdx.x * bx + tx;
    const bool active = cu < L / W;
    const int colbase = blockIdx.x * bx * W;  // first column of this block; local column i = tx*W + k
    const int cbase = colbase / inner;        // first channel of this block
    const int cpb = bx * W / inner;           // channels per block (the last block may have fewer below C)
    const long long lo = (long long)blockIdx.y * chunk;
    const long long hi = min(lo + chunk, rows);
    // Centers. When they are row 0 of the tensor itself (Op::CENTER_IS_ROW0: the forward statistics), the blocks of
    // row 0 take them from the first row their threads ty = 0 load anyway (the unit holding a channel's first column
    // stages it), so that row is not read twice; other blocks, and other Ops, read them: consecutive threads load
    // consecutive channels' centers, once per block (thread j: channel j; the host keeps cpb <= bx * by).
    typename Op::Item first;
    bool row0 = false;
    if constexpr (Op::CENTER_IS_ROW0) {
        row0 = blockIdx.y == 0;
        if (row0 && ty == 0 && active) {
            first = op.load((long long)cu * W);
            #pragma unroll
            for (int k = 0; k < W; k++) {
                if ((tx * W + k) % inner == 0) center_sh[(tx * W + k) / inner] = op.element(first, k);
            }
        }
    }
    if (!row0 && tid < cpb) {
        center_sh[tid] = cbase + tid < C ? to_float(center_src[(long long)(cbase + tid) * center_stride]) : 0.f;
    }
    __syncthreads();
    float center[W];
    Acc acc[W];
    #pragma unroll
    for (int k = 0; k < W; k++) { center[k] = active ? center_sh[(tx * W + k) / inner] : 0.f; set_empty(acc[k]); }
    if (active) {
        long long r0 = lo + ty;
        if constexpr (Op::CENTER_IS_ROW0) {
            if (row0 && ty == 0) {   // row 0 is loaded: push it, then go on from the thread's next row
                op.push_row(acc, first, center);
                r0 += by;
            }
        }
        // Slot u is live when the block has more than u * by rows.
        #pragma unroll 1
        for (long long r = r0; r < hi; r += BN_UNROLL * by) {
            typename Op::Item v[BN_UNROLL];
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {   // loads first: BN_UNROLL rows in flight (slot 0: r < hi)
                if (u == 0 || r + u * by < hi) v[u] = op.load((r + u * by) * L + (long long)cu * W);
            }
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {
                if (u == 0 || r + u * by < hi) op.push_row(acc, v[u], center);
            }
        }
    }
    op.settle(acc);
    tree_over_rows<Acc, W>(acc, sh);
    // sh[i] holds column i; merge each channel's columns in order (inner = 1: the columns are the channels).
    // Thread j handles channel j of the block (the host keeps cpb <= bx * by).
    const Acc* chans = merge_columns_into_channels(sh, chan_sh, inner, cpb, tid);
    if (gridDim.y > 1) {
        __syncthreads();
        if (tid < cpb && cbase + tid < C) {
            store_partial(partials + ((long long)blockIdx.y * C + cbase + tid) * F, chans[tid]);
        }
        if (!last_block_arrives(counters + blockIdx.x, gridDim.y, &last_sh)) return;
        // Fixed order: thread (tx, ty) merges, for channels j = tx*W + k of the block, partials ty, ty + by, ... in
        // sequence (starting from partial ty itself), then the same tree over ty.
        #pragma unroll
        for (int k = 0; k < W; k++) {
            const int j = tx * W + k;
            const bool mine = j < cpb && cbase + j < C && ty < (int)gridDim.y;
            if (mine) acc[k] = load_partial<Acc>(partials + ((long long)ty * C + cbase + j) * F); else set_empty(acc[k]);
        }
        #pragma unroll 1
        for (int g = ty + by; g < (int)gridDim.y; g += by) {
            #pragma unroll
            for (int k = 0; k < W; k++) {
                const int j = tx * W + k;
                if (j < cpb && cbase + j < C) {
                    acc[k] = combine2(acc[k], load_partial<Acc>(partials + ((long long)g * C + cbase + j) * F));
                }
            }
        }
        tree_over_rows<Acc, W>(acc, sh);
        chans = sh;
    }
    // Consecutive threads finish consecutive channels, so the per-channel loads and stores are coalesced.
    __syncthreads();
    if (tid < cpb && cbase + tid < C) op.finish(cbase + tid, chans[tid], center_sh[tid]);
}

// ---- per-channel elementwise passes: the structure shared by bn_apply_* and bn_dx_* ------------------------------
// out = f(unit, coefficients of its channel), K coefficients per channel, op.coefficient(coef, C, j, c) the j-th of
// channel c (usually coef[j*C + c], K rows of C floats; an Op may take one from elsewhere, e.g. the saved mean).
// The functor type Op (ApplyOp in batchnorm_forward.cu, DxOp in batchnorm_backward.cu) supplies:
//   Op::K, Op::W, Op::Item, Item op.load(long long e)   as for the reductions
//   Op::IO                                     bn_io<S, VEC> of the output: store rounds the W values once to S
//   float op.value(const Item& v, int k, const float (&q)[K])   output value k of unit v, q its channel's coefficients
//   S* op.out                                  the output tensor (may alias an input element-wise: every unit is
//                                              read before it is written)
template <typename Op>
__device__ __forceinline__ void store_values(const Op& op, long long e, const typename Op::Item& v,
                                             const float (&q)[Op::W][Op::K]) {
    float o[Op::W];
    #pragma unroll
    for (int k = 0; k < Op::W; k++) o[k] = op.value(v, k, q[k]);
    Op::IO::store(op.out + e, o);
}

// Channels-first. Unit u = (plane, piece): plane = n*C + c (a run of `inner` floats), piece covers units
// [piece*chunk, min((piece+1)*chunk, innerU)) of that run; chunk is a multiple of 32 (at most 256) chosen by the host,
// pieces = ceil(innerU / chunk), units = N*C*pieces (the host keeps units + the grid's warps below 2^32, so unit
// indices are 32-bit: two 32-bit divisions per unit). One warp per unit, grid-stride over units, so each warp loads
// the K coefficients once per `chunk` units, not per element: lane 0 loads them and broadcasts them with shuffles.
template <typename Op>
__device__ __forceinline__ void channel_map_cf(const Op& op, int C, unsigned units, unsigned pieces, long long inner,
                                               int chunk, const float* __restrict__ coef) {
    constexpr int W = Op::W, K = Op::K;
    const int lane = threadIdx.x % BN_WARP;
    const unsigned warps = gridDim.x * (blockDim.x / BN_WARP);
    const long long innerU = inner / W;
    #pragma unroll 1
    for (unsigned u = blockIdx.x * (blockDim.x / BN_WARP) + threadIdx.x / BN_WARP; u < units; u += warps) {
        const unsigned plane = u / pieces, piece = u - plane * pieces;
        const int c = (int)(plane % (unsigned)C);
        float qc[K];
        #pragma unroll
        for (int j = 0; j < K; j++) qc[j] = 0.f;
        if (lane == 0) {
            #pragma unroll
            for (int j = 0; j < K; j++) qc[j] = op.coefficient(coef, C, j, c);
        }
        float q[W][K];
        #pragma unroll
        for (int j = 0; j < K; j++) {
            const float v = __shfl_sync(0xffffffffu, qc[j], 0);
            #pragma unroll
            for (int k = 0; k < W; k++) q[k][j] = v;   // one channel: the W floats of a unit share the coefficients
        }
        const long long lo = (long long)piece * chunk, hi = min(lo + chunk, innerU);
        const long long base = (long long)plane * innerU;
        // At most chunk / 128 <= 2 passes; slot u is live when a piece has more than 32 * u units.
        #pragma unroll 1
        for (long long i0 = lo + lane; i0 < hi; i0 += BN_UNROLL * BN_WARP) {
            typename Op::Item v[BN_UNROLL];
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {   // all loads before any store (out may alias an input)
                const long long i = i0 + u * BN_WARP;
                if (u == 0 || i < hi) v[u] = op.load((base + i) * W);
            }
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {
                const long long i = i0 + u * BN_WARP;
                if (u == 0 || i < hi) store_values(op, (base + i) * W, v[u], q);
            }
        }
    }
}

// Rows view, as channel_reduce_cl: grid (ceil(L / (W * bx)), gy), blocks (bx, by); thread (tx, ty) owns column unit
// gx*bx + tx and visits rows gy*by + ty, + gridDim.y*by, ... The block stages the coefficients of its channels in
// shared memory once, consecutive threads on consecutive channels (coalesced).
template <typename Op>
__device__ __forceinline__ void channel_map_cl(const Op& op, long long rows, int C, int inner,
                                               const float* __restrict__ coef) {
    constexpr int W = Op::W, K = Op::K;
    __shared__ float sh[K][BN_BLOCK];   // per channel of the block
    const int bx = blockDim.x, tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * bx + tx;
    const int L = C * inner;
    const int cu = blockIdx.x * bx + tx;
    const bool active = cu < L / W;
    const int cbase = blockIdx.x * bx * W / inner;   // first channel of the block
    const int cpb = bx * W / inner;                  // channels per block (at most bx * by: one thread each)
    if (tid < cpb && cbase + tid < C) {
        #pragma unroll
        for (int j = 0; j < K; j++) sh[j][tid] = op.coefficient(coef, C, j, cbase + tid);
    }
    __syncthreads();
    if (!active) return;
    float q[W][K];
    #pragma unroll
    for (int k = 0; k < W; k++) {
        #pragma unroll
        for (int j = 0; j < K; j++) q[k][j] = sh[j][(tx * W + k) / inner];
    }
    const long long step = (long long)gridDim.y * blockDim.y;
    // Slot u is live when a thread has more than u rows in one pass (rows > u * gridDim.y * by).
    #pragma unroll 1
    for (long long r0 = (long long)blockIdx.y * blockDim.y + ty; r0 < rows; r0 += BN_UNROLL * step) {
        typename Op::Item v[BN_UNROLL];
        #pragma unroll
        for (int u = 0; u < BN_UNROLL; u++) {   // all loads before any store (out may alias an input)
            const long long r = r0 + u * step;
            if (u == 0 || r < rows) v[u] = op.load(r * L + (long long)cu * W);
        }
        #pragma unroll
        for (int u = 0; u < BN_UNROLL; u++) {
            const long long r = r0 + u * step;
            if (u == 0 || r < rows) store_values(op, r * L + (long long)cu * W, v[u], q);
        }
    }
}

// ---- persistent single pass: the structure shared by bn_persist_fwd_* and bn_persist_bwd_* -----------------------
// A cooperative launch (every block resident at once, the grid sized by the host from the kernel's occupancy): each
// block loads its tile into registers (Op::T units per thread), reduces it per channel, exchanges per-channel
// partials with the other blocks of its channels through global memory and a grid_barrier, merges them in index order
// (every block of a channel merges the same partials in the same order: the same bits, whatever the schedule), turns
// them into coefficients and writes its outputs from the registers. Traffic: the tensors are read once (x; x and dy)
// and written once (y; dx), plus partials and per-channel vectors. Blocks of BN_BLOCK threads.
// Beyond the reduction skeletons' Op (Acc, W, Item, push, push_row, settle), the functor supplies:
//   Op::T, Op::K                          units per thread; coefficients per channel
//   float op.center(int c)                channel c's center (forward: its first element; backward: the saved mean)
//   void op.load(Item&, long long e, bool valid)   the unit at element e when valid; all lanes call it together
//   void op.finish(int c, bool writer, const Acc&, float center, float* q)   the merged accumulator -> q[K]; the
//                                         writer (split 0 of the channel) also writes the per-channel outputs
//   void op.store(long long e, const Item&, const float (&q)[W][K], bool valid)   the outputs of a unit; all lanes
//   long long op.elements                 elements of the tensor (the mask's padding)

// Channels-first: 1-D grid of C*splits blocks; block b holds units [s*chunk, (s+1)*chunk) of channel c = b / splits,
// thread t units s*chunk + t + k*BN_BLOCK (k < T): the host makes chunk <= T*BN_BLOCK and splits <= BN_BLOCK.
// Partials [c][s]; splits == 1 for every channel needs neither partials nor the barrier (a block holds its channels).
template <typename Op>
__device__ __forceinline__ void persist_cf(Op& op, int C, long long N, long long inner, int splits, long long chunk,
                                           float* partials, unsigned* bar, int phase) {
    using Acc = typename Op::Acc;
    constexpr int W = Op::W, T = Op::T, K = Op::K, F = partial_floats<Acc>::value;
    __shared__ Acc scratch[BN_BLOCK_WARPS];
    __shared__ float q_sh[K];
    const int c = (int)(blockIdx.x / (unsigned)splits);
    const int s = (int)(blockIdx.x - (unsigned)c * (unsigned)splits);
    if (threadIdx.x == 0) q_sh[0] = phase == BN_PERSIST_OUTPUTS ? op.kept_center(c) : op.center(c);
    __syncthreads();
    const float center = q_sh[0];
    const long long innerU = inner / W;
    const long long total = N * innerU;
    const long long lo = s * chunk;
    const long long hi = min(lo + chunk, total);
    // Walk (n, i) incrementally (one division per thread), as channel_reduce_cf: a step of BN_BLOCK units moves q
    // runs and r units.
    const long long j0 = lo + threadIdx.x;
    const long long n0 = j0 / innerU, i0 = j0 - n0 * innerU;
    const unsigned q = innerU > BN_BLOCK ? 0u : BN_BLOCK / (unsigned)innerU;
    const long long r = BN_BLOCK - (long long)q * innerU;
    typename Op::Item v[T];
    Acc acc;
    set_empty(acc);
    {
        long long n = n0, i = i0;
        #pragma unroll
        for (int k = 0; k < T; k++) {
            const bool valid = j0 + k * BN_BLOCK < hi;
            op.load(v[k], (((long long)n * C + c) * innerU + i) * W, valid);
            if (valid) op.push(acc, v[k], center);
            i += r; n += q;
            if (i >= innerU) { i -= innerU; n += 1; }
        }
    }
    acc = block_reduce(acc, scratch);
    if (splits > 1) {
        if (phase != BN_PERSIST_OUTPUTS && threadIdx.x == 0) store_partial(partials + (long long)blockIdx.x * F, acc);
        if (phase == BN_PERSIST_PARTIALS) {   // the outputs launch will read the center here (y may be over x by then)
            if (s == 0 && threadIdx.x == 0) op.keep_center(c, center);
            return;
        }
        if (phase == BN_PERSIST_ONE_LAUNCH) grid_barrier(bar, gridDim.x);
        // Fixed order: thread 0 (which finishes the channel) merges partials 0, 1, ..., splits - 1 in sequence;
        // every block of the channel does the same (splits <= 256: a short dependent chain).
        if (threadIdx.x == 0) {
            const float* chan = partials + (long long)c * splits * F;
            acc = load_partial<Acc>(chan);
            #pragma unroll 1
            for (int t = 1; t < splits; t++) acc = combine2(acc, load_partial<Acc>(chan + (long long)F * t));
        }
    }
    __syncthreads();   // every thread has read q_sh[0]
    if (threadIdx.x == 0) op.finish(c, s == 0, acc, center, q_sh);
    __syncthreads();
    float qq[W][K];
    #pragma unroll
    for (int j = 0; j < K; j++) {
        const float x = q_sh[j];
        #pragma unroll
        for (int k = 0; k < W; k++) qq[k][j] = x;
    }
    long long n = n0, i = i0;
    #pragma unroll
    for (int k = 0; k < T; k++) {
        const bool valid = j0 + k * BN_BLOCK < hi;
        op.store((((long long)n * C + c) * innerU + i) * W, v[k], qq, valid);
        i += r; n += q;
        if (i >= innerU) { i -= innerU; n += 1; }
    }
}

// Rows view ([rows][L], L = C*inner, column k in channel k / inner), blocks (bx, by) as channel_reduce_cl (bx*W
// columns hold whole channels, by a power of two, bx*by = BN_BLOCK); grid (ceil(L / (W*bx)), splits). Thread (tx, ty)
// owns column unit gx*bx + tx and rows gy*chunk + ty + k*by (k < T): the host makes chunk <= T*by. The block's row
// groups merge in tree_over_rows, each channel's columns in column order; partials [gy][C].
template <typename Op>
__device__ __forceinline__ void persist_cl(Op& op, long long rows, int C, int inner, long long chunk, float* partials,
                                           unsigned* bar, int phase) {
    using Acc = typename Op::Acc;
    constexpr int W = Op::W, T = Op::T, K = Op::K, F = partial_floats<Acc>::value;
    __shared__ Acc sh[BN_BLOCK * W];
    __shared__ Acc chan_sh[BN_BLOCK];
    __shared__ float center_sh[BN_BLOCK];
    __shared__ float q_sh[K][BN_BLOCK];
    const int bx = blockDim.x, by = blockDim.y, tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * bx + tx;
    const int L = C * inner;
    const int cu = blockIdx.x * bx + tx;
    const bool active = cu < L / W;
    const int cbase = blockIdx.x * bx * W / inner;   // first channel of the block
    const int cpb = bx * W / inner;                  // channels per block (one thread each: cpb <= bx * by)
    const long long lo = (long long)blockIdx.y * chunk;
    const long long hi = min(lo + chunk, rows);
    if (tid < cpb) {
        center_sh[tid] = cbase + tid >= C ? 0.f
                : phase == BN_PERSIST_OUTPUTS ? op.kept_center(cbase + tid) : op.center(cbase + tid);
    }
    __syncthreads();
    float center[W];
    Acc acc[W];
    #pragma unroll
    for (int k = 0; k < W; k++) { center[k] = active ? center_sh[(tx * W + k) / inner] : 0.f; set_empty(acc[k]); }
    typename Op::Item v[T];
    #pragma unroll
    for (int k = 0; k < T; k++) {
        const long long rr = lo + ty + (long long)k * by;
        const bool valid = active && rr < hi;
        op.load(v[k], rr * L + (long long)cu * W, valid);
        if (valid) op.push_row(acc, v[k], center);
    }
    op.settle(acc);
    tree_over_rows<Acc, W>(acc, sh);
    const Acc* chans = merge_columns_into_channels(sh, chan_sh, inner, cpb, tid);
    if (gridDim.y > 1) {
        __syncthreads();
        if (phase != BN_PERSIST_OUTPUTS && tid < cpb && cbase + tid < C) {
            store_partial(partials + ((long long)blockIdx.y * C + cbase + tid) * F, chans[tid]);
        }
        if (phase == BN_PERSIST_PARTIALS) {   // the outputs launch will read the centers here
            if (blockIdx.y == 0 && tid < cpb && cbase + tid < C) op.keep_center(cbase + tid, center_sh[tid]);
            return;
        }
        if (phase == BN_PERSIST_ONE_LAUNCH) grid_barrier(bar, gridDim.x * gridDim.y);
        // Fixed order: thread j (which finishes channel j of the block) merges row splits 0, 1, ..., gridDim.y - 1 of
        // it in sequence; every block of the column does the same (consecutive threads: consecutive channels).
        if (tid < cpb && cbase + tid < C) {
            const float* p = partials + (long long)(cbase + tid) * F;
            Acc a = load_partial<Acc>(p);
            #pragma unroll 1
            for (unsigned g = 1; g < gridDim.y; g++) a = combine2(a, load_partial<Acc>(p + (long long)g * C * F));
            chan_sh[tid] = a;   // this thread alone read chans[tid] (== chan_sh[tid] when inner > 1)
        }
        chans = chan_sh;
    }
    __syncthreads();
    if (tid < cpb && cbase + tid < C) {
        float qc[K];
        op.finish(cbase + tid, blockIdx.y == 0, chans[tid], center_sh[tid], qc);
        #pragma unroll
        for (int j = 0; j < K; j++) q_sh[j][tid] = qc[j];
    }
    __syncthreads();
    float qq[W][K];
    #pragma unroll
    for (int k = 0; k < W; k++) {
        #pragma unroll
        for (int j = 0; j < K; j++) qq[k][j] = active ? q_sh[j][(tx * W + k) / inner] : 0.f;
    }
    #pragma unroll
    for (int k = 0; k < T; k++) {
        const long long rr = lo + ty + (long long)k * by;
        op.store(rr * L + (long long)cu * W, v[k], qq, active && rr < hi);
    }
}
