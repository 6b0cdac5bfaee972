package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.Architecture;
import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceEvent;
import io.github.batchnorm4j.gpu.DeviceChecks;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceProperties;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.Kernel;
import io.github.batchnorm4j.gpu.KernelArgs;
import io.github.batchnorm4j.gpu.KernelResources;
import io.github.batchnorm4j.gpu.MeasuringDevice;
import io.github.batchnorm4j.gpu.Occupancy;
import io.github.batchnorm4j.gpu.PtxResources;
import io.github.batchnorm4j.gpu.TrafficMetrics;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * A {@link Device} that interprets PTX on the CPU, with memory, initialization, race and barrier checks and traffic
 * metrics (docs/design.md §4).
 *
 * <p>Behaviour that differs from a GPU, on purpose:
 * <ul>
 *   <li>Streams ({@link StreamScheduler}): work on the default stream runs before the call returns (after everything
 *       queued on other streams, as CUDA's legacy NULL stream orders itself); work on created streams is queued and
 *       runs in a seeded interleaving, ordered only by the stream's own order, events, host synchronization and the
 *       default stream. With {@link EmulatorOptions#orderCheck()}, a buffer region touched by two streams with
 *       nothing ordering the accesses (a write and any other access) is an error naming both streams, both operations
 *       and the region. An error of queued work is thrown by the next call that waits for its stream, and the stream
 *       stays failed.</li>
 *   <li>Blocks run one after another in a seeded shuffled order ({@link EmulatorOptions}), so code relying on block
 *       order fails. Since a block always sees what earlier blocks wrote, the memory-ordering check reports reads a GPU
 *       could serve stale: cross-block reads without a fence/atomic/fence chain or through L1, and .nc reads of data
 *       the launch writes (see {@code MemoryOrder} and docs/emulator.md).</li>
 *   <li>Errors a GPU would report late or never (out-of-bounds, misaligned, uninitialized reads, shared-memory races,
 *       barrier divergence, unsupported instructions) throw a {@link DeviceException} naming kernel, PTX line, block,
 *       thread and address: from {@link #launch} on the default stream, from the next call that waits for a created
 *       stream otherwise. Memory written before the error stays written.</li>
 *   <li>Leaks: {@link #close()} frees everything and, by default, throws a {@link DeviceException} listing the buffers
 *       that were still open ({@link EmulatorOptions#throwOnLeak()}); {@link #leakReport()} lists them either way.</li>
 * </ul>
 * Coverage: given a {@link Coverage} (or with {@value Coverage#ENV} set), every launch adds its per-PTX-instruction
 * execution counts to it.
 * Limits reported: those of the options' {@link Architecture} (sm_90 by default: 1024 threads per block, 48 KiB
 * shared memory per block, 227 KiB with the opt-in, 2048 threads and 32 blocks per SM) with the options'
 * {@code multiprocessorCount} (132 by default).
 *
 * <p>Occupancy as on that GPU: each kernel's registers come from ptxas for that architecture ({@link Kernel#resources()},
 * compiled when first asked, cached), {@link #maxActiveBlocksPerMultiprocessor} is NVIDIA's occupancy arithmetic
 * ({@link Occupancy}), and a launch a GPU would refuse (registers × threads beyond the register file, more threads than
 * {@code .maxntid} or the device allows, more shared memory than a block may have) throws a DeviceException naming
 * the kernel, grid, block and limit. A buffer holds at most 2 GiB. Not thread-safe beyond method-level
 * synchronization.
 */
public final class EmulatedDevice implements MeasuringDevice {
    private static final VarHandle I32 = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle I16 = MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.LITTLE_ENDIAN);
    static final int STATIC_SHARED_LIMIT = 48 * 1024;

    private final EmulatorOptions options;
    private final Coverage coverage;
    private final DeviceProperties properties;
    private final GlobalMemory memory = new GlobalMemory();
    private final Set<Buffer> buffers = new LinkedHashSet<>();
    private final Set<Module> modules = new LinkedHashSet<>();
    private final StreamScheduler streams;
    private final Stream defaultStream;
    /**
     * The most launches {@link #launchHistory()} keeps: the oldest go first. Unbounded, it grew by a record per launch
     * (about 740 bytes per training step) for as long as a device lived: the leak soak (LeakSoakMain) found it.
     */
    public static final int LAUNCH_HISTORY_LIMIT = 1024;

    private final java.util.ArrayDeque<LaunchRecord> launches = new java.util.ArrayDeque<>();
    private final List<String> leaks = new ArrayList<>();
    private TrafficMetrics metrics = TrafficMetrics.ZERO;
    private long bufferCount;
    private boolean closed;

    /** A device with {@link EmulatorOptions#defaults()}. */
    public EmulatedDevice() {
        this(EmulatorOptions.defaults());
    }

    public EmulatedDevice(EmulatorOptions options) {
        this(options, Coverage.fromEnvironment().orElse(null));
    }

    /**
     * A device whose launches add their per-instruction execution counts to {@code coverage} (null: none recorded,
     * even when {@value Coverage#ENV} is set).
     */
    public EmulatedDevice(EmulatorOptions options, Coverage coverage) {
        this.coverage = coverage;
        this.options = Objects.requireNonNull(options, "options");
        this.properties = options.architecture().properties(options.multiprocessorCount());
        this.streams = new StreamScheduler(options.orderCheck(), options.blockOrderSeed());
        this.defaultStream = new Stream(streams.defaultQueue());
    }

    public EmulatorOptions options() {
        return options;
    }

    /** The coverage this device records into, if any. */
    public java.util.Optional<Coverage> coverage() {
        return java.util.Optional.ofNullable(coverage);
    }

    @Override
    public String name() {
        return "PTX emulator (" + options.architecture().smName() + ", " + properties.multiprocessorCount() + " SMs)";
    }

    @Override
    public DeviceProperties properties() {
        return properties;
    }

    private void open() {
        if (closed) throw new IllegalStateException("EmulatedDevice '" + name() + "' is closed");
    }

    /** The queue of a stream given to an operation: one of this device's, not closed (null means the default stream). */
    private StreamScheduler.Queue stream(DeviceStream s) {
        if (s == null) return streams.defaultQueue();
        if (!(s instanceof Stream st) || st.device() != this) {
            throw new IllegalArgumentException("stream must be a stream of this EmulatedDevice, got " + s);
        }
        if (st.closed) throw new IllegalStateException(st + " is closed");
        return st.queue;
    }

    /** The footprint of a copy or memset: one byte range of one buffer. */
    private static StreamScheduler.Footprint range(Allocation a, long off, long bytes, boolean write) {
        StreamScheduler.Footprint f = new StreamScheduler.Footprint();
        if (bytes > 0) f.add(a, off, off + bytes, write);
        return f;
    }

    // ------------------------------------------------------------ memory

    @Override
    public synchronized DeviceBuffer allocate(long bytes) {
        open();
        if (bytes < 1) throw new IllegalArgumentException("bytes must be >= 1, got " + bytes);
        bufferCount++;
        Allocation a = memory.allocate(bytes, "buffer #" + bufferCount + " (" + bytes + " bytes)");
        Buffer b = new Buffer(a);
        buffers.add(b);
        return b;
    }

    /** The allocation behind a pointer, checking ownership, liveness and that {@code bytes} fit. */
    private Allocation target(DevicePointer p, long bytes, String what) {
        if (p == null) throw new IllegalArgumentException(what + " must not be null");
        if (!(p.buffer() instanceof Buffer b) || b.device() != this) {
            throw new IllegalArgumentException(what + " must be in a buffer of this EmulatedDevice, got " + p.buffer());
        }
        DeviceChecks.deviceRange(what, p, bytes);
        return b.alloc;
    }

    @Override
    public synchronized void copyToDevice(float[] src, int srcOffset, DevicePointer dst, int count, DeviceStream stream) {
        open();
        StreamScheduler.Queue q = stream(stream);
        DeviceChecks.hostRange("src", src, srcOffset, count);
        int[] words = new int[count];   // staged now, as a copy from pageable memory is: src may change after return
        for (int i = 0; i < count; i++) words[i] = Float.floatToRawIntBits(src[srcOffset + i]);
        writeWords(q, "copyToDevice of " + count + " floats", dst, words);
    }

    @Override
    public synchronized void copyToDevice(int[] src, int srcOffset, DevicePointer dst, int count, DeviceStream stream) {
        open();
        StreamScheduler.Queue q = stream(stream);
        DeviceChecks.hostRange("src", src, srcOffset, count);
        writeWords(q, "copyToDevice of " + count + " ints", dst, Arrays.copyOfRange(src, srcOffset, srcOffset + count));
    }

    /** Queues the write of {@code words} at dst (marking them initialized when it runs). */
    private void writeWords(StreamScheduler.Queue q, String what, DevicePointer dst, int[] words) {
        Allocation a = target(dst, 4L * words.length, "dst");
        int off = (int) dst.byteOffset();
        streams.submit(q, what, fp -> {
            for (int i = 0; i < words.length; i++) I32.set(a.data, off + 4 * i, words[i]);
            a.markInit(off, 4L * words.length);
        }, range(a, off, 4L * words.length, true));
    }

    /** Receives word i of a copy to the host. */
    private interface WordSink {
        void put(int i, int bits);
    }

    /** Reads {@code count} initialized 32-bit words at src into {@code sink}, after the work queued before on q. */
    private void readWords(StreamScheduler.Queue q, String what, DevicePointer src, int count, WordSink sink) {
        Allocation a = target(src, 4L * count, "src");
        int off = (int) src.byteOffset();
        streams.submit(q, what, fp -> {
            checkInitialized(a, off, 4L * count, "copyToHost");
            for (int i = 0; i < count; i++) sink.put(i, (int) I32.get(a.data, off + 4 * i));
        }, range(a, off, 4L * count, false));
        streams.syncQueue(q);   // complete when it returns
    }

    private void checkInitialized(Allocation a, long off, long bytes, String what) {
        if (!options.initCheck()) return;
        for (long i = off; i < off + bytes; i++) {
            if ((a.init[(int) (i >>> 6)] & (1L << (i & 63))) == 0) {
                throw new DeviceException(what + ": byte " + i + " of " + a.label
                        + " was never written since allocation (uninitialized device memory)");
            }
        }
    }

    @Override
    public synchronized void copyToHost(DevicePointer src, float[] dst, int dstOffset, int count, DeviceStream stream) {
        open();
        StreamScheduler.Queue q = stream(stream);
        DeviceChecks.hostRange("dst", dst, dstOffset, count);
        readWords(q, "copyToHost of " + count + " floats", src, count,
                (i, bits) -> dst[dstOffset + i] = Float.intBitsToFloat(bits));
    }

    @Override
    public synchronized void copyToHost(DevicePointer src, int[] dst, int dstOffset, int count, DeviceStream stream) {
        open();
        StreamScheduler.Queue q = stream(stream);
        DeviceChecks.hostRange("dst", dst, dstOffset, count);
        readWords(q, "copyToHost of " + count + " ints", src, count, (i, bits) -> dst[dstOffset + i] = bits);
    }

    /** 16-bit elements, little-endian, byte-exact (the interface's default would go through int words). */
    @Override
    public synchronized void copyToDevice(short[] src, int srcOffset, DevicePointer dst, int count,
                                          DeviceStream stream) {
        open();
        stream(stream);
        DeviceChecks.hostRange("src", src, srcOffset, count);
        Allocation a = target(dst, 2L * count, "dst");
        int off = (int) dst.byteOffset();
        for (int i = 0; i < count; i++) I16.set(a.data, off + 2 * i, src[srcOffset + i]);
        a.markInit(off, 2L * count);
    }

    @Override
    public synchronized void copyToHost(DevicePointer src, short[] dst, int dstOffset, int count,
                                        DeviceStream stream) {
        open();
        stream(stream);
        DeviceChecks.hostRange("dst", dst, dstOffset, count);
        Allocation a = target(src, 2L * count, "src");
        int off = (int) src.byteOffset();
        checkInitialized(a, off, 2L * count, "copyToHost");
        for (int i = 0; i < count; i++) dst[dstOffset + i] = (short) I16.get(a.data, off + 2 * i);
    }

    @Override
    public synchronized void copyDeviceToDevice(DevicePointer src, DevicePointer dst, long bytes, DeviceStream stream) {
        open();
        StreamScheduler.Queue q = stream(stream);
        DeviceChecks.byteCount(bytes);
        Allocation s = target(src, bytes, "src");
        Allocation d = target(dst, bytes, "dst");
        long so = src.byteOffset(), doff = dst.byteOffset();
        StreamScheduler.Footprint f = range(s, so, bytes, false);
        if (bytes > 0) f.add(d, doff, doff + bytes, true);
        streams.submit(q, "copyDeviceToDevice of " + bytes + " bytes", fp -> {
            checkInitialized(s, so, bytes, "copyDeviceToDevice");
            System.arraycopy(s.data, (int) so, d.data, (int) doff, (int) bytes);
            d.markInit(doff, bytes);
        }, f);
    }

    @Override
    public synchronized void memset(DevicePointer dst, byte value, long bytes, DeviceStream stream) {
        open();
        StreamScheduler.Queue q = stream(stream);
        DeviceChecks.byteCount(bytes);
        Allocation a = target(dst, bytes, "dst");
        long off = dst.byteOffset();
        streams.submit(q, "memset of " + bytes + " bytes", fp -> {
            Arrays.fill(a.data, (int) off, (int) (off + bytes), value);
            a.markInit(off, bytes);
        }, range(a, off, bytes, true));
    }

    /**
     * Every later launch fails if it leaves a non-zero 4-byte word in {@code [region, region + bytes)} (checked with
     * {@link EmulatorOptions#orderCheck()}), naming the kernel and the word's last writer.
     */
    @Override
    public synchronized void declareSelfResetting(DevicePointer region, long bytes) {
        open();
        Allocation a = target(region, bytes, "region");
        if (region.byteOffset() % 4 != 0 || bytes % 4 != 0 || bytes < 4) {
            throw new IllegalArgumentException("region: expected a 4-byte aligned offset and a positive multiple of 4"
                    + " bytes, got offset " + region.byteOffset() + " and " + bytes + " bytes");
        }
        if (a.zeroBetweenLaunches == null) a.zeroBetweenLaunches = new ArrayList<>();
        a.zeroBetweenLaunches.add(new long[]{region.byteOffset(), bytes});
    }

    // ------------------------------------------------------------ modules and launches

    @Override
    public synchronized DeviceModule loadModule(String name, String ptx) {
        open();
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(ptx, "ptx");
        List<Allocation> vars = new ArrayList<>();
        PtxModule parsed = ParsedModules.get(name, ptx);
        if (parsed != null) {
            Module m = new Module(name, ptx, parsed, vars);
            modules.add(m);
            return m;
        }
        try {
            parsed = PtxParser.parse(name, ptx, (var, bytes, init) -> {
                Allocation a = memory.allocate(bytes, "module variable " + var + " of " + name);
                System.arraycopy(init, 0, a.data, 0, (int) Math.min(init.length, bytes));
                a.markInit(0, bytes);
                vars.add(a);
                return a.base;
            });
        } catch (RuntimeException e) {
            for (Allocation a : vars) memory.free(a); // a failed load leaves nothing behind
            throw e;
        }
        if (vars.isEmpty()) ParsedModules.put(name, ptx, parsed); // no device addresses baked in: reusable
        Module m = new Module(name, ptx, parsed, vars);
        modules.add(m);
        return m;
    }

    @Override
    public synchronized void launch(Kernel kernel, Dim3 grid, Dim3 block, int dynamicSharedBytes, DeviceStream stream,
                                    KernelArgs args) {
        launch(kernel, grid, block, dynamicSharedBytes, stream, args, false);
    }

    /**
     * A cooperative launch: the whole grid must be resident at once (at most {@link #maxActiveBlocksPerMultiprocessor}
     * × the SM count blocks, with the kernel's registers as compiled for this architecture), as
     * {@code cuLaunchCooperativeKernel} requires; a larger grid is refused with a DeviceException naming the kernel,
     * the grid and the limit ({@code CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE}). The blocks then run interleaved, so
     * that they may wait for each other at a grid-wide barrier (see the interpreter's class comment).
     */
    @Override
    public synchronized void launchCooperative(Kernel kernel, Dim3 grid, Dim3 block, int dynamicSharedBytes,
                                               DeviceStream stream, KernelArgs args) {
        launch(kernel, grid, block, dynamicSharedBytes, stream, args, true);
    }

    /** The emulator launches cooperatively (every GPU it models, sm_75 and newer, does). */
    @Override
    public boolean supportsCooperativeLaunch() {
        return true;
    }

    private void launch(Kernel kernel, Dim3 grid, Dim3 block, int dynamicSharedBytes, DeviceStream stream,
                        KernelArgs args, boolean cooperative) {
        open();
        StreamScheduler.Queue q = stream(stream);
        Objects.requireNonNull(kernel, "kernel");
        Objects.requireNonNull(grid, "grid");
        Objects.requireNonNull(block, "block");
        Objects.requireNonNull(args, "args");
        if (!(kernel instanceof EKernel k) || k.module.device() != this) {
            throw new IllegalArgumentException("kernel " + kernel.name() + " was not loaded on this device");
        }
        if (k.module.closed) throw new IllegalStateException("module " + k.module.name + " of kernel " + k.fn.name + " is closed");
        String where = "launch of " + k.fn.name + " with grid " + grid + " and block " + block;
        if (block.volume() > properties.maxThreadsPerBlock() || block.x() > 1024 || block.y() > 1024 || block.z() > 64) {
            throw new DeviceException(where + ": block has " + block.volume() + " threads, more than the limit of "
                    + properties.maxThreadsPerBlock() + " (x, y <= 1024, z <= 64) (CUDA_ERROR_INVALID_VALUE)");
        }
        if (grid.y() > 65535 || grid.z() > 65535) {
            throw new DeviceException(where + ": grid y and z must be <= 65535 (CUDA_ERROR_INVALID_VALUE)");
        }
        if (dynamicSharedBytes < 0) throw new IllegalArgumentException("dynamicSharedBytes must be >= 0, got " + dynamicSharedBytes);
        PtxFunction fn = k.fn;
        if (fn.staticSharedBytes > STATIC_SHARED_LIMIT) {
            throw new DeviceException(where + ": " + fn.staticSharedBytes + " bytes of static shared memory exceed "
                    + STATIC_SHARED_LIMIT);
        }
        long totalShared = (long) (dynamicSharedBytes > 0 ? fn.dynamicSharedOffset : fn.staticSharedBytes) + dynamicSharedBytes;
        if (totalShared > properties.maxSharedMemoryPerBlockOptin()) {
            throw new DeviceException(where + ": needs " + totalShared + " bytes of shared memory per block ("
                    + fn.staticSharedBytes + " static + " + dynamicSharedBytes + " dynamic), more than the "
                    + properties.maxSharedMemoryPerBlockOptin() + " available with the opt-in (CUDA_ERROR_INVALID_VALUE)");
        }
        // A block of at most 8 warps fits the register file whatever its register count (8 x 8192 = 65536), so the
        // kernel is compiled for its registers only when the block is larger.
        // (A cooperative grid's co-residency depends on the registers, so it always compiles the kernel.)
        KernelResources resources = block.volume() <= 8 * 32 && !cooperative ? k.module.resourcesWithoutRegisters(fn)
                : k.resources();
        Occupancy.Result occupancy = Occupancy.of(properties, resources, (int) block.volume(), dynamicSharedBytes);
        if (occupancy.refusal() != null) {
            throw new DeviceException(where + " on " + options.architecture().smName() + ": " + occupancy.refusal()
                    + " [" + resources.registersPerThread() + " registers per thread from " + resources.source() + "]");
        }
        if (cooperative) {
            long limit = (long) occupancy.blocksPerSm() * properties.multiprocessorCount();
            if (grid.volume() > limit) {
                throw new DeviceException("cooperative " + where + " on " + options.architecture().smName() + ": "
                        + grid.volume() + " blocks cannot all be resident at once: at most " + occupancy.blocksPerSm()
                        + " blocks of " + block.volume() + " threads per SM (" + resources.registersPerThread()
                        + " registers per thread from " + resources.source() + ", " + (fn.staticSharedBytes
                        + dynamicSharedBytes) + " bytes of shared memory per block) x " + properties.multiprocessorCount()
                        + " SMs = " + limit + " (CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE: a grid-wide barrier over blocks"
                        + " that are not resident would hang)");
            }
        }
        byte[] params = marshal(fn, args, where);
        streams.submit(q, (cooperative ? "cooperative " : "") + "launch of " + fn.name + " (grid " + grid + ", block "
                + block + ")", fp -> {
            Interpreter it = new Interpreter(fn, memory, options, grid, block, dynamicSharedBytes, params,
                    coverage != null, fp, cooperative);
            try {
                it.run();
            } finally {
                if (coverage != null) it.addCoverageTo(coverage);
                TrafficMetrics t = it.metrics();
                if (launches.size() == LAUNCH_HISTORY_LIMIT) launches.removeFirst();
                launches.addLast(new LaunchRecord(fn.name, grid, block, t, q.name()));
                metrics = metrics.plus(t);
            }
        }, null);
    }

    private byte[] marshal(PtxFunction fn, KernelArgs args, String where) {
        List<KernelArgs.Arg> list = args.list();
        if (list.size() != fn.params.size()) {
            throw new DeviceException(where + ": kernel takes " + fn.params.size() + " parameters, got "
                    + list.size() + " arguments");
        }
        byte[] out = new byte[Math.max(1, fn.paramBytes)];
        for (int i = 0; i < list.size(); i++) {
            KernelArgs.Arg a = list.get(i);
            PtxFunction.Param p = fn.params.get(i);
            if (a.kind().bytes() != p.size()) {
                throw new DeviceException(where + ": argument " + i + " (" + p.name() + ", ." + p.typeName()
                        + ", " + p.size() + " bytes) given as " + a.kind() + " (" + a.kind().bytes() + " bytes)");
            }
            long bits;
            switch (a.kind()) {
                case POINTER: {
                    DevicePointer ptr = (DevicePointer) a.value();
                    Allocation al = target(ptr, 0, "argument " + i + " (" + p.name() + ")");
                    bits = al.base + ptr.byteOffset();
                    break;
                }
                case I32: bits = (Integer) a.value(); break;
                case I64: bits = (Long) a.value(); break;
                case F32: bits = Float.floatToRawIntBits((Float) a.value()); break;
                default: bits = Double.doubleToRawLongBits((Double) a.value()); break;
            }
            MemoryUnit.write(out, p.offset(), p.size(), bits);
        }
        return out;
    }

    @Override
    public synchronized int maxActiveBlocksPerMultiprocessor(Kernel kernel, int blockThreads, int dynamicSharedBytes) {
        open();
        Objects.requireNonNull(kernel, "kernel");
        if (!(kernel instanceof EKernel k) || k.module.device() != this) {
            throw new IllegalArgumentException("kernel " + kernel.name() + " was not loaded on this device");
        }
        return Occupancy.of(properties, k.resources(), blockThreads, dynamicSharedBytes).blocksPerSm();
    }

    // ------------------------------------------------------------ streams, metrics, close

    @Override
    public DeviceStream defaultStream() {
        return defaultStream;
    }

    @Override
    public synchronized DeviceStream createStream() {
        open();
        return new Stream(streams.newQueue());
    }

    @Override
    public synchronized DeviceEvent createEvent() {
        open();
        return new Event();
    }

    @Override
    public synchronized void synchronize() {
        open();
        streams.syncAll();
    }

    /** Everything measured so far, after running the work still queued on any stream. */
    @Override
    public synchronized TrafficMetrics metrics() {
        streams.drainAll();
        return metrics;
    }

    @Override
    public synchronized void resetMetrics() {
        streams.drainAll();
        metrics = TrafficMetrics.ZERO;
        launches.clear();
    }

    /**
     * The launches since the last {@link #resetMetrics()}, in the order they ran (unmodifiable copy): all of them, up
     * to the last {@link #LAUNCH_HISTORY_LIMIT}. {@link #metrics()} counts every launch.
     */
    public synchronized List<LaunchRecord> launchHistory() {
        streams.drainAll();
        return List.copyOf(launches);
    }

    /** Buffers still open when {@link #close()} ran (empty before close, or when none leaked). */
    public synchronized List<String> leakReport() {
        return Collections.unmodifiableList(new ArrayList<>(leaks));
    }

    /** Buffers currently allocated and not closed. */
    public synchronized int liveBufferCount() {
        return buffers.size();
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        streams.drainAll();   // queued work completes before the memory goes, as on a GPU
        closed = true;
        DeviceException unreported = streams.takeUnreported();
        for (Buffer b : new ArrayList<>(buffers)) {
            leaks.add(b.alloc.label);
            b.release();
        }
        for (Module m : new ArrayList<>(modules)) m.close();
        if (unreported != null) {
            throw new DeviceException("EmulatedDevice closed; work queued earlier had failed and no call reported it: "
                    + unreported.getMessage(), unreported);
        }
        if (!leaks.isEmpty() && options.throwOnLeak()) {
            throw new DeviceException("EmulatedDevice closed with " + leaks.size() + " leaked allocation(s): "
                    + String.join(", ", leaks));
        }
    }

    // ------------------------------------------------------------ owned objects

    private final class Buffer implements DeviceBuffer {
        final Allocation alloc;
        private boolean bufClosed;

        Buffer(Allocation alloc) {
            this.alloc = alloc;
        }

        @Override
        public long bytes() {
            return alloc.size;
        }

        @Override
        public Device device() {
            return EmulatedDevice.this;
        }

        @Override
        public boolean isClosed() {
            synchronized (EmulatedDevice.this) {
                return bufClosed;
            }
        }

        void release() {
            bufClosed = true;
            memory.free(alloc);
            buffers.remove(this);
        }

        /** Frees the memory once the work queued on any stream has run (cuMemFree synchronizes the device too). */
        @Override
        public void close() {
            synchronized (EmulatedDevice.this) {
                if (bufClosed) return;
                if (!closed) streams.drainAll();
                release();
            }
        }

        @Override
        public String toString() {
            return "EmulatedDevice " + alloc.label + " at 0x" + Long.toHexString(alloc.base) + (bufClosed ? " (closed)" : "");
        }
    }

    private final class Module implements DeviceModule {
        final String name;
        final String ptx;
        final PtxModule parsed;
        final List<Allocation> vars;
        final Map<String, KernelResources> resources = new HashMap<>();
        final Map<String, KernelResources> uncompiled = new HashMap<>();
        boolean closed;

        Module(String name, String ptx, PtxModule parsed, List<Allocation> vars) {
            this.name = name;
            this.ptx = ptx;
            this.parsed = parsed;
            this.vars = vars;
        }

        /** The kernel's registers and shared memory as ptxas compiles it for this device's architecture. */
        KernelResources resources(PtxFunction fn) {
            synchronized (EmulatedDevice.this) {
                KernelResources r = resources.get(fn.name);
                if (r == null) {
                    r = PtxResources.of(name, ptx, fn.name, options.architecture());
                    if (!r.registersKnown()) { // no compiler here: our own parse of the shared declarations
                        r = new KernelResources(r.registersPerThread(), fn.staticSharedBytes, r.localBytesPerThread(),
                                r.maxThreadsPerBlock(), r.source());
                    }
                    resources.put(fn.name, r);
                }
                return r;
            }
        }

        /** The resources known without compiling: registers UNKNOWN, unless already compiled. */
        KernelResources resourcesWithoutRegisters(PtxFunction fn) {
            synchronized (EmulatedDevice.this) {
                KernelResources r = resources.get(fn.name);
                if (r != null) return r;
                return uncompiled.computeIfAbsent(fn.name, n -> new KernelResources(KernelResources.UNKNOWN,
                        fn.staticSharedBytes, 0,
                        PtxResources.maxntid(PtxResources.kernelText(ptx, n), Architecture.MAX_THREADS_PER_BLOCK),
                        "not compiled (registers cannot limit a block of 256 threads or fewer)"));
            }
        }

        EmulatedDevice device() {
            return EmulatedDevice.this;
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public Kernel kernel(String entryName) {
            synchronized (EmulatedDevice.this) {
                if (closed) throw new IllegalStateException("module " + name + " is closed");
                PtxFunction f = parsed.functions.get(entryName);
                if (f == null || !f.entry) {
                    throw new DeviceException("module " + name + " has no entry " + entryName + "; entries: "
                            + parsed.functions.values().stream().filter(x -> x.entry).map(x -> x.name).toList());
                }
                return new EKernel(this, Linker.link(parsed, f));
            }
        }

        /** Instructions this emulator does not implement (empty when the module can run entirely). */
        List<String> unsupported() {
            return parsed.unsupported();
        }

        @Override
        public void close() {
            synchronized (EmulatedDevice.this) {
                if (closed) return;
                if (!EmulatedDevice.this.closed) streams.drainAll();   // queued launches of it run first
                closed = true;
                for (Allocation a : vars) memory.free(a);
                modules.remove(this);
            }
        }
    }

    private record EKernel(Module module, PtxFunction fn) implements Kernel {
        @Override
        public String name() {
            return fn.name;
        }

        @Override
        public KernelResources resources() {
            return module.resources(fn);
        }
    }

    /** The instructions of a loaded module this emulator does not implement, as "function: text (line N)". */
    public static List<String> unsupportedInstructions(DeviceModule module) {
        if (!(module instanceof Module m)) throw new IllegalArgumentException("not a module of an EmulatedDevice");
        return m.unsupported();
    }

    /** A stream: the default stream (queue 0) or a created one, whose queue runs in the scheduler's interleaving. */
    private final class Stream implements DeviceStream {
        final StreamScheduler.Queue queue;
        private volatile boolean closed;

        Stream(StreamScheduler.Queue queue) {
            this.queue = queue;
        }

        EmulatedDevice device() {
            return EmulatedDevice.this;
        }

        @Override
        public void synchronize() {
            synchronized (EmulatedDevice.this) {
                open();
                if (closed) throw new IllegalStateException(this + " is closed");
                streams.syncQueue(queue);
            }
        }

        @Override
        public void waitFor(DeviceEvent event) {
            synchronized (EmulatedDevice.this) {
                open();
                if (closed) throw new IllegalStateException(this + " is closed");
                streams.waitFor(queue, event(event).captured());
            }
        }

        @Override
        public boolean isClosed() {
            return closed;
        }

        /** Work already queued still runs (at the next synchronization); the default stream ignores close. */
        @Override
        public void close() {
            if (queue.id != 0) closed = true;
        }

        @Override
        public String toString() {
            return queue.name() + " of " + name() + (closed ? " (closed)" : "");
        }
    }

    private Event event(DeviceEvent e) {
        if (!(e instanceof Event ev) || ev.device() != this) {
            throw new IllegalArgumentException("event must be an event of this EmulatedDevice, got " + e);
        }
        return ev;
    }

    /** An event: the capture of its last record (null before the first). */
    private final class Event implements DeviceEvent {
        private StreamScheduler.Token token;
        private boolean closed;

        EmulatedDevice device() {
            return EmulatedDevice.this;
        }

        StreamScheduler.Token captured() {
            if (closed) throw new IllegalStateException("event is closed");
            return token;
        }

        @Override
        public void record(DeviceStream stream) {
            synchronized (EmulatedDevice.this) {
                open();
                if (closed) throw new IllegalStateException("event is closed");
                StreamScheduler.Queue q = stream(stream);
                token = streams.record(q);
            }
        }

        @Override
        public void synchronize() {
            synchronized (EmulatedDevice.this) {
                open();
                StreamScheduler.Token t = captured();
                if (t != null) streams.syncToken(t);
            }
        }

        @Override
        public void close() {
            synchronized (EmulatedDevice.this) {
                closed = true;
            }
        }

        @Override
        public String toString() {
            return "event of " + name() + (closed ? " (closed)" : "");
        }
    }
}
