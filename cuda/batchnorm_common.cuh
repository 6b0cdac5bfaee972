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
//   flags and coefficient slots shared with the host (gpu/KernelConstants.java mirrors them)
//
// Conventions: every element offset is 64-bit (long long); a "unit" is one float (scalar path) or one float4
// (vector path, only when the host has proven 16-byte alignment and the divisibility it needs).
#pragma once

// ---- flags passed by the host (keep in sync with gpu/KernelConstants.java) --------------------------------------
#define BN_HAS_GAMMA     1   // gamma pointer is valid (else gamma = 1)
#define BN_HAS_BETA      2   // beta pointer is valid (else beta = 0)
#define BN_HAS_RUNNING   4   // update running_mean / running_var
#define BN_WRITE_SAVED   8   // write save_mean / save_invstd
#define BN_STATS_ONLY   16   // statistics op: write center, mean-center, M2 into coef[0..2] and nothing else
#define BN_WANT_DGAMMA  32   // backward: write dgamma
#define BN_WANT_DBETA   64   // backward: write dbeta
#define BN_TRAIN_DX    128   // backward: write the training-mode dx coefficients into coef

// prepare modes (bn_prepare)
#define BN_PREP_EVAL_FORWARD  0  // coef = (running_mean, gamma/sqrt(running_var+eps), beta)
#define BN_PREP_NORMALIZE     1  // coef = (mean, gamma*invstd, beta)
#define BN_PREP_EVAL_BACKWARD 2  // aux = invstd of running_var; coef = (0, gamma*invstd, 0) for dx = dy*gamma*invstd

#define BN_WARP 32
#define BN_UNROLL 4      // independent global loads each thread keeps in flight in the streaming loops
#define BN_MAX_WARPS 32  // 1024 threads per block at most

// ---- Welford / Chan ---------------------------------------------------------------------------------------------
// Statistics of one channel over the values seen so far. Values are deviations from a per-channel center (the
// channel's first element), so that |mean| >> std loses nothing: x - center is exact when both are within a factor
// of two (Sterbenz), and the accumulators only ever hold numbers of the size of the deviations.
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

// Chan et al.: merge two disjoint partials. Empty partials merge exactly (returning the other side unchanged),
// which keeps trees with idle threads deterministic.
__device__ __forceinline__ Welford welford_merge(const Welford& a, const Welford& b) {
    if (b.n == 0.f) return a;
    if (a.n == 0.f) return b;
    Welford r;
    r.n = a.n + b.n;
    float wb = b.n / r.n;
    float d = b.mean - a.mean;
    r.mean = fmaf(d, wb, a.mean);
    r.m2 = a.m2 + b.m2 + d * d * a.n * wb;
    return r;
}

// Four values of the same channel (one float4), merged as a group: one division per four values.
__device__ __forceinline__ void welford_push4(Welford& w, float4 v) {
    float s = (v.x + v.y) + (v.z + v.w);
    float m4 = s * 0.25f;
    float a = v.x - m4, b = v.y - m4, c = v.z - m4, e = v.w - m4;
    Welford g; g.n = 4.f; g.mean = m4; g.m2 = (a * a + b * b) + (c * c + e * e);
    w = welford_merge(w, g);
}

// ---- reductions -------------------------------------------------------------------------------------------------
__device__ __forceinline__ Welford warp_reduce(Welford w) {
    #pragma unroll
    for (int off = BN_WARP / 2; off > 0; off >>= 1) {
        Welford o;
        o.n = __shfl_down_sync(0xffffffffu, w.n, off);
        o.mean = __shfl_down_sync(0xffffffffu, w.mean, off);
        o.m2 = __shfl_down_sync(0xffffffffu, w.m2, off);
        w = welford_merge(w, o);
    }
    return w;
}

__device__ __forceinline__ float2 warp_reduce(float2 s) {
    #pragma unroll
    for (int off = BN_WARP / 2; off > 0; off >>= 1) {
        s.x += __shfl_down_sync(0xffffffffu, s.x, off);
        s.y += __shfl_down_sync(0xffffffffu, s.y, off);
    }
    return s;
}

