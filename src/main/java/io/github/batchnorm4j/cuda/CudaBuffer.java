package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import jcuda.driver.CUdeviceptr;

/** A cuMemAlloc allocation of a {@link CudaDevice}; closing frees it (once). */
final class CudaBuffer implements DeviceBuffer {
    private final CudaDevice device;
    private final CUdeviceptr ptr;
    private final long bytes;
    private boolean closed;

    CudaBuffer(CudaDevice device, CUdeviceptr ptr, long bytes) {
        this.device = device;
        this.ptr = ptr;
        this.bytes = bytes;
    }

    @Override
    public long bytes() {
        return bytes;
    }

    @Override
    public Device device() {
        return device;
    }

    @Override
    public synchronized boolean isClosed() {
        return closed;
    }

    /** The allocation's base address; IllegalStateException once closed. */
    synchronized CUdeviceptr base() {
        if (closed) throw new IllegalStateException("device buffer of " + bytes + " bytes on " + device.name() + " is closed");
        return ptr;
    }

    @Override
    public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
        }
        device.free(this, ptr);
    }

    /** The base address even when closed (for the device's own cleanup). */
    CUdeviceptr baseUnchecked() {
        return ptr;
    }

    /** Marks the buffer closed without freeing (the device freed it while closing). */
    synchronized void markClosed() {
        closed = true;
    }

    @Override
    public String toString() {
        return "CudaBuffer[" + bytes + " bytes" + (isClosed() ? ", closed" : "") + "]";
    }
}
