// Test kernels for the PTX emulator: correct reductions and histograms.
// reduce_sum: each block sums its grid-stride slice with warp shuffles and shared memory,
//   writes one partial per block; the last block to finish (fence + atomic counter, then a fence before it reads)
//   sums the partials.
// histogram: atomicAdd into shared bins, then into global bins.
// welford_stats: per-channel mean/invstd with float math (rsqrt, div, fma), shfl modes.
// warp_reduce_syncwarp: a warp-synchronous shared-memory reduction ordered by __syncwarp (race-check clean).
extern "C" __global__ void reduce_sum(const float* __restrict__ x, long long n, float* partials,
                                      unsigned int* counter, float* out) {
    __shared__ float warpSums[32];
    float s = 0.f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        s += x[i];
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warpSums[warp] = s;
    __syncthreads();
    if (warp == 0) {
        s = lane < (blockDim.x + 31) / 32 ? warpSums[lane] : 0.f;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) partials[blockIdx.x] = s;
    }
    __shared__ bool isLast;
    __threadfence();
    if (threadIdx.x == 0) {
        unsigned int prev = atomicAdd(counter, 1u);
        isLast = prev == gridDim.x - 1;
    }
    __syncthreads();
    if (isLast && threadIdx.x == 0) {
        __threadfence();   // acquire: order the partial loads after the atomic that observed every block's release
        float t = 0.f;
        for (unsigned int b = 0; b < gridDim.x; b++) t += ((volatile float*)partials)[b];
        *out = t;
        *counter = 0;
    }
}

extern "C" __global__ void histogram(const int* __restrict__ v, int n, int nbins, unsigned int* bins) {
    extern __shared__ unsigned int local[];
    for (int b = threadIdx.x; b < nbins; b += blockDim.x) local[b] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        int b = v[i] % nbins;
        if (b < 0) b += nbins;
        atomicAdd(&local[b], 1u);
    }
    __syncthreads();
    for (int b = threadIdx.x; b < nbins; b += blockDim.x) atomicAdd(&bins[b], local[b]);
}

extern "C" __global__ void mathmix(const float* x, float* y, double* yd, int n, float eps) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i];
    float a = rsqrtf(fabsf(v) + eps);
    float b = v / (1.0f + fabsf(v));
    float c = __expf(v * 0.1f) + sqrtf(fabsf(v)) + fmaxf(v, 0.f);
    float sh = __shfl_up_sync(0xffffffffu, v, 1);
    float sx = __shfl_sync(0xffffffffu, v, (threadIdx.x * 7) & 31);
    unsigned ball = __ballot_sync(0xffffffffu, v > 0.f);
    y[i] = a + b * c + sh - sx + (float)__popc(ball);
    double d = (double)v;
    yd[i] = d / 3.0 + sqrt(fabs(d)) + (double)(long long)(v * 1000.f) + (double)__float2int_rn(v * 10.f);
}

// warp_reduce_syncwarp: warp_reduce_no_syncwarp (planted_bugs.cu) corrected: every step reads, __syncwarp, writes,
// __syncwarp, so no lane reads a slot another lane is writing (or writes one another lane still has to read).
extern "C" __global__ void warp_reduce_syncwarp(const float* __restrict__ x, float* __restrict__ out) {
    __shared__ float s[256];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float* w = s + 32 * warp;
    w[lane] = x[blockIdx.x * blockDim.x + threadIdx.x];
    __syncwarp();
    for (int o = 16; o > 0; o >>= 1) {
        float v = lane < o ? w[lane + o] : 0.f;
        __syncwarp();
        if (lane < o) w[lane] += v;
        __syncwarp();
    }
    if (lane == 0) out[blockIdx.x * (blockDim.x >> 5) + warp] = w[0];
}