// ---- accumulator operations ---------------------------------------------------------------------------------------
// The reduction skeletons below are templates over the accumulator type T; these overloads are all they need of it:
//   set_empty(T&)          the identity of merge2 (an empty partial)
//   merge2(a, b)           combine two disjoint partials; a before b, and the skeletons fix that order
//   partial_floats<T>, store_partial, load_partial<T>   one partial in the global workspace (see further down)
// Welford: forward statistics (count, mean, M2). float2: backward sums (Σdy, Σdy·(x − mean)).
__device__ __forceinline__ Welford merge2(const Welford& a, const Welford& b) { return welford_merge(a, b); }
__device__ __forceinline__ float2 merge2(const float2& a, const float2& b) { return make_float2(a.x + b.x, a.y + b.y); }
__device__ __forceinline__ void set_empty(Welford& w) { w = welford_empty(); }
__device__ __forceinline__ void set_empty(float2& s) { s = make_float2(0.f, 0.f); }

// Reduces over a 1-D block (blockDim.x a multiple of 32); the result is valid in thread 0.
// Begins with a barrier so that it may be called several times in a row on the same shared scratch.
template <typename T>
__device__ __forceinline__ T block_reduce(T v, T* scratch /* BN_MAX_WARPS entries */) {
    const int lane = threadIdx.x % BN_WARP, warp = threadIdx.x / BN_WARP, warps = blockDim.x / BN_WARP;
    v = warp_reduce(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        T w;
        if (lane < warps) w = scratch[lane]; else set_empty(w);
        v = warp_reduce(w);
    }
    return v;
}

// ---- loads ------------------------------------------------------------------------------------------------------
// Partials written by other blocks of this launch: read through L2 (not a possibly stale L1 line).
__device__ __forceinline__ float load_cg(const float* p) { return __ldcg(p); }

__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }

// One unit of a tensor: a float (scalar path) or a float4 (vec4 path); component(v, k) is its k-th float (k is a
// constant after unrolling, so the selection costs nothing).
template <bool VEC> struct bn_unit { using type = float; };
template <> struct bn_unit<true> { using type = float4; };
__device__ __forceinline__ float component(float v, int) { return v; }
__device__ __forceinline__ float component(const float4& v, int k) {
    return k == 0 ? v.x : k == 1 ? v.y : k == 2 ? v.z : v.w;
}
template <bool VEC> __device__ __forceinline__ typename bn_unit<VEC>::type load_unit(const float* p) {
    if constexpr (VEC) return load4(p); else return *p;
}
// The unit made of W = 4 (vec4) or 1 floats, stored with one (16-byte) store.
template <bool VEC> __device__ __forceinline__ void store_unit(float* p, const float (&o)[VEC ? 4 : 1]) {
    if constexpr (VEC) store4(p, make_float4(o[0], o[1], o[2], o[3])); else *p = o[0];
}

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
// Both reduce every value of a channel to one accumulator, relative to a per-channel center (forward: the channel's
// first element; backward: the saved or running mean), and hand it to a finishing step, the only place that writes outputs. What differs is a small
// functor type Op (see ForwardStatsOp in batchnorm_forward.cu, BackwardSumsOp in batchnorm_backward.cu):
//   Op::Acc                                accumulator (Welford or float2; the overloads above)
//   Op::W                                  floats per unit: 4 on the vec4 path (16-byte loads), else 1
//   Op::Item                               what one unit loads (x, or x and dy)
//   Item op.load(long long e)              the unit at element offset e (64-bit)
//   void op.push(Acc&, Item, float center) channels-first: the W values of one unit belong to one channel
//   void op.push_row(Acc (&)[W], Item, const float (&center)[W])   channels-last: value k belongs to channel k
//   void op.settle(Acc (&)[W])             channels-last: anything push_row kept outside the accumulators
//   void op.finish(int c, Acc, float center)   channel c's merged accumulator -> outputs
// The skeletons fix every order: each thread pushes its units in index order, trees have a fixed shape, and the
// last-arriving block merges the partials in index order, so results are bitwise identical for any block schedule.

