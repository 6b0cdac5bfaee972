package io.github.batchnorm4j.cuda;

import java.nio.ByteBuffer;

/**
 * CudaDevices over the fake driver ({@link FakeDriverApi}) for tests outside this package (the NCCL adapter's): several
 * devices share one fake driver, so their memory is reachable by raw address and the current context is per thread.
 */
public final class FakeCuda {
    private final FakeDriverApi fake = new FakeDriverApi();

    /** A fake driver reporting {@code devices} GPUs. */
    public FakeCuda(int devices) {
        fake.deviceCount = devices;
    }

    /** Opens GPU {@code ordinal} over the fake driver. */
    public CudaDevice open(int ordinal) {
        return new CudaDevice(fake, ordinal);
    }

    /** The handle of GPU {@code ordinal}'s primary context. */
    public static long primaryContext(int ordinal) {
        return FakeDriverApi.primaryContext(ordinal);
    }

    /** The context current on the calling thread. */
    public long currentContext() {
        return fake.currentContext();
    }

    /** What another library does: makes {@code handle} current on the calling thread. */
    public void foreignSetCurrent(long handle) {
        fake.foreignSetCurrent(handle);
    }

    /** The device bytes at a raw address, as a little-endian buffer positioned there. */
    public ByteBuffer at(long address, long bytes) {
        return fake.at(address, bytes);
    }
}
