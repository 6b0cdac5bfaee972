// train_kernels.cu: the small kernels of the GPU training step of `batchnorm4j train` (the MLP example), next to
// cuBLAS GEMMs and the library's batch-norm kernels. Each has a Java counterpart in train.CpuTrainBackend that it
// must match (TrainKernelsEmulatorTest runs this PTX on the emulator against it).
//
// Entry points (all extern "C"; matrices row-major; sizes as 64-bit element counts where they can be large). Each
// skeleton is one template over the storage type S of the activations (float, __half, __nv_bfloat16): the float32
// entry point has the plain name, the 16-bit ones end in _f16 / _bf16. A 16-bit value is widened exactly when loaded,
// all arithmetic is float (or double where noted), and a 16-bit result is rounded once, to nearest even, when stored
// (what train.CpuTrainBackend does on 16-bit tensors). Bias, weight gradients, parameters and the SGD state are float.
//
//   train_bias_add       x[r][j] += bias[j]. Grid-stride over the n = rows*cols elements, 256 threads per block.
//                        Traffic: read + write x, bias from cache. Exact (one rounding, as in Java).
//   train_bias_grad      out[j] = sum_r dy[r][j] (the bias gradient). One thread per column, 256 columns per block,
//                        threads of a warp read consecutive columns of a row (coalesced). Sums in double in row order:
//                        deterministic, and the same value as Java's double accumulation up to the final rounding.
//   train_relu_forward   y = x < 0 ? 0 : x (NaN propagates, as Java's Math.max(x, 0) does; fmaxf would turn it into
//                        0). Grid-stride. Exact.
//   train_relu_backward  dx = y > 0 ? dy : 0, y the ReLU's output (in place allowed: dx == dy). Grid-stride. Exact.
//   train_cast_f16/_bf16 dst = src rounded to the 16-bit type (this step's 16-bit copy of a float32 master weight).
//   train_unscale        g *= inv_scale over n floats, and *nonfinite = 1 when a result is Inf or NaN (GradScaler's
//                        unscale with its overflow check: the host zeroes the flag, launches once per gradient tensor
//                        and reads it once). Every writer writes the same 1: the flag is deterministic.
//   train_softmax_xent   per row r: loss[r] = log(sum_j exp(z_rj - max_r)) - (z_r,label - max_r),
//                        dlogits[r][j] = (softmax_rj - [j == label]) * inv_rows (1.0 / rows in double, as in Java),
//                        rounded to float, times grad_scale (the loss scale of float16 training; the _f16/_bf16 entry
//                        points take it, the float32 one uses 1), correct[r] = argmax_j z_rj == label
//                        (ties and NaN resolve to the lowest index, as in Java). One thread per row: the classes of a
//                        row (10 here) are few, so a warp per row would idle; exp/log in double like the Java version,
//                        so loss and gradient agree to float rounding. The host sums loss[] and correct[].
//   train_sgd_momentum   g = grad + wd * p; v = momentum * v + g; p -= lr * v (PyTorch's SGD). Grid-stride. Every
//                        product and sum rounded separately (__fmul_rn/__fadd_rn forbid fused multiply-add
//                        contraction), so the result is bit-identical to the Java loop.
//   train_sgemm          C = alpha * op(A) * op(B) + beta * C on row-major matrices (op = transpose when the flag is
//                        set): the GEMM of the training step where cuBLAS is not available (the PTX emulator in CI,
//                        or a GPU without libcublas). 16x16 thread blocks, one C element per thread, 16x16 tiles of
//                        op(A) and op(B) staged in shared memory (padded rows: no bank conflicts), k walked in tile
//                        order with fmaf. Loads of a transposed operand are strided (uncoalesced): fine for the small
//                        matrices of the example, and cuBLAS is the fast path. Deterministic. beta = 0 never reads C.
//   train_gemm_f16 / _bf16      the same with A, B, C in the 16-bit type (float accumulation, C rounded once);
//   train_gemm_f16_f32 / _bf16_f32  A, B 16-bit, C float (a weight gradient from 16-bit activations).
//
// Launch geometry: 1-D blocks of TRAIN_BLOCK threads; elementwise kernels use min(ceil(n / TRAIN_BLOCK), 65535 * 4)
// blocks and stride over the rest; train_bias_grad uses ceil(cols / TRAIN_BLOCK) blocks; train_softmax_xent
// ceil(rows / TRAIN_BLOCK). No shared memory, no atomics: every result is deterministic.