// Channels-first. 1-D grid of C*splits blocks: block b reduces units [s*chunk, (s+1)*chunk) of channel c = b / splits
// (s = b % splits), the channel's M values being N runs of `inner` floats at stride C*inner. center = center_src[c *
// center_stride], loaded once per block. Partials are laid out [c][s][partial_floats]; counters[c] counts arrivals.
template <typename Op>
__device__ __forceinline__ void channel_reduce_cf(Op op, const float* __restrict__ center_src, long long center_stride,
                                                  int C, long long N, long long inner, long long splits,
                                                  long long chunk, float* partials, unsigned* counters) {
    using Acc = typename Op::Acc;
    constexpr int W = Op::W, F = partial_floats<Acc>::value;
    __shared__ Acc scratch[BN_MAX_WARPS];
    __shared__ float center_sh;
    __shared__ unsigned last_sh;
    const long long blk = blockIdx.x;
    const int c = (int)(blk / splits);
    const long long s = blk - (long long)c * splits;
    if (threadIdx.x == 0) center_sh = center_src[(long long)c * center_stride];
    __syncthreads();
    const float center = center_sh;

    const long long innerU = inner / W;        // units per run
    const long long total = N * innerU;        // units per channel
    const long long lo = s * chunk;
    const long long hi = min(lo + chunk, total);
    const long long step = blockDim.x;
    Acc acc;
    set_empty(acc);
    long long j = lo + threadIdx.x;
    if (j < hi) {
        // Walk (n, i) incrementally: one division per thread, none per element.
        long long n = j / innerU, i = j - n * innerU;
        const long long q = step / innerU, r = step - q * innerU;
        // BN_UNROLL independent loads in flight per thread, then the pushes in the same order as one at a time.
        for (; j < hi; j += BN_UNROLL * step) {
            typename Op::Item v[BN_UNROLL];
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {
                if (j + u * step < hi) v[u] = op.load((((long long)n * C + c) * innerU + i) * W);
                i += r; n += q;
                if (i >= innerU) { i -= innerU; n += 1; }
            }
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {
                if (j + u * step < hi) op.push(acc, v[u], center);
            }
        }
    }
    acc = block_reduce(acc, scratch);
    if (splits == 1) {   // the block saw the whole channel: no workspace, no counter
        if (threadIdx.x == 0) op.finish(c, acc, center);
        return;
    }
    if (threadIdx.x == 0) store_partial(partials + blk * F, acc);
    if (!last_block_arrives(counters + c, (unsigned)splits, &last_sh)) return;
    // Fixed order: thread t merges partials t, t + blockDim, ... in sequence, then the block tree.
    Acc m;
    set_empty(m);
    const float* chan = partials + (long long)c * splits * F;
    for (long long k = threadIdx.x; k < splits; k += blockDim.x) m = merge2(m, load_partial<Acc>(chan + F * k));
    m = block_reduce(m, scratch);
    if (threadIdx.x == 0) op.finish(c, m, center);
}

// Channels-last, after tree_over_rows: the block's merged accumulators sit in sh[0 .. bx*W) in channel order. Finish
// them with consecutive threads on consecutive channels, so the per-channel loads and stores are coalesced.
template <typename Op>
__device__ __forceinline__ void finish_block_cl(Op& op, const typename Op::Acc* sh, const float* center_sh, int C,
                                                int cbase) {
    const int nthreads = blockDim.x * blockDim.y, tid = threadIdx.y * blockDim.x + threadIdx.x;
    __syncthreads();
    for (int i = tid; i < (int)blockDim.x * Op::W; i += nthreads) {
        if (cbase + i < C) op.finish(cbase + i, sh[i], center_sh[i]);
    }
}

