package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceChecks;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceProperties;
import io.github.batchnorm4j.gpu.DeviceEvent;
import io.github.batchnorm4j.gpu.DeviceStream;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.Kernel;
import io.github.batchnorm4j.gpu.KernelArgs;
import io.github.batchnorm4j.gpu.KernelResources;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUmodule;
import jcuda.driver.CUresult;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUstream;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@link Device} over the CUDA driver API through JCuda: one GPU, its primary context, cuMemAlloc buffers, PTX modules,
 * kernel launches and streams. Every driver call is checked; a failure is a {@link DeviceException} naming the CUDA
 * error (e.g. {@code CUDA_ERROR_OUT_OF_MEMORY}), the call and, for launches, the kernel, grid and block.
 *
 * <p>Context: the device's <em>primary</em> context (cuDevicePrimaryCtxRetain), the one the CUDA runtime API, cuBLAS,
 * cuDNN and NCCL use, so buffers allocated here can be handed to those libraries (see {@link #address},
 * {@link #streamHandle} and {@link #makeCurrent()}). Every method that calls the driver first asks the driver which
 * context is current on the calling thread (cuCtxGetCurrent) and makes this device's current when it is not, and leaves
 * it current (as cudaSetDevice would). So any interleaving is right: several CudaDevices on one thread, and another
 * library or user code switching the thread's context between two calls. (Remembering "current on this thread" per
 * device, as this class once did, runs device A's next call in device B's context once B was used on the thread.)
 * Cost: one cuCtxGetCurrent per call, a read of the driver's thread-local state behind one JNI call — tens of
 * nanoseconds against the microseconds of a launch or copy; cuCtxSetCurrent only when the context actually changes.
 * The context is released (not destroyed: others may hold it) on {@link #close()}.
 *
 * <p>Streams: the {@link #defaultStream() default stream} is CUDA's legacy NULL stream, which orders itself with every
 * other blocking stream; {@link #createStream()} makes blocking streams (flags 0) for the same reason;
 * {@link #createEvent()} makes events without timing, for {@link DeviceStream#waitFor}.
 *
 * <p>Ownership: buffers, modules and streams belong to their caller and are closed by it; closing the device frees any
 * buffer still open and then reports those leaks as a DeviceException. Not thread-safe for concurrent use of one
 * buffer or stream; allocation and freeing may happen on any thread.
 */
public final class CudaDevice implements Device {
    /** Dynamic shared memory above this needs the per-function opt-in attribute (CUDA's default per-block limit). */
    static final int SHARED_BYTES_WITHOUT_OPT_IN = 48 * 1024;

    private final DriverApi api;
    private final int ordinal;
    private final CUdevice device = new CUdevice();
    private volatile Boolean cooperative;   // CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH, read on first use
    private final CUcontext context = new CUcontext();
    private final String name;
    private final DeviceProperties properties;
    private final CudaStream defaultStream;
    private final Set<CudaBuffer> live = Collections.newSetFromMap(new IdentityHashMap<>());
    private volatile boolean closed;

    /**
     * Opens CUDA device {@code ordinal} (0 for the first GPU).
     *
     * @throws UnsatisfiedLinkError or NoClassDefFoundError when JCuda's native library cannot load (no NVIDIA driver);
     *                              ask {@link CudaProbe#probe()} first for a readable reason
     * @throws DeviceException      on any driver error (no device, ordinal out of range, ...)
     */
    public CudaDevice(int ordinal) {
        this(new JCudaDriverApi(), ordinal);
    }

    CudaDevice(DriverApi api, int ordinal) {
        this.api = api;
        this.ordinal = ordinal;
        CudaErrors.check(api.init(), "cuInit(0)");
        int[] count = new int[1];
        CudaErrors.check(api.deviceGetCount(count), "cuDeviceGetCount");
        if (ordinal < 0 || ordinal >= count[0]) {
            throw new DeviceException("CUDA device ordinal " + ordinal + " is out of range: " + count[0]
                    + " device(s) present");
        }
        CudaErrors.check(api.deviceGet(device, ordinal), "cuDeviceGet(ordinal=" + ordinal + ")");
        this.name = readName(api, device, ordinal);
        this.properties = readProperties(api, device, ordinal);
        CudaErrors.check(api.devicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain(device=" + ordinal + ")");
        try {
            CudaErrors.check(api.ctxSetCurrent(context), "cuCtxSetCurrent(primary context of device " + ordinal + ")");
        } catch (RuntimeException e) {
            api.devicePrimaryCtxRelease(device); // do not leak the retain; the first error is the one to report
            throw e;
        }
        this.defaultStream = new CudaStream(this, new CUstream(), false);
    }

    private static String readName(DriverApi api, CUdevice device, int ordinal) {
        byte[] buf = new byte[256];
        CudaErrors.check(api.deviceGetName(buf, device), "cuDeviceGetName(device=" + ordinal + ")");
        int n = 0;
        while (n < buf.length && buf[n] != 0) n++;
        return new String(buf, 0, n, StandardCharsets.UTF_8);
    }

    /** Reads the launch-relevant limits with cuDeviceGetAttribute. */
    static DeviceProperties readProperties(DriverApi api, CUdevice device, int ordinal) {
        int sms = attribute(api, device, ordinal, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "MULTIPROCESSOR_COUNT");
        int threads = attribute(api, device, ordinal, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, "MAX_THREADS_PER_BLOCK");
        int shared = attribute(api, device, ordinal, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, "MAX_SHARED_MEMORY_PER_BLOCK");
        int optin = attribute(api, device, ordinal, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN");
        int warp = attribute(api, device, ordinal, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_WARP_SIZE, "WARP_SIZE");
        int major = attribute(api, device, ordinal, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "COMPUTE_CAPABILITY_MAJOR");
        int minor = attribute(api, device, ordinal, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "COMPUTE_CAPABILITY_MINOR");
        int threadsPerSm = attribute(api, device, ordinal, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR, "MAX_THREADS_PER_MULTIPROCESSOR");
        int blocksPerSm = attribute(api, device, ordinal, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR, "MAX_BLOCKS_PER_MULTIPROCESSOR");
        int regsPerSm = attribute(api, device, ordinal, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR, "MAX_REGISTERS_PER_MULTIPROCESSOR");
        int regsPerBlock = attribute(api, device, ordinal, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK, "MAX_REGISTERS_PER_BLOCK");
        int sharedPerSm = attribute(api, device, ordinal, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR, "MAX_SHARED_MEMORY_PER_MULTIPROCESSOR");
        int reserved = attribute(api, device, ordinal, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK, "RESERVED_SHARED_MEMORY_PER_BLOCK");
        return new DeviceProperties(sms, threads, shared, Math.max(shared, optin), warp, major * 10 + minor,
                threadsPerSm, blocksPerSm, regsPerSm, regsPerBlock, sharedPerSm, reserved);
    }

    private static int attribute(DriverApi api, CUdevice device, int ordinal, int attribute, String attributeName) {
        int[] v = new int[1];
        CudaErrors.check(api.deviceGetAttribute(v, attribute, device),
                "cuDeviceGetAttribute(CU_DEVICE_ATTRIBUTE_" + attributeName + ", device=" + ordinal + ")");
        return v[0];
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public DeviceProperties properties() {
        return properties;
    }

    /** The CUDA device ordinal. */
    public int ordinal() {
        return ordinal;
    }

    // ---- interop with other CUDA libraries (cuDNN, cuBLAS) ----

    /**
     * The raw device address of {@code p} (allocation base plus byte offset), for handing a buffer of a CudaDevice to
     * another CUDA library in the same (primary) context. The buffer must stay open while the address is in use.
     *
     * @throws IllegalArgumentException if {@code p} is not in a buffer of a CudaDevice
     * @throws IllegalStateException    if the buffer is closed
     */
    public static CUdeviceptr address(DevicePointer p) {
        if (p == null) throw new IllegalArgumentException("device pointer must not be null");
        if (!(p.buffer() instanceof CudaBuffer b)) {
            throw new IllegalArgumentException("expected a buffer allocated by a CudaDevice, got " + p.buffer());
        }
        return b.base().withByteOffset(p.byteOffset());
    }

    /**
     * The raw device address of {@code p} as a number (the CUdeviceptr value plus the byte offset), for a CUDA library
     * bound through other Java bindings (NCCL through JavaCPP, which takes addresses as {@code Pointer}s). The buffer
     * must stay open while the address is in use.
     */
    public static long rawAddress(DevicePointer p) {
        if (p == null) throw new IllegalArgumentException("device pointer must not be null");
        if (!(p.buffer() instanceof CudaBuffer b)) {
            throw new IllegalArgumentException("expected a buffer allocated by a CudaDevice, got " + p.buffer());
        }
        return NativeHandles.of(b.base()) + p.byteOffset();
    }

    /**
     * The CUstream behind a stream of a CudaDevice as a number: a {@code cudaStream_t} is the same
     * {@code struct CUstream_st*} as a CUstream, so a runtime-API library takes it as is; 0 is the legacy default
     * stream (this device's {@link #defaultStream()}).
     */
    public static long rawStreamHandle(DeviceStream s) {
        return NativeHandles.of(streamHandle(s));
    }

    /**
     * The CUstream behind a stream of a CudaDevice (the legacy NULL stream for the default stream), for
     * {@code cudnnSetStream}/{@code cublasSetStream}.
     */
    public static CUstream streamHandle(DeviceStream s) {
        if (!(s instanceof CudaStream cs)) {
            throw new IllegalArgumentException("expected a stream of a CudaDevice, got " + s);
        }
        return cs.handle();
    }

    // ---- memory ----

    @Override
    public DeviceBuffer allocate(long bytes) {
        checkOpen();
        if (bytes < 1) throw new IllegalArgumentException("bytes must be >= 1, got " + bytes);
        CUdeviceptr p = new CUdeviceptr();
        bindContext();
        CudaErrors.check(api.memAlloc(p, bytes), "cuMemAlloc(bytes=" + bytes + ")");
        CudaBuffer b = new CudaBuffer(this, p, bytes);
        synchronized (live) {
            live.add(b);
        }
        return b;
    }

    /** Called by {@link CudaBuffer#close()}. */
    void free(CudaBuffer b, CUdeviceptr p) {
        synchronized (live) {
            if (!live.remove(b)) return; // the device already freed it while closing
        }
        bindContext();
        CudaErrors.check(api.memFree(p), "cuMemFree(" + b.bytes() + " bytes)");
    }

    /** Number of buffers allocated and not yet closed. */
    public int liveBuffers() {
        synchronized (live) {
            return live.size();
        }
    }

    @Override
    public void copyToDevice(float[] src, int srcOffset, DevicePointer dst, int count, DeviceStream stream) {
        checkOpen();
        DeviceChecks.hostRange("src", src, srcOffset, count);
        CudaBuffer b = target("dst", dst, (long) count * Float.BYTES);
        CUstream s = stream("stream", stream);
        bindContext();
        CudaErrors.check(api.memcpyHtoDAsync(b.base(), dst.byteOffset(), src, srcOffset, count, s),
                "cuMemcpyHtoDAsync(" + count + " floats to offset " + dst.byteOffset() + ")");
    }

    @Override
    public void copyToDevice(int[] src, int srcOffset, DevicePointer dst, int count, DeviceStream stream) {
        checkOpen();
        DeviceChecks.hostRange("src", src, srcOffset, count);
        CudaBuffer b = target("dst", dst, (long) count * Integer.BYTES);
        CUstream s = stream("stream", stream);
        bindContext();
        CudaErrors.check(api.memcpyHtoDAsync(b.base(), dst.byteOffset(), src, srcOffset, count, s),
                "cuMemcpyHtoDAsync(" + count + " ints to offset " + dst.byteOffset() + ")");
    }

    @Override
    public void copyToHost(DevicePointer src, float[] dst, int dstOffset, int count, DeviceStream stream) {
        checkOpen();
        DeviceChecks.hostRange("dst", dst, dstOffset, count);
        CudaBuffer b = target("src", src, (long) count * Float.BYTES);
        CUstream s = stream("stream", stream);
        bindContext();
        CudaErrors.check(api.memcpyDtoHAsync(dst, dstOffset, b.base(), src.byteOffset(), count, s),
                "cuMemcpyDtoHAsync(" + count + " floats from offset " + src.byteOffset() + ")");
        // The interface promises a completed copy; this also surfaces errors of earlier asynchronous work.
        CudaErrors.check(api.streamSynchronize(s), "cuStreamSynchronize(after cuMemcpyDtoHAsync)");
    }

    @Override
    public void copyToHost(DevicePointer src, int[] dst, int dstOffset, int count, DeviceStream stream) {
        checkOpen();
        DeviceChecks.hostRange("dst", dst, dstOffset, count);
        CudaBuffer b = target("src", src, (long) count * Integer.BYTES);
        CUstream s = stream("stream", stream);
        bindContext();
        CudaErrors.check(api.memcpyDtoHAsync(dst, dstOffset, b.base(), src.byteOffset(), count, s),
                "cuMemcpyDtoHAsync(" + count + " ints from offset " + src.byteOffset() + ")");
        CudaErrors.check(api.streamSynchronize(s), "cuStreamSynchronize(after cuMemcpyDtoHAsync)");
    }

    @Override
    public void copyDeviceToDevice(DevicePointer src, DevicePointer dst, long bytes, DeviceStream stream) {
        checkOpen();
        DeviceChecks.byteCount(bytes);
        CudaBuffer s = target("src", src, bytes);
        CudaBuffer d = target("dst", dst, bytes);
        CUstream st = stream("stream", stream);
        bindContext();
        CudaErrors.check(api.memcpyDtoDAsync(d.base(), dst.byteOffset(), s.base(), src.byteOffset(), bytes, st),
                "cuMemcpyDtoDAsync(bytes=" + bytes + ")");
    }

    @Override
    public void memset(DevicePointer dst, byte value, long bytes, DeviceStream stream) {
        checkOpen();
        DeviceChecks.byteCount(bytes);
        CudaBuffer d = target("dst", dst, bytes);
        CUstream st = stream("stream", stream);
        bindContext();
        CudaErrors.check(api.memsetD8Async(d.base(), dst.byteOffset(), value, bytes, st),
                "cuMemsetD8Async(bytes=" + bytes + ")");
    }

    // ---- modules and launches ----

    @Override
    public DeviceModule loadModule(String name, String ptx) {
        checkOpen();
        if (name == null) throw new IllegalArgumentException("module name must not be null");
        if (ptx == null || ptx.isEmpty()) throw new IllegalArgumentException("ptx of module " + name + " must not be empty");
        CUmodule m = new CUmodule();
        bindContext();
        int r = api.moduleLoadData(m, ptx);
        String hint = null;
        if (r == CUresult.CUDA_ERROR_UNSUPPORTED_PTX_VERSION || r == CUresult.CUDA_ERROR_INVALID_PTX) {
            hint = "the NVIDIA driver is too old for this PTX: batchnorm4j ships PTX ISA 8.0, which needs a CUDA 12.0 or "
                    + "newer driver";
        }
        CudaErrors.check(r, "cuModuleLoadData(module=" + name + ")", hint);
        return new CudaModule(this, name, m, PtxSignatures.parse(ptx));
    }

    CUfunction getFunction(CUmodule module, String moduleName, String entry) {
        checkOpen();
        CUfunction f = new CUfunction();
        bindContext();
        CudaErrors.check(api.moduleGetFunction(f, module, entry),
                "cuModuleGetFunction(module=" + moduleName + ", kernel=" + entry + ")");
        return f;
    }

    void unloadModule(CUmodule module, String moduleName) {
        if (closed) return; // the context went with the device
        bindContext();
        CudaErrors.check(api.moduleUnload(module), "cuModuleUnload(module=" + moduleName + ")");
    }

    /** cuFuncGetAttribute for the resources of {@code k} (registers, static shared and local bytes, block limit). */
    KernelResources resources(CudaKernel k) {
        checkOpen();
        k.cudaModule().checkOpen();
        bindContext();
        int regs = functionAttribute(k, CUfunction_attribute.CU_FUNC_ATTRIBUTE_NUM_REGS, "NUM_REGS");
        int shared = functionAttribute(k, CUfunction_attribute.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, "SHARED_SIZE_BYTES");
        int local = functionAttribute(k, CUfunction_attribute.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, "LOCAL_SIZE_BYTES");
        int threads = functionAttribute(k, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, "MAX_THREADS_PER_BLOCK");
        return new KernelResources(regs, shared, local, threads, "cuFuncGetAttribute on " + name);
    }

    private int functionAttribute(CudaKernel k, int attribute, String attributeName) {
        int[] v = new int[1];
        CudaErrors.check(api.funcGetAttribute(v, attribute, k.function()),
                "cuFuncGetAttribute(CU_FUNC_ATTRIBUTE_" + attributeName + ", kernel=" + k.name() + ")");
        return v[0];
    }

    @Override
    public int maxActiveBlocksPerMultiprocessor(Kernel kernel, int blockThreads, int dynamicSharedBytes) {
        checkOpen();
        if (!(kernel instanceof CudaKernel k) || k.cudaModule().device() != this) {
            throw new IllegalArgumentException("kernel must come from a module loaded by this CudaDevice, got " + kernel);
        }
        k.cudaModule().checkOpen();
        if (blockThreads < 1) throw new IllegalArgumentException("blockThreads must be >= 1, got " + blockThreads);
        if (dynamicSharedBytes < 0) throw new IllegalArgumentException("dynamicSharedBytes must be >= 0, got " + dynamicSharedBytes);
        int[] blocks = new int[1];
        bindContext();
        CudaErrors.check(api.occupancyMaxActiveBlocksPerMultiprocessor(blocks, k.function(), blockThreads, dynamicSharedBytes),
                "cuOccupancyMaxActiveBlocksPerMultiprocessor(kernel=" + k.name() + ", blockSize=" + blockThreads
                        + ", dynamicSMemSize=" + dynamicSharedBytes + ")");
        return blocks[0];
    }

    @Override
    public void launch(Kernel kernel, Dim3 grid, Dim3 block, int dynamicSharedBytes, DeviceStream stream,
                       KernelArgs args) {
        launch(kernel, grid, block, dynamicSharedBytes, stream, args, false);
    }

    /** cuLaunchCooperativeKernel: the driver refuses a grid that cannot be co-resident (COOPERATIVE_LAUNCH_TOO_LARGE). */
    @Override
    public void launchCooperative(Kernel kernel, Dim3 grid, Dim3 block, int dynamicSharedBytes, DeviceStream stream,
                                  KernelArgs args) {
        if (!supportsCooperativeLaunch()) {
            throw new UnsupportedOperationException(name + " cannot launch kernels cooperatively"
                    + " (CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH is 0)");
        }
        launch(kernel, grid, block, dynamicSharedBytes, stream, args, true);
    }

    /** CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH, read once. */
    @Override
    public boolean supportsCooperativeLaunch() {
        checkOpen();
        if (cooperative == null) {
            bindContext();
            cooperative = attribute(api, device, ordinal, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH,
                    "COOPERATIVE_LAUNCH") != 0;
        }
        return cooperative;
    }

    private void launch(Kernel kernel, Dim3 grid, Dim3 block, int dynamicSharedBytes, DeviceStream stream,
                        KernelArgs args, boolean cooperativeLaunch) {
        checkOpen();
        if (!(kernel instanceof CudaKernel k) || k.cudaModule().device() != this) {
            throw new IllegalArgumentException("kernel must come from a module loaded by this CudaDevice, got " + kernel);
        }
        k.cudaModule().checkOpen();
        if (grid == null || block == null) throw new IllegalArgumentException("grid and block must not be null");
        if (args == null) throw new IllegalArgumentException("args must not be null");
        String what = "kernel=" + k.name() + ", grid=" + grid + ", block=" + block + ", sharedBytes=" + dynamicSharedBytes;
        if (block.volume() > properties.maxThreadsPerBlock()) {
            throw new IllegalArgumentException("block has " + block.volume() + " threads, more than the device's "
                    + properties.maxThreadsPerBlock() + " (" + what + ")");
        }
        if (dynamicSharedBytes < 0 || dynamicSharedBytes > properties.maxSharedMemoryPerBlockOptin()) {
            throw new IllegalArgumentException("dynamicSharedBytes must be in [0, "
                    + properties.maxSharedMemoryPerBlockOptin() + "], got " + dynamicSharedBytes + " (" + what + ")");
        }
        checkSignature(k, args, what);
        List<LaunchParam> params = marshal(args, what);
        CUstream s = stream("stream", stream);
        bindContext();
        if (dynamicSharedBytes > SHARED_BYTES_WITHOUT_OPT_IN && dynamicSharedBytes > k.optedInSharedBytes) {
            CudaErrors.check(api.funcSetAttribute(k.function(),
                            CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, dynamicSharedBytes),
                    "cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES=" + dynamicSharedBytes + ", "
                            + what + ")");
            k.optedInSharedBytes = dynamicSharedBytes;
        }
        if (cooperativeLaunch) {
            CudaErrors.check(api.launchCooperativeKernel(k.function(), grid, block, dynamicSharedBytes, s, params),
                    "cuLaunchCooperativeKernel(" + what + ")");
        } else {
            CudaErrors.check(api.launchKernel(k.function(), grid, block, dynamicSharedBytes, s, params),
                    "cuLaunchKernel(" + what + ")");
        }
    }

    private static void checkSignature(CudaKernel k, KernelArgs args, String what) {
        PtxSignatures.Entry sig = k.signature();
        if (sig == null) return; // PTX text without a readable parameter list: the driver is the only check
        if (sig.paramBytes().size() != args.size()) {
            throw new IllegalArgumentException("kernel " + k.name() + " takes " + sig.paramBytes().size()
                    + " parameters " + sig.paramNames() + ", got " + args.size() + " arguments (" + what + ")");
        }
        for (int i = 0; i < args.size(); i++) {
            int expected = sig.paramBytes().get(i);
            int actual = args.list().get(i).kind().bytes();
            if (expected != actual) {
                throw new IllegalArgumentException("kernel " + k.name() + " parameter " + i + " ("
                        + sig.paramNames().get(i) + ") is " + expected + " bytes, got a " + actual + "-byte "
                        + args.list().get(i).kind() + " (" + what + ")");
            }
        }
    }

    /** KernelArgs → LaunchParams, resolving each DevicePointer to its (open, own) allocation and byte offset. */
    List<LaunchParam> marshal(KernelArgs args, String what) {
        List<LaunchParam> out = new ArrayList<>(args.size());
        int i = 0;
        for (KernelArgs.Arg a : args.list()) {
            if (a.kind() == KernelArgs.Kind.POINTER) {
                DevicePointer p = (DevicePointer) a.value();
                CudaBuffer b = target("argument " + i + " of " + what, p, 0);
                out.add(new LaunchParam(a.kind(), b.base(), p.byteOffset(), null));
            } else {
                out.add(new LaunchParam(a.kind(), null, 0, a.value()));
            }
            i++;
        }
        return out;
    }

    // ---- streams ----

    @Override
    public DeviceStream defaultStream() {
        return defaultStream;
    }

    @Override
    public DeviceStream createStream() {
        checkOpen();
        CUstream s = new CUstream();
        bindContext();
        CudaErrors.check(api.streamCreate(s, 0), "cuStreamCreate(flags=0)");
        return new CudaStream(this, s, true);
    }

    /** Events without timing (CU_EVENT_DISABLE_TIMING): ordering only, the cheapest kind. */
    @Override
    public DeviceEvent createEvent() {
        checkOpen();
        CUevent e = new CUevent();
        bindContext();
        CudaErrors.check(api.eventCreate(e, CUevent_flags.CU_EVENT_DISABLE_TIMING), "cuEventCreate(flags=DISABLE_TIMING)");
        return new CudaEvent(this, e);
    }

    void recordEvent(CudaEvent e, DeviceStream stream) {
        checkOpen();
        CUstream s = stream("stream", stream);
        bindContext();
        CudaErrors.check(api.eventRecord(e.handle(), s), "cuEventRecord");
    }

    void synchronizeEvent(CudaEvent e) {
        checkOpen();
        bindContext();
        CudaErrors.check(api.eventSynchronize(e.handle()), "cuEventSynchronize");
    }

    void destroyEvent(CUevent e) {
        if (closed) return; // the context went with the device
        bindContext();
        CudaErrors.check(api.eventDestroy(e), "cuEventDestroy");
    }

    void streamWaitEvent(CudaStream s, DeviceEvent event) {
        checkOpen();
        if (!(event instanceof CudaEvent e) || e.device() != this) {
            throw new IllegalArgumentException("event must be an event of this CudaDevice, got " + event);
        }
        CUstream handle = s.handle();
        bindContext();
        CudaErrors.check(api.streamWaitEvent(handle, e.handle(), 0), "cuStreamWaitEvent");
    }

    void synchronizeStream(CudaStream s) {
        checkOpen();
        bindContext();
        CudaErrors.check(api.streamSynchronize(s.handle()), "cuStreamSynchronize");
    }

    void destroyStream(CUstream s) {
        if (closed) return;
        bindContext();
        CudaErrors.check(api.streamDestroy(s), "cuStreamDestroy");
    }

    @Override
    public void synchronize() {
        checkOpen();
        bindContext();
        CudaErrors.check(api.ctxSynchronize(), "cuCtxSynchronize");
    }

    @Override
    public void close() {
        List<CudaBuffer> leaked;
        synchronized (this) {
            if (closed) return;
            bindContext();
            closed = true;
        }
        synchronized (live) {
            leaked = new ArrayList<>(live);
            live.clear();
        }
        // Free everything first, release the context last, then report: a leak must not also leak GPU memory.
        RuntimeException first = null;
        for (CudaBuffer b : leaked) {
            b.markClosed();
            int r = api.memFree(b.baseUnchecked());
            if (r != CUresult.CUDA_SUCCESS && first == null) {
                first = new DeviceException("cuMemFree(" + b.bytes() + " bytes, while closing " + name + ") failed: "
                        + CudaErrors.name(r));
            }
        }
        int r = api.devicePrimaryCtxRelease(device);
        if (r != CUresult.CUDA_SUCCESS && first == null) {
            first = new DeviceException("cuDevicePrimaryCtxRelease(device=" + ordinal + ") failed: " + CudaErrors.name(r));
        }
        if (first != null) throw first;
        if (!leaked.isEmpty()) {
            long bytes = 0;
            for (CudaBuffer b : leaked) bytes += b.bytes();
            throw new DeviceException("CudaDevice " + name + " closed with " + leaked.size()
                    + " buffer(s) still open (" + bytes + " bytes): freed now, but the owner should close them");
        }
    }

    /** True once closed. */
    public boolean isClosed() {
        return closed;
    }

    // ---- helpers ----

    private void checkOpen() {
        if (closed) throw new IllegalStateException("CudaDevice " + name + " is closed");
    }

    /**
     * Makes this device's primary context current on the calling thread, for handing its buffers and streams to another
     * CUDA library (cuBLAS, cuDNN, NCCL: they run in the thread's current context). This device's own methods do it
     * themselves.
     *
     * @throws IllegalStateException when the device is closed
     */
    public void makeCurrent() {
        checkOpen();
        bindContext();
    }

    /** The CudaDevice a stream belongs to (for libraries that are handed a stream, e.g. to make its context current). */
    public static CudaDevice of(DeviceStream s) {
        if (!(s instanceof CudaStream cs)) {
            throw new IllegalArgumentException("expected a stream of a CudaDevice, got " + s);
        }
        return cs.device();
    }

    /**
     * Makes the primary context current on this thread unless it already is. Asked of the driver every time: the
     * thread's current context is the driver's state, which other devices and other libraries change too.
     */
    private void bindContext() {
        CUcontext current = new CUcontext();
        CudaErrors.check(api.ctxGetCurrent(current), "cuCtxGetCurrent");
        if (!context.equals(current)) {
            CudaErrors.check(api.ctxSetCurrent(context), "cuCtxSetCurrent(primary context of device " + ordinal + ")");
        }
    }

    private CudaBuffer target(String argName, DevicePointer p, long bytes) {
        if (p == null) throw new IllegalArgumentException(argName + " must not be null");
        if (!(p.buffer() instanceof CudaBuffer b) || b.device() != this) {
            throw new IllegalArgumentException(argName + " must be in a buffer of this CudaDevice, got " + p.buffer());
        }
        DeviceChecks.deviceRange(argName, p, bytes);
        return b;
    }

    private CUstream stream(String argName, DeviceStream s) {
        if (s == null) throw new IllegalArgumentException(argName + " must not be null");
        if (!(s instanceof CudaStream cs) || cs.device() != this) {
            throw new IllegalArgumentException(argName + " must be a stream of this CudaDevice, got " + s);
        }
        return cs.handle();
    }


    /** For tests: the live buffers' bases. */
    Map<CudaBuffer, CUdeviceptr> liveForTest() {
        Map<CudaBuffer, CUdeviceptr> m = new IdentityHashMap<>();
        synchronized (live) {
            for (CudaBuffer b : live) m.put(b, b.baseUnchecked());
        }
        return m;
    }
}