#include <cuda_fp16.h>
#include <cuda_bf16.h>

#define TRAIN_BLOCK 256

// Exact widening, and one rounding to nearest even (cvt.rn.f16.f32 for __half; integer code for __nv_bfloat16 on
// compute_75, as in batchnorm_common.cuh).
__device__ __forceinline__ float widen(float v) { return v; }
__device__ __forceinline__ float widen(__half v) { return __half2float(v); }
__device__ __forceinline__ float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename S> __device__ __forceinline__ S narrow(float v);
template <> __device__ __forceinline__ float narrow<float>(float v) { return v; }
template <> __device__ __forceinline__ __half narrow<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 narrow<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <typename S>
__device__ __forceinline__ void bias_add(S* __restrict__ x, const float* __restrict__ bias, long long n, int cols) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        x[i] = narrow<S>(widen(x[i]) + bias[(int)(i % cols)]);
    }
}

extern "C" __global__ void train_bias_add(float* __restrict__ x, const float* __restrict__ bias, long long n,
                                          int cols) {
    bias_add(x, bias, n, cols);
}
extern "C" __global__ void train_bias_add_f16(__half* __restrict__ x, const float* __restrict__ bias, long long n,
                                              int cols) {
    bias_add(x, bias, n, cols);
}
extern "C" __global__ void train_bias_add_bf16(__nv_bfloat16* __restrict__ x, const float* __restrict__ bias,
                                               long long n, int cols) {
    bias_add(x, bias, n, cols);
}

template <typename S>
__device__ __forceinline__ void bias_grad(const S* __restrict__ dy, float* __restrict__ out, int rows, int cols) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    double s = 0.0;
    for (int r = 0; r < rows; r++) s += (double)widen(dy[(long long)r * cols + j]);
    out[j] = (float)s;
}

extern "C" __global__ void train_bias_grad(const float* __restrict__ dy, float* __restrict__ out, int rows,
                                           int cols) {
    bias_grad(dy, out, rows, cols);
}
extern "C" __global__ void train_bias_grad_f16(const __half* __restrict__ dy, float* __restrict__ out, int rows,
                                               int cols) {
    bias_grad(dy, out, rows, cols);
}
extern "C" __global__ void train_bias_grad_bf16(const __nv_bfloat16* __restrict__ dy, float* __restrict__ out,
                                                int rows, int cols) {
    bias_grad(dy, out, rows, cols);
}

// The stored value itself is written (no rounding: a ReLU is exact in any type).
template <typename S>
__device__ __forceinline__ void relu_forward(const S* __restrict__ x, S* __restrict__ y, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const S v = x[i];
        y[i] = widen(v) < 0.0f ? narrow<S>(0.0f) : v;
    }
}

extern "C" __global__ void train_relu_forward(const float* __restrict__ x, float* __restrict__ y, long long n) {
    relu_forward(x, y, n);
}
extern "C" __global__ void train_relu_forward_f16(const __half* __restrict__ x, __half* __restrict__ y, long long n) {
    relu_forward(x, y, n);
}
extern "C" __global__ void train_relu_forward_bf16(const __nv_bfloat16* __restrict__ x, __nv_bfloat16* __restrict__ y,
                                                   long long n) {
    relu_forward(x, y, n);
}

// dx may alias dy (in-place mask), so neither carries __restrict__.
template <typename S>
__device__ __forceinline__ void relu_backward(const S* __restrict__ y, const S* dy, S* dx, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        dx[i] = widen(y[i]) > 0.0f ? dy[i] : narrow<S>(0.0f);
    }
}

