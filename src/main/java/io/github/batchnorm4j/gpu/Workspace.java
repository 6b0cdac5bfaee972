package io.github.batchnorm4j.gpu;

/**
 * Scratch device memory of the kernels, owned by one {@link DeviceResidentBatchNorm}: arrival counters, per-channel
 * coefficients and block partials. It grows to the largest shape seen and is then reused by every call, so a training
 * loop allocates nothing per step.
 *
 * <p>Layout (byte offsets, each region 256-byte aligned): counters (u32, zero between launches: each reduction's last
 * block resets the ones it used), coefficients ({@link KernelConstants#COEF_ROWS}·C floats), aux (C floats), partials
 * ({@link KernelConstants#PARTIAL_FLOATS} floats each). Counters come first so that a region that held partials never
 * becomes a counter with garbage in it.
 */
final class Workspace implements AutoCloseable {
    private final Device device;
    private DeviceBuffer buffer;
    private long counterCap;
    private long channelCap;
    private long partialCap;

    Workspace(Device device) {
        this.device = device;
    }

    /** Makes room for {@code channels}, {@code partials} and {@code counters}; reallocates only to grow. */
    void ensure(int channels, long partials, long counters, DeviceStream stream) {
        if (buffer != null && channels <= channelCap && partials <= partialCap && counters <= counterCap) return;
        long newCounters = Math.max(Math.max(counters, counterCap), 1);
        long newChannels = Math.max(channels, channelCap);
        long newPartials = Math.max(Math.max(partials, partialCap), 1);
        long bytes = align(newCounters * 4) + align(newChannels * KernelConstants.COEF_ROWS * 4L)
                + align(newChannels * 4L) + align(newPartials * KernelConstants.PARTIAL_FLOATS * 4L);
        DeviceBuffer fresh = device.allocate(bytes);
        try {
            device.memset(fresh.pointer(), (byte) 0, newCounters * 4, stream);
            device.declareSelfResetting(fresh.pointer(), newCounters * 4);   // the emulator checks it after every launch
        } catch (RuntimeException e) {
            fresh.close();
            throw e;
        }
        if (buffer != null) buffer.close();
        buffer = fresh;
        counterCap = newCounters;
        channelCap = newChannels;
        partialCap = newPartials;
    }

    /** Zeroes the counters again: after a failed launch a reduction may have left some non-zero. */
    void resetCounters(DeviceStream stream) {
        if (buffer != null) device.memset(buffer.pointer(), (byte) 0, counterCap * 4, stream);
    }

    DevicePointer counters() {
        return buffer.pointer();
    }

    DevicePointer coef() {
        return buffer.at(align(counterCap * 4));
    }

    DevicePointer aux() {
        return coef().plus(align(channelCap * KernelConstants.COEF_ROWS * 4L));
    }

    DevicePointer partials() {
        return aux().plus(align(channelCap * 4L));
    }

    long bytes() {
        return buffer == null ? 0 : buffer.bytes();
    }

    private static long align(long bytes) {
        return (bytes + 255) & ~255L;
    }

    @Override
    public void close() {
        if (buffer != null) {
            buffer.close();
            buffer = null;
        }
    }
}
