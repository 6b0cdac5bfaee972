// Non-inlined device functions (.func + call), which nvcc emits for __noinline__ functions.
// calls: warp_sum (shuffles, called by the whole warp), scale (called from a divergent branch, returns a value),
// store2 (no return value, pointer argument).
__device__ __noinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __noinline__ float scale(float v, int k) { return v * (float)k + 0.5f; }
__device__ __noinline__ void store2(float* p, float a, float b) { p[0] = a; p[1] = b; }

extern "C" __global__ void calls(const float* x, float* y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = x[i];
    float s = warp_sum(v);
    float t = v;
    if (threadIdx.x % 3 == 0) t = scale(v, 3);
    store2(y + 2 * i, s, t);
}

// calls_local: a local array in the caller stays live across a call to a function with its own local array
// (dynamic indexing keeps both in .local memory); each function's depot must be separate.
__device__ __noinline__ float pick(int k, float v) {
    float t[8];
    for (int j = 0; j < 8; j++) t[j] = v * (float)(j + 1);
    return t[k & 7];
}

extern "C" __global__ void calls_local(const float* x, const int* idx, float* y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float a[8];
    for (int j = 0; j < 8; j++) a[j] = x[i] + (float)j;
    float p = pick(idx[i], x[i]);
    y[i] = a[(idx[i] >> 3) & 7] + p;
}
