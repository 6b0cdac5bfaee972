package io.github.batchnorm4j.gpu;

/**
 * The seam between kernel orchestration and a GPU: everything {@code gpu/} needs from a device, and nothing more.
 *
 * <p>Two implementations exist: {@code cuda.CudaDevice} over JCuda's driver API, and {@code ptx.EmulatedDevice}, which
 * interprets the very same PTX text on the CPU. The host code in {@code gpu/} is written only against this interface,
 * so the same launch geometry and the same PTX run in CI on the emulator and on a real GPU.
 *
 * <p>Conventions:
 * <ul>
 *   <li>Sizes and offsets are in bytes unless a parameter says elements.</li>
 *   <li>{@link #allocate} returns memory aligned to at least 256 bytes (as {@code cuMemAlloc} does), so the alignment of
 *       a {@link DevicePointer} is the alignment of its byte offset.</li>
 *   <li>Operations taking a {@link DeviceStream} are ordered on that stream and may return before they complete.
 *       Copies to the host are complete when the method returns (they wait for the stream). An error of work that ran
 *       after its call returned is reported by a later call that waits for it.</li>
 *   <li>Every failure is a {@link DeviceException} naming the call (and, for launches, the kernel, grid and block).</li>
 * </ul>
 * A device is owned by one object; {@link #close()} is idempotent and any later call throws
 * {@link IllegalStateException}.
 */
public interface Device extends AutoCloseable {

    /** A human-readable name, e.g. "NVIDIA H100 80GB HBM3" or "PTX emulator (132 SMs)". */
    String name();

    /** Limits and sizes that launch geometry depends on. */
    DeviceProperties properties();

    /**
     * Allocates {@code bytes} of device memory (not initialized: the emulator reports reads before writes).
     *
     * @param bytes at least 1
     * @return a buffer owned by the caller; closing it frees the memory
     */
    DeviceBuffer allocate(long bytes);

    /** Copies {@code count} floats from {@code src[srcOffset..]} to device memory at {@code dst}. */
    void copyToDevice(float[] src, int srcOffset, DevicePointer dst, int count, DeviceStream stream);

    /** Copies {@code count} ints from {@code src[srcOffset..]} to device memory at {@code dst}. */
    void copyToDevice(int[] src, int srcOffset, DevicePointer dst, int count, DeviceStream stream);

    /** Copies {@code count} floats from device memory at {@code src} to {@code dst[dstOffset..]}; complete on return. */
    void copyToHost(DevicePointer src, float[] dst, int dstOffset, int count, DeviceStream stream);

    /** Copies {@code count} ints from device memory at {@code src} to {@code dst[dstOffset..]}; complete on return. */
    void copyToHost(DevicePointer src, int[] dst, int dstOffset, int count, DeviceStream stream);

    /**
     * Copies {@code count} 16-bit elements (float16/bfloat16 bit patterns) from {@code src[srcOffset..]} to device
     * memory at {@code dst} (2-byte aligned). The default packs element pairs into one int copy and writes an odd last
     * element with two one-byte memsets; implementations may copy the shorts directly.
     */
    default void copyToDevice(short[] src, int srcOffset, DevicePointer dst, int count, DeviceStream stream) {
        DeviceChecks.hostRange("src", src, srcOffset, count);
        DeviceChecks.room("dst", dst, count, io.github.batchnorm4j.DType.FLOAT16, "");
        int pairs = count / 2;
        if (pairs > 0) {
            int[] words = new int[pairs];
            for (int i = 0; i < pairs; i++) {
                words[i] = (src[srcOffset + 2 * i] & 0xFFFF) | (src[srcOffset + 2 * i + 1] << 16); // little-endian
            }
            copyToDevice(words, 0, dst, pairs, stream);
        }
        if (count % 2 == 1) {
            short last = src[srcOffset + count - 1];
            DevicePointer p = dst.plus(2L * (count - 1));
            memset(p, (byte) last, 1, stream);
            memset(p.plus(1), (byte) (last >> 8), 1, stream);
        }
    }