// Channels-last ([rows][C]). Blocks (bx, by), bx * by <= 256, by a power of two; grid (ceil(CU/bx), splits) with
// CU = C / W channel units. Thread (tx, ty) owns channel unit gx*bx + tx and visits rows gy*chunk + ty, + by, ...
// below (gy+1)*chunk; the block merges its row groups in a shared-memory tree. center of channel c = center_src[c],
// staged once per block. Partials are laid out [gy][C][partial_floats]; counters[gx] counts the arrivals of column gx.
template <typename Op>
__device__ __forceinline__ void channel_reduce_cl(Op op, const float* __restrict__ center_src, long long rows, int C,
                                                  long long chunk, float* partials, unsigned* counters) {
    using Acc = typename Op::Acc;
    constexpr int W = Op::W, F = partial_floats<Acc>::value;
    __shared__ Acc sh[256 * W];
    __shared__ float center_sh[256 * W];
    __shared__ unsigned last_sh;
    const int bx = blockDim.x, by = blockDim.y, tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * bx + tx, nthreads = bx * by;
    const int CU = C / W;
    const int cu = blockIdx.x * bx + tx;
    const bool active = cu < CU;
    const int cbase = blockIdx.x * bx * W;   // first channel of this block; local channel i = tx*W + k
    // Consecutive threads load consecutive channels' centers (coalesced), once per block.
    for (int i = tid; i < bx * W; i += nthreads) center_sh[i] = cbase + i < C ? center_src[cbase + i] : 0.f;
    __syncthreads();
    float center[W];
    Acc acc[W];
    #pragma unroll
    for (int k = 0; k < W; k++) { center[k] = active ? center_sh[tx * W + k] : 0.f; set_empty(acc[k]); }
    const long long lo = (long long)blockIdx.y * chunk;
    const long long hi = min(lo + chunk, rows);
    if (active) {
        #pragma unroll 1
        for (long long r = lo + ty; r < hi; r += BN_UNROLL * by) {
            typename Op::Item v[BN_UNROLL];
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {   // loads first: BN_UNROLL rows in flight
                if (r + u * by < hi) v[u] = op.load((r + u * by) * C + (long long)cu * W);
            }
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {
                if (r + u * by < hi) op.push_row(acc, v[u], center);
            }
        }
    }
    op.settle(acc);
    tree_over_rows<Acc, W>(acc, sh);
    if (gridDim.y == 1) {   // one block row covers every row: no workspace, no counter
        finish_block_cl(op, sh, center_sh, C, cbase);
        return;
    }
    if (ty == 0 && active) {
        float* mine = partials + ((long long)blockIdx.y * C + (long long)cu * W) * F;
        #pragma unroll
        for (int k = 0; k < W; k++) store_partial(mine + F * k, acc[k]);
    }
    if (!last_block_arrives(counters + blockIdx.x, gridDim.y, &last_sh)) return;
    // Fixed order: thread (tx, ty) merges partials ty, ty + by, ... in sequence, then the same tree over ty.
    #pragma unroll
    for (int k = 0; k < W; k++) set_empty(acc[k]);
    if (active) {
        for (long long g = ty; g < gridDim.y; g += by) {
            const float* p = partials + (g * C + (long long)cu * W) * F;
            #pragma unroll
            for (int k = 0; k < W; k++) acc[k] = merge2(acc[k], load_partial<Acc>(p + F * k));
        }
    }
    tree_over_rows<Acc, W>(acc, sh);
    finish_block_cl(op, sh, center_sh, C, cbase);
}

// ---- per-channel elementwise passes: the structure shared by bn_apply_* and bn_dx_* ------------------------------
// out = f(unit, coefficients of its channel), K coefficients per channel stored as K rows of C floats (coef[q*C + c]).
// The functor type Op (ApplyOp in batchnorm_forward.cu, DxOp in batchnorm_backward.cu) supplies:
//   Op::K, Op::W, Op::Item, Item op.load(long long e)   as for the reductions
//   float op.value(const Item& v, int k, const float (&q)[K])   output float k of unit v, q its channel's coefficients
//   float* op.out                                             the output tensor (may alias an input element-wise:
//                                                             every unit is read before it is written)
template <typename Op>
__device__ __forceinline__ void store_values(const Op& op, long long e, const typename Op::Item& v,
                                             const float (&q)[Op::W][Op::K]) {
    float o[Op::W];
    #pragma unroll
    for (int k = 0; k < Op::W; k++) o[k] = op.value(v, k, q[k]);
    store_unit<Op::W == 4>(op.out + e, o);
}

