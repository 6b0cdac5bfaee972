package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.gpu.Architecture;
import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceProperties;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.Kernel;
import io.github.batchnorm4j.gpu.KernelArgs;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/** A Device whose memory is host byte arrays, for the cuDNN fake (no kernels). Tracks live buffers. */
final class HostDevice implements Device {
    final List<HostBuffer> live = new ArrayList<>();
    int allocations;
    boolean closed;
    private final DeviceStream stream = new DeviceStream() {
        @Override public void synchronize() { }
        @Override public void waitFor(io.github.batchnorm4j.gpu.DeviceEvent e) { }
        @Override public boolean isClosed() { return false; }
        @Override public void close() { }
    };

    final class HostBuffer implements DeviceBuffer {
        final ByteBuffer mem;
        boolean isClosed;

        HostBuffer(long bytes) {
            mem = ByteBuffer.allocate((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
        }

        @Override public long bytes() { return mem.capacity(); }
        @Override public Device device() { return HostDevice.this; }
        @Override public boolean isClosed() { return isClosed; }

        @Override public void close() {
            if (isClosed) return;
            isClosed = true;
            live.remove(this);
        }
    }

    /** Float {@code i} (element index) at pointer {@code p}. */
    float get(DevicePointer p, long i) {
        return buf(p).mem.getFloat((int) (p.byteOffset() + 4 * i));
    }

    void set(DevicePointer p, long i, float v) {
        buf(p).mem.putFloat((int) (p.byteOffset() + 4 * i), v);
    }

    /** 16-bit element {@code i} at pointer {@code p}, widened exactly. */
    float get16(DevicePointer p, long i, io.github.batchnorm4j.DType dtype) {
        return dtype.decode(buf(p).mem.getShort((int) (p.byteOffset() + 2 * i)));
    }

    /** Stores {@code v} rounded once (to nearest even) as 16-bit element {@code i} at {@code p}. */
    void set16(DevicePointer p, long i, float v, io.github.batchnorm4j.DType dtype) {
        buf(p).mem.putShort((int) (p.byteOffset() + 2 * i), dtype.encode(v));
    }

    @Override public void copyToDevice(short[] src, int srcOffset, DevicePointer dst, int count, DeviceStream s) {
        for (int i = 0; i < count; i++) buf(dst).mem.putShort((int) (dst.byteOffset() + 2L * i), src[srcOffset + i]);
    }

    @Override public void copyToHost(DevicePointer src, short[] dst, int dstOffset, int count, DeviceStream s) {
        for (int i = 0; i < count; i++) dst[dstOffset + i] = buf(src).mem.getShort((int) (src.byteOffset() + 2L * i));
    }

    float[] read(DevicePointer p, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = get(p, i);
        return a;
    }

    private HostBuffer buf(DevicePointer p) {
        HostBuffer b = (HostBuffer) p.buffer();
        if (b.isClosed) throw new IllegalStateException("buffer closed");
        return b;
    }

    @Override public String name() { return "host memory"; }
    @Override public DeviceProperties properties() { return Architecture.SM_90.properties(1); }

    @Override public int maxActiveBlocksPerMultiprocessor(Kernel kernel, int blockThreads, int dynamicSharedBytes) {
        throw new UnsupportedOperationException("host memory runs no kernels");
    }

    @Override public DeviceBuffer allocate(long bytes) {
        if (closed) throw new IllegalStateException("closed");
        HostBuffer b = new HostBuffer(bytes);
        // uninitialized memory reads as NaN: 0x7FFF halves are NaN in float16 and bfloat16, pairs of them in float32
        for (int i = 0; i + 2 <= bytes; i += 2) b.mem.putShort(i, (short) 0x7FFF);
        live.add(b);
        allocations++;
        return b;
    }

    @Override public void copyToDevice(float[] src, int srcOffset, DevicePointer dst, int count, DeviceStream s) {
        for (int i = 0; i < count; i++) set(dst, i, src[srcOffset + i]);
    }

    @Override public void copyToDevice(int[] src, int srcOffset, DevicePointer dst, int count, DeviceStream s) {
        throw new UnsupportedOperationException();
    }

    @Override public void copyToHost(DevicePointer src, float[] dst, int dstOffset, int count, DeviceStream s) {
        for (int i = 0; i < count; i++) dst[dstOffset + i] = get(src, i);
    }

    @Override public void copyToHost(DevicePointer src, int[] dst, int dstOffset, int count, DeviceStream s) {
        throw new UnsupportedOperationException();
    }

    @Override public void copyDeviceToDevice(DevicePointer src, DevicePointer dst, long bytes, DeviceStream s) {
        for (long i = 0; i < bytes; i++) {
            buf(dst).mem.put((int) (dst.byteOffset() + i), buf(src).mem.get((int) (src.byteOffset() + i)));
        }
    }

    @Override public void memset(DevicePointer dst, byte value, long bytes, DeviceStream s) {
        for (long i = 0; i < bytes; i++) buf(dst).mem.put((int) (dst.byteOffset() + i), value);
    }

    @Override public DeviceModule loadModule(String name, String ptx) { throw new UnsupportedOperationException(); }

    @Override public void launch(Kernel k, Dim3 g, Dim3 b, int sh, DeviceStream s, KernelArgs a) {
        throw new UnsupportedOperationException();
    }

    @Override public DeviceStream defaultStream() { return stream; }
    @Override public DeviceStream createStream() { return stream; }
    /** Synchronous: every operation is complete when it returns, so events have nothing to wait for. */
    @Override public io.github.batchnorm4j.gpu.DeviceEvent createEvent() {
        return new io.github.batchnorm4j.gpu.DeviceEvent() {
            @Override public void record(DeviceStream s) { }
            @Override public void synchronize() { }
            @Override public void close() { }
        };
    }
    @Override public void synchronize() { }
    @Override public void close() { closed = true; }
}
