// cooperative_kernels.cu: test kernels for cooperative launches (a grid-wide barrier between blocks).
//
//   grid_total   each block sums its slice of x (a fixed tree) into partials[block]; after the grid barrier of
//                batchnorm_common.cuh every block adds all partials in block-index order and writes the total to
//                out[block]. Every out[b] is the same float, whatever order the blocks ran in; bar (2 words) is zero
//                again afterwards. Launched cooperatively (all blocks resident); 256 threads per block.
//   grid_total_pressure   the same with 64 live floats per thread, so that ptxas needs many registers: few blocks
//                fit an SM, and the co-residency limit of a cooperative launch is small.
#include "../../../cuda/batchnorm_common.cuh"

__device__ __forceinline__ float block_sum(float v, float* sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int off = blockDim.x / 2; off > 0; off >>= 1) {
        if (threadIdx.x < off) sh[threadIdx.x] += sh[threadIdx.x + off];
        __syncthreads();
    }
    return sh[0];
}

__device__ __forceinline__ void finish_total(float* partials, unsigned* bar, float* out, float s) {
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
    grid_barrier(bar, gridDim.x);
    if (threadIdx.x == 0) {
        float total = 0.f;
        for (unsigned b = 0; b < gridDim.x; b++) total += __ldcg(partials + b);
        out[blockIdx.x] = total;
    }
}

extern "C" __global__ void __launch_bounds__(256) grid_total(const float* __restrict__ x, int n, float* partials,
                                                            unsigned* bar, float* out) {
    __shared__ float sh[256];
    const int per = (n + gridDim.x - 1) / gridDim.x;
    const int lo = blockIdx.x * per, hi = min(lo + per, n);
    float s = 0.f;
    for (int i = lo + threadIdx.x; i < hi; i += blockDim.x) s += x[i];
    s = block_sum(s, sh);
    finish_total(partials, bar, out, s);
}

extern "C" __global__ void __launch_bounds__(256) grid_total_pressure(const float* __restrict__ x, int n,
                                                                     float* partials, unsigned* bar, float* out) {
    __shared__ float sh[256];
    float v[64];
    #pragma unroll
    for (int k = 0; k < 64; k++) {
        const int i = (blockIdx.x * 64 + k) * blockDim.x + threadIdx.x;
        v[k] = i < n ? x[i] : 0.f;
    }
    float s = 0.f;
    #pragma unroll
    for (int k = 0; k < 64; k++) s += v[k] * v[63 - k];
    s = block_sum(s, sh);
    finish_total(partials, bar, out, s);
}