// Channels-first. Unit u = (plane, piece): plane = n*C + c (a run of `inner` floats), piece covers units
// [piece*chunk, min((piece+1)*chunk, innerU)) of that run; chunk is a multiple of 32 chosen by the host. One warp per
// unit, grid-stride over units, so each warp loads the K coefficients once per `chunk` units, not per element: lane 0
// loads them and broadcasts them with shuffles.
template <typename Op>
__device__ __forceinline__ void channel_map_cf(const Op& op, int C, long long planes, long long inner, long long chunk,
                                               const float* __restrict__ coef) {
    constexpr int W = Op::W, K = Op::K;
    const int lane = threadIdx.x % BN_WARP;
    const long long warps = (long long)gridDim.x * (blockDim.x / BN_WARP);
    const long long innerU = inner / W;
    const long long pieces = (innerU + chunk - 1) / chunk;
    const long long units = planes * pieces;
    for (long long u = (long long)blockIdx.x * (blockDim.x / BN_WARP) + threadIdx.x / BN_WARP; u < units; u += warps) {
        const long long plane = u / pieces, piece = u - plane * pieces;
        const int c = (int)(plane % C);
        float qc[K];
        #pragma unroll
        for (int j = 0; j < K; j++) qc[j] = 0.f;
        if (lane == 0) {
            #pragma unroll
            for (int j = 0; j < K; j++) qc[j] = coef[j * C + c];
        }
        float q[W][K];
        #pragma unroll
        for (int j = 0; j < K; j++) {
            const float v = __shfl_sync(0xffffffffu, qc[j], 0);
            #pragma unroll
            for (int k = 0; k < W; k++) q[k][j] = v;   // one channel: the W floats of a unit share the coefficients
        }
        const long long lo = piece * chunk, hi = min(lo + chunk, innerU);
        const long long base = plane * innerU;
        for (long long i0 = lo + lane; i0 < hi; i0 += BN_UNROLL * BN_WARP) {
            typename Op::Item v[BN_UNROLL];
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {   // all loads before any store (out may alias an input)
                const long long i = i0 + u * BN_WARP;
                if (i < hi) v[u] = op.load((base + i) * W);
            }
            #pragma unroll
            for (int u = 0; u < BN_UNROLL; u++) {
                const long long i = i0 + u * BN_WARP;
                if (i < hi) store_values(op, (base + i) * W, v[u], q);
            }
        }
    }
}

// Channels-last. Grid (ceil(CU/bx), gy), blocks (bx, by) as channel_reduce_cl: thread (tx, ty) owns channel unit
// gx*bx + tx and visits rows gy*by + ty, + gridDim.y*by, ... The block stages its coefficients in shared memory once,
// consecutive threads on consecutive channels (coalesced).
template <typename Op>
__device__ __forceinline__ void channel_map_cl(const Op& op, long long rows, int C, const float* __restrict__ coef) {
    constexpr int W = Op::W, K = Op::K;
    __shared__ float sh[K][256 * W];
    const int bx = blockDim.x, tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * bx + tx, nthreads = bx * blockDim.y;
    const int CU = C / W;
    const int cu = blockIdx.x * bx + tx;
    const bool active = cu < CU;
    const int cbase = blockIdx.x * bx * W;
    for (int i = tid; i < bx * W; i += nthreads) {
        const int c = cbase + i;
        if (c < C) {
            #pragma unroll
            for (int j = 0; j < K; j++) sh[j][i] = coef[j * C + c];
        }
    }
    __syncthreads();
    if (!active) return;
    float q[W][K];
    #pragma unroll
    for (int k = 0; k < W; k++) {
        #pragma unroll
        for (int j = 0; j < K; j++) q[k][j] = sh[j][tx * W + k];
    }
    const long long step = (long long)gridDim.y * blockDim.y;
    for (long long r0 = (long long)blockIdx.y * blockDim.y + ty; r0 < rows; r0 += BN_UNROLL * step) {
        typename Op::Item v[BN_UNROLL];
        #pragma unroll
        for (int u = 0; u < BN_UNROLL; u++) {   // all loads before any store (out may alias an input)
            const long long r = r0 + u * step;
            if (r < rows) v[u] = op.load(r * C + (long long)cu * W);
        }
        #pragma unroll
        for (int u = 0; u < BN_UNROLL; u++) {
            const long long r = r0 + u * step;
            if (r < rows) store_values(op, r * C + (long long)cu * W, v[u], q);
        }
    }
}
