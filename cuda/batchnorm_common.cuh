// batchnorm_common.cuh: device helpers shared by batchnorm_forward.cu and batchnorm_backward.cu.
//
//   Welford            (count, mean, M2) of one channel, with an in-order update and Chan's merge
//   warp_/block_reduce fixed-shape shuffle + shared-memory trees: the same inputs always merge in the same order,
//                      so results are bitwise identical run to run (no floating-point atomics anywhere)
//   last_block_arrives the "last-arriving block" protocol that lets one block merge every block's partial
//   load_cg            loads that bypass L1, for partials written by other blocks of the same launch
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
#define BN_STATS_ONLY   16   // statistics op: write pivot, mean-pivot, M2 into coef[0..2] and nothing else
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
// Statistics of one channel over the values seen so far. Values are deviations from a per-channel pivot (the
// channel's first element), so that |mean| >> std loses nothing: x - pivot is exact when both are within a factor
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
