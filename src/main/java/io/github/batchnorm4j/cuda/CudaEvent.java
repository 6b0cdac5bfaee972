package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.DeviceEvent;
import io.github.batchnorm4j.gpu.DeviceStream;
import jcuda.driver.CUevent;

/** A CUDA event of a {@link CudaDevice} (created without timing), owned by its creator. */
final class CudaEvent implements DeviceEvent {
    private final CudaDevice device;
    private final CUevent event;
    private boolean closed;

    CudaEvent(CudaDevice device, CUevent event) {
        this.device = device;
        this.event = event;
    }

    CudaDevice device() {
        return device;
    }

    /** The CUevent handle; IllegalStateException once closed. */
    synchronized CUevent handle() {
        if (closed) throw new IllegalStateException("event of " + device.name() + " is closed");
        return event;
    }

    @Override
    public void record(DeviceStream stream) {
        device.recordEvent(this, stream);
    }

    @Override
    public void synchronize() {
        device.synchronizeEvent(this);
    }

    @Override
    public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
        }
        device.destroyEvent(event);
    }

    @Override
    public String toString() {
        return "event of " + device.name();
    }
}