extern "C" __global__ void train_relu_backward(const float* __restrict__ y, const float* dy, float* dx,
                                               long long n) {
    relu_backward(y, dy, dx, n);
}
extern "C" __global__ void train_relu_backward_f16(const __half* __restrict__ y, const __half* dy, __half* dx,
                                                   long long n) {
    relu_backward(y, dy, dx, n);
}
extern "C" __global__ void train_relu_backward_bf16(const __nv_bfloat16* __restrict__ y, const __nv_bfloat16* dy,
                                                    __nv_bfloat16* dx, long long n) {
    relu_backward(y, dy, dx, n);
}

template <typename S>
__device__ __forceinline__ void cast_from_float(const float* __restrict__ src, S* __restrict__ dst, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        dst[i] = narrow<S>(src[i]);
    }
}

extern "C" __global__ void train_cast_f16(const float* __restrict__ src, __half* __restrict__ dst, long long n) {
    cast_from_float(src, dst, n);
}
extern "C" __global__ void train_cast_bf16(const float* __restrict__ src, __nv_bfloat16* __restrict__ dst,
                                           long long n) {
    cast_from_float(src, dst, n);
}

extern "C" __global__ void train_unscale(float* __restrict__ g, long long n, float inv_scale,
                                         int* __restrict__ nonfinite) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float v = __fmul_rn(g[i], inv_scale);
        g[i] = v;
        if (!isfinite(v)) *nonfinite = 1;
    }
}

template <typename S>
__device__ __forceinline__ void softmax_xent(const S* __restrict__ logits, const int* __restrict__ labels,
                                             S* __restrict__ dlogits, float* __restrict__ loss,
                                             int* __restrict__ correct, int rows, int classes, double inv_rows,
                                             float grad_scale) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const S* z = logits + (long long)r * classes;
    S* g = dlogits + (long long)r * classes;
    const int label = labels[r];
    // Subtract the row maximum so exp never overflows; the comparison form keeps the lowest index on ties.
    float mx = widen(z[0]);
    float top = mx;
    int best = 0;
    for (int j = 1; j < classes; j++) {
        const float v = widen(z[j]);
        mx = fmaxf(mx, v);
        if (v > top) {
            top = v;
            best = j;
        }
    }
    double sum = 0.0;
    for (int j = 0; j < classes; j++) sum += exp((double)widen(z[j]) - mx);
    const double log_sum = log(sum);
    loss[r] = (float)(log_sum - ((double)widen(z[label]) - mx));
    for (int j = 0; j < classes; j++) {
        const double p = exp((double)widen(z[j]) - mx - log_sum);
        g[j] = narrow<S>(__fmul_rn((float)((p - (j == label ? 1.0 : 0.0)) * inv_rows), grad_scale));
    }
    correct[r] = best == label ? 1 : 0;
}

extern "C" __global__ void train_softmax_xent(const float* __restrict__ logits, const int* __restrict__ labels,
                                              float* __restrict__ dlogits, float* __restrict__ loss,
                                              int* __restrict__ correct, int rows, int classes, double inv_rows) {
    softmax_xent(logits, labels, dlogits, loss, correct, rows, classes, inv_rows, 1.0f);
}
extern "C" __global__ void train_softmax_xent_f16(const __half* __restrict__ logits, const int* __restrict__ labels,
                                                  __half* __restrict__ dlogits, float* __restrict__ loss,
                                                  int* __restrict__ correct, int rows, int classes, double inv_rows,
                                                  float grad_scale) {
    softmax_xent(logits, labels, dlogits, loss, correct, rows, classes, inv_rows, grad_scale);
}
extern "C" __global__ void train_softmax_xent_bf16(const __nv_bfloat16* __restrict__ logits,
                                                   const int* __restrict__ labels,
                                                   __nv_bfloat16* __restrict__ dlogits, float* __restrict__ loss,
                                                   int* __restrict__ correct, int rows, int classes, double inv_rows,
                                                   float grad_scale) {
    softmax_xent(logits, labels, dlogits, loss, correct, rows, classes, inv_rows, grad_scale);
}

