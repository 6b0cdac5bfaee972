package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.DeviceEvent;
import io.github.batchnorm4j.gpu.DeviceStream;
import jcuda.driver.CUstream;

/** A CUDA stream of a {@link CudaDevice}. The device's default stream is the legacy NULL stream and is never destroyed. */
final class CudaStream implements DeviceStream {
    private final CudaDevice device;
    private final CUstream stream;
    private final boolean owned;
    private boolean closed;

    CudaStream(CudaDevice device, CUstream stream, boolean owned) {
        this.device = device;
        this.stream = stream;
        this.owned = owned;
    }

    CudaDevice device() {
        return device;
    }

    /** The CUstream handle; IllegalStateException once closed. */
    synchronized CUstream handle() {
        if (closed) throw new IllegalStateException("stream of " + device.name() + " is closed");
        return stream;
    }

    @Override
    public void synchronize() {
        device.synchronizeStream(this);
    }

    @Override
    public void waitFor(DeviceEvent event) {
        device.streamWaitEvent(this, event);
    }

    @Override
    public synchronized boolean isClosed() {
        return closed;
    }

    @Override
    public String toString() {
        return owned ? "stream of " + device.name() + (isClosed() ? " (closed)" : "") : "default stream of " + device.name();
    }

    @Override
    public void close() {
        if (!owned) return; // the default stream belongs to the device
        synchronized (this) {
            if (closed) return;
            closed = true;
        }
        device.destroyStream(stream);
    }
}
