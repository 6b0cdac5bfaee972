package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.DType;
import jcuda.jcudnn.cudnnBatchNormMode;
import jcuda.jcudnn.cudnnDataType;
import jcuda.jcudnn.cudnnTensorDescriptor;

/** An owned cuDNN tensor descriptor; {@link #close()} destroys it once. */
final class TensorDescriptor implements AutoCloseable {
    private final CudnnApi api;
    private final cudnnTensorDescriptor desc = new cudnnTensorDescriptor();
    private boolean closed;

    private TensorDescriptor(CudnnApi api) {
        this.api = api;
        CudnnErrors.check(api, api.createTensorDescriptor(desc), "cudnnCreateTensorDescriptor");
    }

    /** cudnnDataType_t of half (CUDNN_DATA_HALF) and bfloat16 (CUDNN_DATA_BFLOAT16, cuDNN 8.1+). */
    static final int CUDNN_DATA_HALF = 2;
    static final int CUDNN_DATA_BFLOAT16 = 9;

    /** A float tensor laid out as {@code l}. */
    static TensorDescriptor of(CudnnApi api, TensorLayout4d l) {
        return of(api, l, DType.FLOAT32);
    }

    /** The cuDNN data type of a storage type. */
    static int dataType(DType dtype) {
        return switch (dtype) {
            case FLOAT32 -> cudnnDataType.CUDNN_DATA_FLOAT;
            case FLOAT16 -> CUDNN_DATA_HALF;
            case BFLOAT16 -> CUDNN_DATA_BFLOAT16;
        };
    }

    /** A tensor of {@code dtype} elements laid out as {@code l} (strides in elements). */
    static TensorDescriptor of(CudnnApi api, TensorLayout4d l, DType dtype) {
        TensorDescriptor t = new TensorDescriptor(api);
        try {
            CudnnErrors.check(api, api.setTensor4dDescriptorEx(t.desc, dataType(dtype), l.n(), l.c(),
                            l.h(), l.w(), l.nStride(), l.cStride(), l.hStride(), l.wStride()),
                    "cudnnSetTensor4dDescriptorEx(" + (dtype == DType.FLOAT32 ? "" : dtype + ", ") + l + ")");
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
        return t;
    }

    /** The 1×C×1×1 descriptor of scale, bias, means and variances for spatial batch norm over {@code x}. */
    static TensorDescriptor spatialParametersOf(CudnnApi api, TensorDescriptor x) {
        TensorDescriptor t = new TensorDescriptor(api);
        try {
            CudnnErrors.check(api, api.deriveBNTensorDescriptor(t.desc, x.get(),
                    cudnnBatchNormMode.CUDNN_BATCHNORM_SPATIAL), "cudnnDeriveBNTensorDescriptor(CUDNN_BATCHNORM_SPATIAL)");
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
        return t;
    }

    cudnnTensorDescriptor get() {
        if (closed) throw new IllegalStateException("cuDNN tensor descriptor is closed");
        return desc;
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        CudnnErrors.check(api, api.destroyTensorDescriptor(desc), "cudnnDestroyTensorDescriptor");
    }
}
