package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.gpu.DeviceStream;
import jcuda.jcudnn.cudnnHandle;

/** An owned cuDNN handle bound to a stream; {@link #close()} destroys it once. */
final class CudnnHandleOwner implements AutoCloseable {
    private final CudnnApi api;
    private final cudnnHandle handle = new cudnnHandle();
    private boolean closed;

    CudnnHandleOwner(CudnnApi api, DeviceStream stream) {
        this.api = api;
        CudnnErrors.check(api, api.create(handle), "cudnnCreate");
        try {
            CudnnErrors.check(api, api.setStream(handle, stream), "cudnnSetStream");
        } catch (RuntimeException e) {
            api.destroy(handle);
            throw e;
        }
    }

    cudnnHandle get() {
        if (closed) throw new IllegalStateException("cuDNN handle is closed");
        return handle;
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        CudnnErrors.check(api, api.destroy(handle), "cudnnDestroy");
    }
}
