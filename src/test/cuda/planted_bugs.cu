// Kernels with planted bugs, each of which the PTX emulator must catch with the right message.
// oob_write:          off-by-one bound (i <= n) writes y[n], one element past the end.
// race_missing_sync:  warps write shared memory and warp 0 reads the other warps' slots without __syncthreads.
// uninit_read:        correct code; the test leaves part of the input unwritten on the host side.
// divergent_barrier:  __syncthreads inside a branch that only half of each warp takes (each thread then reads only
//                     its own slot, so no race between or within warps is reported before the divergence).
// misaligned_vec:     a float4 load through a pointer 4 bytes past a 16-byte boundary.
// histogram_missing_sync: plain stores then atomics on shared bins by other warps without a barrier.
// warp_reduce_no_syncwarp: the classic pre-Volta warp-synchronous shared-memory reduction, written without volatile
//                    and without __syncwarp: lanes read slots other lanes of the same warp just wrote.
extern "C" __global__ void oob_write(const float* __restrict__ x, float* __restrict__ y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) y[i] = 2.f * (i < n ? x[i] : 0.f);
}

extern "C" __global__ void race_missing_sync(const float* __restrict__ x, float* __restrict__ out) {
    __shared__ float slots[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float v = x[blockIdx.x * blockDim.x + threadIdx.x];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0) slots[warp] = v;
    // BUG: __syncthreads() missing here
    if (warp == 0) {
        float s = lane < blockDim.x / 32 ? slots[lane] : 0.f;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
        if (lane == 0) out[blockIdx.x] = s;
    }
}

extern "C" __global__ void uninit_read(const float* __restrict__ x, float* __restrict__ y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] + 1.f;
}

extern "C" __global__ void divergent_barrier(float* y) {
    __shared__ float t[64];
    t[threadIdx.x] = (float)threadIdx.x;
    if ((threadIdx.x & 31) < 16) {
        __syncthreads();  // BUG: not reached by lanes 16..31
    }
    y[threadIdx.x] = t[threadIdx.x];  // own slot: no race (between or within warps) hides the barrier bug
}

extern "C" __global__ void misaligned_vec(const float* __restrict__ x, float* __restrict__ y) {
    int i = threadIdx.x;
    float4 v = reinterpret_cast<const float4*>(x + 1)[i];  // BUG: x + 1 is not 16-byte aligned
    y[i] = v.x + v.y + v.z + v.w;
}

// histogram_missing_sync: shared bins are zeroed by plain stores and then updated atomically by other warps
// with no __syncthreads in between (a plain-vs-atomic race).
extern "C" __global__ void histogram_missing_sync(const int* __restrict__ v, int n, int nbins, unsigned int* bins) {
    extern __shared__ unsigned int local[];
    for (int b = threadIdx.x; b < nbins; b += blockDim.x) local[b] = 0;
    // BUG: __syncthreads() missing here
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        atomicAdd(&local[(unsigned)v[i] % nbins], 1u);
    }
    __syncthreads();
    for (int b = threadIdx.x; b < nbins; b += blockDim.x) atomicAdd(&bins[b], local[b]);
}

// warp_reduce_no_syncwarp: each warp sums its 32 values in its own shared segment. Pre-Volta code relied on the warp
// running in lockstep; with independent thread scheduling lane i may read s[i + o] before lane i + o wrote it.
extern "C" __global__ void warp_reduce_no_syncwarp(const float* __restrict__ x, float* __restrict__ out) {
    __shared__ float s[256];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float* w = s + 32 * warp;
    w[lane] = x[blockIdx.x * blockDim.x + threadIdx.x];
    // BUG: __syncwarp() missing between the writes and the other lanes' reads (here and in every step below)
    for (int o = 16; o > 0; o >>= 1) {
        if (lane < o) w[lane] += w[lane + o];
    }
    if (lane == 0) out[blockIdx.x * (blockDim.x >> 5) + warp] = w[0];
}
