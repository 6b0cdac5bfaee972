// Test kernels for the emulator's 16-bit instructions: what nvcc emits for __half and __nv_bfloat16 on compute_75.
// h2f / b2f: 16-bit loads and the widening conversions (cvt.f32.f16; bf16 is a move into the upper half, mov.b32
//   %f, {0, %rs}). f2h_modes / f2b_modes: the narrowing conversions with each rounding mode (cvt.{rn,rz,rm,rp}.f16.f32;
//   bf16 is integer code on compute_75: the RNE bit trick, truncation, and its directed variants) and 16-bit stores.
// scale8_h / scale8_b: 16-byte vector loads and stores of 8 halves (ld/st.global.v4.u32, mov.b32 {%rs, %rs} unpacks
//   and packs), y = x·a + b rounded once. pair_h / pair_b: the float2 -> half2/bfloat162 pair conversions.
#include <cuda_fp16.h>
#include <cuda_bf16.h>

extern "C" __global__ void h2f(const __half* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __half2float(x[i]);
}

extern "C" __global__ void b2f(const __nv_bfloat16* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __bfloat162float(x[i]);
}

extern "C" __global__ void f2h_modes(const float* x, __half* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i];
    y[4 * i] = __float2half_rn(v);
    y[4 * i + 1] = __float2half_rz(v);
    y[4 * i + 2] = __float2half_rd(v);
    y[4 * i + 3] = __float2half_ru(v);
}

extern "C" __global__ void f2b_modes(const float* x, __nv_bfloat16* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i];
    y[4 * i] = __float2bfloat16_rn(v);
    y[4 * i + 1] = __float2bfloat16_rz(v);
    y[4 * i + 2] = __float2bfloat16_rd(v);
    y[4 * i + 3] = __float2bfloat16_ru(v);
}

struct HalfIo {
    typedef __half T;
    static __device__ float load(__half h) { return __half2float(h); }
    static __device__ __half store(float f) { return __float2half_rn(f); }
};

struct Bf16Io {
    typedef __nv_bfloat16 T;
    static __device__ float load(__nv_bfloat16 h) { return __bfloat162float(h); }
    static __device__ __nv_bfloat16 store(float f) { return __float2bfloat16_rn(f); }
};

template <typename Io>
__device__ void scale8(const uint4* x, uint4* y, int n, float a, float b) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint4 v = x[i];
    const typename Io::T* h = reinterpret_cast<const typename Io::T*>(&v);
    uint4 o;
    typename Io::T* r = reinterpret_cast<typename Io::T*>(&o);
#pragma unroll
    for (int k = 0; k < 8; k++) r[k] = Io::store(fmaf(Io::load(h[k]), a, b));
    y[i] = o;
}

extern "C" __global__ void scale8_h(const uint4* x, uint4* y, int n, float a, float b) {
    scale8<HalfIo>(x, y, n, a, b);
}

extern "C" __global__ void scale8_b(const uint4* x, uint4* y, int n, float a, float b) {
    scale8<Bf16Io>(x, y, n, a, b);
}

extern "C" __global__ void pair_h(const float2* x, __half2* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float22half2_rn(x[i]);
}

extern "C" __global__ void pair_b(const float2* x, __nv_bfloat162* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float22bfloat162_rn(x[i]);
}