extern "C" __global__ void train_sgd_momentum(float* __restrict__ p, const float* __restrict__ grad,
                                              float* __restrict__ v, long long n, float lr, float momentum,
                                              float weight_decay) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float pi = p[i];
        const float g = __fadd_rn(grad[i], __fmul_rn(weight_decay, pi));
        const float vi = __fadd_rn(__fmul_rn(momentum, v[i]), g);
        v[i] = vi;
        p[i] = __fsub_rn(pi, __fmul_rn(lr, vi));
    }
}

#define GEMM_TILE 16

// S: the type of A and B; T: the type of C.
template <typename S, typename T>
__device__ __forceinline__ void gemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                                     const S* __restrict__ a, const S* __restrict__ b, float beta,
                                     T* __restrict__ c) {
    __shared__ float as[GEMM_TILE][GEMM_TILE + 1];
    __shared__ float bs[GEMM_TILE][GEMM_TILE + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int row = blockIdx.y * GEMM_TILE + ty;   // row of C and of op(A)
    const int col = blockIdx.x * GEMM_TILE + tx;   // column of C and of op(B)
    float acc = 0.0f;
    for (int p0 = 0; p0 < k; p0 += GEMM_TILE) {
        // Out-of-range tile elements are 0 on both sides, so the padded products add exactly 0.
        const int pa = p0 + tx;
        float av = 0.0f;
        if (row < m && pa < k) av = widen(trans_a ? a[(long long)pa * m + row] : a[(long long)row * k + pa]);
        as[ty][tx] = av;
        const int pb = p0 + ty;
        float bv = 0.0f;
        if (pb < k && col < n) bv = widen(trans_b ? b[(long long)col * k + pb] : b[(long long)pb * n + col]);
        bs[ty][tx] = bv;
        __syncthreads();
        for (int q = 0; q < GEMM_TILE; q++) acc = fmaf(as[ty][q], bs[q][tx], acc);
        __syncthreads();
    }
    if (row < m && col < n) {
        const long long o = (long long)row * n + col;
        c[o] = narrow<T>(beta == 0.0f ? alpha * acc : fmaf(beta, widen(c[o]), alpha * acc));
    }
}

extern "C" __global__ void train_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                                       const float* __restrict__ a, const float* __restrict__ b, float beta,
                                       float* __restrict__ c) {
    gemm(trans_a, trans_b, m, n, k, alpha, a, b, beta, c);
}
extern "C" __global__ void train_gemm_f16(int trans_a, int trans_b, int m, int n, int k, float alpha,
                                          const __half* __restrict__ a, const __half* __restrict__ b, float beta,
                                          __half* __restrict__ c) {
    gemm(trans_a, trans_b, m, n, k, alpha, a, b, beta, c);
}
extern "C" __global__ void train_gemm_f16_f32(int trans_a, int trans_b, int m, int n, int k, float alpha,
                                              const __half* __restrict__ a, const __half* __restrict__ b, float beta,
                                              float* __restrict__ c) {
    gemm(trans_a, trans_b, m, n, k, alpha, a, b, beta, c);
}
extern "C" __global__ void train_gemm_bf16(int trans_a, int trans_b, int m, int n, int k, float alpha,
                                           const __nv_bfloat16* __restrict__ a, const __nv_bfloat16* __restrict__ b,
                                           float beta, __nv_bfloat16* __restrict__ c) {
    gemm(trans_a, trans_b, m, n, k, alpha, a, b, beta, c);
}
extern "C" __global__ void train_gemm_bf16_f32(int trans_a, int trans_b, int m, int n, int k, float alpha,
                                               const __nv_bfloat16* __restrict__ a,
                                               const __nv_bfloat16* __restrict__ b, float beta,
                                               float* __restrict__ c) {
    gemm(trans_a, trans_b, m, n, k, alpha, a, b, beta, c);
}