    /**
     * Copies {@code count} 16-bit elements from device memory at {@code src} to {@code dst[dstOffset..]}; complete on
     * return. The default copies element pairs as ints and an odd last element through a 4-byte scratch buffer.
     */
    default void copyToHost(DevicePointer src, short[] dst, int dstOffset, int count, DeviceStream stream) {
        DeviceChecks.hostRange("dst", dst, dstOffset, count);
        DeviceChecks.room("src", src, count, io.github.batchnorm4j.DType.FLOAT16, "");
        int pairs = count / 2;
        if (pairs > 0) {
            int[] words = new int[pairs];
            copyToHost(src, words, 0, pairs, stream);
            for (int i = 0; i < pairs; i++) {
                dst[dstOffset + 2 * i] = (short) words[i];
                dst[dstOffset + 2 * i + 1] = (short) (words[i] >>> 16);
            }
        }
        if (count % 2 == 1) {
            try (DeviceBuffer scratch = allocate(4)) {
                memset(scratch.pointer(), (byte) 0, 4, stream);
                copyDeviceToDevice(src.plus(2L * (count - 1)), scratch.pointer(), 2, stream);
                int[] word = new int[1];
                copyToHost(scratch.pointer(), word, 0, 1, stream);
                dst[dstOffset + count - 1] = (short) word[0];
            }
        }
    }

    /** Copies {@code bytes} between two device locations (ordered on {@code stream}). */
    void copyDeviceToDevice(DevicePointer src, DevicePointer dst, long bytes, DeviceStream stream);

    /** Sets {@code bytes} bytes at {@code dst} to {@code value} (like {@code cuMemsetD8Async}). */
    void memset(DevicePointer dst, byte value, long bytes, DeviceStream stream);

    /**
     * Loads a PTX module.
     *
     * @param name a name for messages (usually the resource file name, e.g. "batchnorm_forward.ptx")
     * @param ptx  the PTX text
     */
    DeviceModule loadModule(String name, String ptx);

    /**
     * Launches a kernel.
     *
     * @param dynamicSharedBytes bytes of {@code extern __shared__} memory per block
     * @param args               the kernel's parameters, in declaration order, with matching sizes
     * @throws DeviceException   on any launch error, naming the kernel, grid and block
     */
    void launch(Kernel kernel, Dim3 grid, Dim3 block, int dynamicSharedBytes, DeviceStream stream, KernelArgs args);

    /**
     * Launches a kernel cooperatively ({@code cuLaunchCooperativeKernel}): every block of the grid is resident on the
     * device at once, so that blocks may wait for each other at a grid-wide barrier. The grid must not exceed
     * {@link #maxActiveBlocksPerMultiprocessor} × {@link DeviceProperties#multiprocessorCount()} blocks.
     *
     * @throws DeviceException               when the grid cannot be co-resident (the message names the kernel, the
     *                                       grid and the limit) or on any launch error
     * @throws UnsupportedOperationException when the device cannot launch cooperatively
     *                                       ({@link #supportsCooperativeLaunch()} is false)
     */
    default void launchCooperative(Kernel kernel, Dim3 grid, Dim3 block, int dynamicSharedBytes, DeviceStream stream,
                                   KernelArgs args) {
        throw new UnsupportedOperationException(name() + " cannot launch kernels cooperatively");
    }

    /** Whether {@link #launchCooperative} works here ({@code CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH} on a GPU). */
    default boolean supportsCooperativeLaunch() {
        return false;
    }

    /**
     * How many blocks of {@code kernel} with {@code blockThreads} threads and {@code dynamicSharedBytes} of dynamic
     * shared memory can be resident on one SM at once ({@code cuOccupancyMaxActiveBlocksPerMultiprocessor} on a GPU,
     * {@link Occupancy} on the emulator); 0 when such a launch would be refused. Times
     * {@link DeviceProperties#multiprocessorCount()}, it is how many blocks can be co-resident on the device: one full
     * wave of a grid-stride kernel, and the largest grid a grid-wide barrier may wait on.
     *
     * @throws DeviceException on a driver error
     */
    int maxActiveBlocksPerMultiprocessor(Kernel kernel, int blockThreads, int dynamicSharedBytes);

    /**
     * Declares that every kernel leaves the {@code bytes} bytes at {@code region} zero when it finishes, as the
     * self-resetting arrival counters of a last-block reduction do. A device that can check it (the emulator) fails a
     * launch that leaves a non-zero word there, naming the kernel and the word's last writer; a GPU ignores it. The
     * declaration lasts as long as the buffer.
     *
     * @param bytes a multiple of 4, with {@code region} 4-byte aligned
     */
    default void declareSelfResetting(DevicePointer region, long bytes) {
    }

    /** The stream that operations use when the caller has none of its own. Never closed by callers. */
    DeviceStream defaultStream();

    /** Creates a stream owned by the caller (unordered with other created streams; see {@link DeviceStream}). */
    DeviceStream createStream();

    /** Creates an event owned by the caller, for ordering work between streams (see {@link DeviceEvent}). */
    DeviceEvent createEvent();

    /** Waits until all work on all streams of this device is complete (and reports errors of that work). */
    void synchronize();

    /** Releases the device (and reports leaked allocations where the implementation can). Idempotent. */
    @Override
    void close();
}
