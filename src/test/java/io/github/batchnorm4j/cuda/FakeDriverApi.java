package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.Dim3;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUresult;
import jcuda.driver.CUevent;
import jcuda.driver.CUstream;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * A driver without a GPU (safe to share between threads: several ranks' devices in one test): device memory is host
 * byte arrays (so copies round-trip), every call is recorded by name
 * together with the context current on the calling thread, and any call can be made to fail with a chosen CUresult.
 * JCuda handle objects are compared by identity (their native pointers are 0 here), except contexts: as the real
 * driver does, the fake writes a handle into the CUcontext it fills (the primary context of ordinal k is
 * {@link #primaryContext}(k)), keeps the current context per thread (cuCtxSetCurrent / cuCtxGetCurrent), and refuses
 * to launch a kernel in a context other than the one its module was loaded in (CUDA_ERROR_INVALID_CONTEXT).
 */
final class FakeDriverApi implements DriverApi {
    final List<String> calls = new ArrayList<>();
    /** The context current on the calling thread at each call of {@link #calls} (0 = none). */
    final List<Long> callContexts = new ArrayList<>();
    private final ThreadLocal<Long> current = ThreadLocal.withInitial(() -> 0L);
    private final Map<CUdevice, Integer> ordinals = new IdentityHashMap<>();
    private final Map<CUmodule, Long> moduleContexts = new IdentityHashMap<>();
    private final Map<CUfunction, Long> functionContexts = new IdentityHashMap<>();
    final Map<String, Integer> failures = new HashMap<>();
    final Map<Integer, Integer> attributes = new HashMap<>();
    final Map<CUdeviceptr, byte[]> memory = new IdentityHashMap<>();
    /** The .entry names of each loaded module's PTX. */
    private final Map<CUmodule, java.util.Set<String>> entries = new IdentityHashMap<>();
    final List<CUdeviceptr> freed = new ArrayList<>();
    final Map<CUfunction, String> functions = new IdentityHashMap<>();
    final List<Launch> launches = new ArrayList<>();
    final List<int[]> funcAttributes = new ArrayList<>();
    /** cuFuncGetAttribute answers by attribute (the same for every function). */
    final Map<Integer, Integer> functionAttributes = new HashMap<>();
    /** Occupancy queries as "kernel blockSize dynamicSharedBytes", and the answer every query gets. */
    final List<String> occupancyQueries = new ArrayList<>();
    int occupancyAnswer = 6;
    final List<CUstream> streamsCreated = new ArrayList<>();
    final List<CUstream> streamsDestroyed = new ArrayList<>();
    String deviceName = "Fake GPU";
    int deviceCount = 1;
    int driverVersion = 12040;
    int retained;
    int released;

    record Launch(String kernel, Dim3 grid, Dim3 block, int sharedBytes, CUstream stream, List<LaunchParam> params) {
    }

    /** Cooperative launches (cuLaunchCooperativeKernel), apart from {@link #launches}. */
    final List<Launch> cooperativeLaunches = new ArrayList<>();

    FakeDriverApi() {
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 132);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH, 1);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, 1024);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, 48 * 1024);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, 227 * 1024);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_WARP_SIZE, 32);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 9);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR, 2048);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR, 32);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR, 65536);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK, 65536);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR, 228 * 1024);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK, 1024);
    }

    /** The handle of ordinal k's primary context. */
    static long primaryContext(int ordinal) {
        return 0xC0_0000L + 0x1000L * ordinal;
    }

    /** What another library does behind our back: makes {@code handle} current on the calling thread. */
    void foreignSetCurrent(long handle) {
        current.set(handle);
    }

    /** The context current on the calling thread. */
    long currentContext() {
        return current.get();
    }

    /** The contexts current at the calls recorded since {@code mark} (a size of {@link #calls}), except the calls that
     * query or set the context. */
    synchronized java.util.Set<Long> contextsSince(int mark) {
        java.util.Set<Long> out = new java.util.TreeSet<>();
        for (int i = mark; i < calls.size(); i++) {
            String c = calls.get(i);
            if (!c.equals("cuCtxGetCurrent") && !c.equals("cuCtxSetCurrent")) out.add(callContexts.get(i));
        }
        return out;
    }

    private static final java.lang.reflect.Field NATIVE_POINTER;

    static {
        try {
            NATIVE_POINTER = jcuda.NativePointerObject.class.getDeclaredField("nativePointer");
            NATIVE_POINTER.setAccessible(true);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** Reads or writes a JCuda handle's native pointer, as the real driver's JNI layer does. */
    static long handle(jcuda.NativePointerObject o) {
        try {
            return NATIVE_POINTER.getLong(o);
        } catch (IllegalAccessException e) {
            throw new AssertionError(e);
        }
    }

    private static void setHandle(jcuda.NativePointerObject o, long value) {
        try {
            NATIVE_POINTER.setLong(o, value);
        } catch (IllegalAccessException e) {
            throw new AssertionError(e);
        }
    }

    /** Records the call and returns the failure planted for it, or CUDA_SUCCESS. */
    private synchronized int call(String name) {
        calls.add(name);
        callContexts.add(current.get());
        Integer f = failures.get(name);
        return f == null ? CUresult.CUDA_SUCCESS : f;
    }

    long count(String name) {
        return calls.stream().filter(name::equals).count();
    }

    private synchronized ByteBuffer mem(CUdeviceptr p, long offset, long bytes) {
        byte[] m = memory.get(p);
        if (m == null) throw new AssertionError("address not allocated (or freed): " + p);
        if (offset < 0 || offset + bytes > m.length) throw new AssertionError("out of bounds: " + offset + "+" + bytes);
        ByteBuffer b = ByteBuffer.wrap(m).order(ByteOrder.LITTLE_ENDIAN);
        b.position((int) offset);
        return b;
    }

    @Override public int init() { return call("cuInit"); }

    @Override public int driverGetVersion(int[] version) {
        version[0] = driverVersion;
        return call("cuDriverGetVersion");
    }

    @Override public int deviceGetCount(int[] count) {
        count[0] = deviceCount;
        return call("cuDeviceGetCount");
    }

    @Override public synchronized int deviceGet(CUdevice device, int ordinal) {
        ordinals.put(device, ordinal);
        return call("cuDeviceGet");
    }

    @Override public int deviceGetName(byte[] name, CUdevice device) {
        byte[] b = deviceName.getBytes(StandardCharsets.UTF_8);
        System.arraycopy(b, 0, name, 0, b.length);
        name[b.length] = 0;
        return call("cuDeviceGetName");
    }

    @Override public int deviceGetAttribute(int[] value, int attribute, CUdevice device) {
        Integer v = attributes.get(attribute);
        if (v == null) return CUresult.CUDA_ERROR_INVALID_VALUE;
        value[0] = v;
        return call("cuDeviceGetAttribute");
    }

    @Override public synchronized int devicePrimaryCtxRetain(CUcontext context, CUdevice device) {
        int r = call("cuDevicePrimaryCtxRetain");
        if (r == 0) {
            retained++;
            setHandle(context, primaryContext(ordinals.getOrDefault(device, 0)));
        }
        return r;
    }

    @Override public synchronized int devicePrimaryCtxRelease(CUdevice device) {
        released++;
        return call("cuDevicePrimaryCtxRelease");
    }

    @Override public int ctxSetCurrent(CUcontext context) {
        int r = call("cuCtxSetCurrent");
        if (r == 0) current.set(handle(context));
        return r;
    }

    @Override public int ctxGetCurrent(CUcontext context) {
        int r = call("cuCtxGetCurrent");
        if (r == 0) setHandle(context, current.get());
        return r;
    }
    @Override public int ctxSynchronize() { return call("cuCtxSynchronize"); }

    @Override public synchronized int memAlloc(CUdeviceptr ptr, long bytes) {
        int r = call("cuMemAlloc");
        if (r == 0) {
            byte[] m = new byte[(int) bytes];
            memory.put(ptr, m);
            // A distinct, 256-aligned address per allocation, as the driver hands out (and NCCL is handed).
            setHandle(ptr, nextAddress);
            byAddress.put(nextAddress, m);
            nextAddress += (bytes + 511) & ~255L;
        }
        return r;
    }

    private long nextAddress = 0x7f00_0000_0000L;
    private final java.util.TreeMap<Long, byte[]> byAddress = new java.util.TreeMap<>();

    /** The bytes at a raw device address (base + offset), as a little-endian buffer positioned there. */
    synchronized ByteBuffer at(long address, long bytes) {
        Map.Entry<Long, byte[]> e = byAddress.floorEntry(address);
        if (e == null || address - e.getKey() + bytes > e.getValue().length) {
            throw new AssertionError("no allocation holds " + bytes + " bytes at 0x" + Long.toHexString(address));
        }
        ByteBuffer b = ByteBuffer.wrap(e.getValue()).order(ByteOrder.LITTLE_ENDIAN);
        b.position((int) (address - e.getKey()));
        return b;
    }

    @Override public synchronized int memFree(CUdeviceptr ptr) {
        int r = call("cuMemFree");
        if (memory.remove(ptr) == null) throw new AssertionError("double free or unknown address");
        byAddress.remove(handle(ptr));
        freed.add(ptr);
        return r;
    }

    @Override public int memcpyHtoDAsync(CUdeviceptr dst, long dstOffset, float[] src, int srcIndex, int count, CUstream stream) {
        ByteBuffer b = mem(dst, dstOffset, 4L * count);
        for (int i = 0; i < count; i++) b.putFloat(src[srcIndex + i]);
        return call("cuMemcpyHtoDAsync");
    }

    @Override public int memcpyHtoDAsync(CUdeviceptr dst, long dstOffset, int[] src, int srcIndex, int count, CUstream stream) {
        ByteBuffer b = mem(dst, dstOffset, 4L * count);
        for (int i = 0; i < count; i++) b.putInt(src[srcIndex + i]);
        return call("cuMemcpyHtoDAsync");
    }

    @Override public int memcpyDtoHAsync(float[] dst, int dstIndex, CUdeviceptr src, long srcOffset, int count, CUstream stream) {
        ByteBuffer b = mem(src, srcOffset, 4L * count);
        for (int i = 0; i < count; i++) dst[dstIndex + i] = b.getFloat();
        return call("cuMemcpyDtoHAsync");
    }

    @Override public int memcpyDtoHAsync(int[] dst, int dstIndex, CUdeviceptr src, long srcOffset, int count, CUstream stream) {
        ByteBuffer b = mem(src, srcOffset, 4L * count);
        for (int i = 0; i < count; i++) dst[dstIndex + i] = b.getInt();
        return call("cuMemcpyDtoHAsync");
    }

    @Override public int memcpyDtoDAsync(CUdeviceptr dst, long dstOffset, CUdeviceptr src, long srcOffset, long bytes, CUstream stream) {
        ByteBuffer s = mem(src, srcOffset, bytes);
        ByteBuffer d = mem(dst, dstOffset, bytes);
        for (long i = 0; i < bytes; i++) d.put(s.get());
        return call("cuMemcpyDtoDAsync");
    }

    @Override public int memsetD8Async(CUdeviceptr dst, long dstOffset, byte value, long bytes, CUstream stream) {
        ByteBuffer d = mem(dst, dstOffset, bytes);
        for (long i = 0; i < bytes; i++) d.put(value);
        return call("cuMemsetD8Async");
    }

    @Override public synchronized int moduleLoadData(CUmodule module, String ptx) {
        moduleContexts.put(module, current.get());
        int r = call("cuModuleLoadData");
        if (r == 0) entries.put(module, PtxSignatures.parse(ptx).keySet());
        return r;
    }
    @Override public int moduleUnload(CUmodule module) { return call("cuModuleUnload"); }

    @Override public synchronized int moduleGetFunction(CUfunction function, CUmodule module, String name) {
        int r = call("cuModuleGetFunction");
        // As the driver does: a name that is no entry of the module is CUDA_ERROR_NOT_FOUND.
        if (r == 0 && !entries.getOrDefault(module, java.util.Set.of()).contains(name)) r = CUresult.CUDA_ERROR_NOT_FOUND;
        if (r == 0) {
            functions.put(function, name);
            functionContexts.put(function, moduleContexts.getOrDefault(module, 0L));
        }
        return r;
    }

    @Override public synchronized int funcSetAttribute(CUfunction function, int attribute, int value) {
        funcAttributes.add(new int[] {attribute, value});
        return call("cuFuncSetAttribute");
    }

    @Override public synchronized int funcGetAttribute(int[] value, int attribute, CUfunction function) {
        Integer v = functionAttributes.get(attribute);
        if (v == null) return CUresult.CUDA_ERROR_INVALID_VALUE;
        value[0] = v;
        return call("cuFuncGetAttribute");
    }

    @Override public synchronized int occupancyMaxActiveBlocksPerMultiprocessor(int[] blocks, CUfunction function, int blockSize,
                                                                   long dynamicSharedBytes) {
        occupancyQueries.add(functions.get(function) + " " + blockSize + " " + dynamicSharedBytes);
        blocks[0] = occupancyAnswer;
        return call("cuOccupancyMaxActiveBlocksPerMultiprocessor");
    }

    @Override public synchronized int launchKernel(CUfunction function, Dim3 grid, Dim3 block, int dynamicSharedBytes, CUstream stream,
                                      List<LaunchParam> params) {
        int r = call("cuLaunchKernel");
        Long home = functionContexts.get(function);
        if (r == 0 && home != null && home != current.get().longValue()) return CUresult.CUDA_ERROR_INVALID_CONTEXT;
        launches.add(new Launch(functions.get(function), grid, block, dynamicSharedBytes, stream, List.copyOf(params)));
        return r;
    }

    /**
     * As the driver: a grid larger than the answer of cuOccupancyMaxActiveBlocksPerMultiprocessor times the SM count
     * is CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE.
     */
    @Override public synchronized int launchCooperativeKernel(CUfunction function, Dim3 grid, Dim3 block,
                                                              int dynamicSharedBytes, CUstream stream,
                                                              List<LaunchParam> params) {
        int r = call("cuLaunchCooperativeKernel");
        if (r != 0) return r;
        if (grid.volume() > (long) occupancyAnswer * attributes.get(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)) {
            return CUresult.CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE;
        }
        cooperativeLaunches.add(new Launch(functions.get(function), grid, block, dynamicSharedBytes, stream,
                List.copyOf(params)));
        return r;
    }

    @Override public synchronized int streamCreate(CUstream stream, int flags) {
        streamsCreated.add(stream);
        setHandle(stream, 0x5_0000L + 0x100L * streamsCreated.size());
        return call("cuStreamCreate");
    }

    @Override public int streamSynchronize(CUstream stream) { return call("cuStreamSynchronize"); }

    @Override public synchronized int streamDestroy(CUstream stream) {
        streamsDestroyed.add(stream);
        return call("cuStreamDestroy");
    }

    /** An event call: its name, the event, the stream (null for calls without one) and the flags. */
    record EventCall(String name, CUevent event, CUstream stream, int flags) {
    }

    final List<EventCall> eventCalls = new ArrayList<>();

    private int event(String name, CUevent event, CUstream stream, int flags) {
        int r = call(name);
        if (r == CUresult.CUDA_SUCCESS) eventCalls.add(new EventCall(name, event, stream, flags));
        return r;
    }

    @Override public int streamWaitEvent(CUstream stream, CUevent event, int flags) {
        return event("cuStreamWaitEvent", event, stream, flags);
    }

    @Override public int eventCreate(CUevent event, int flags) { return event("cuEventCreate", event, null, flags); }
    @Override public int eventRecord(CUevent event, CUstream stream) { return event("cuEventRecord", event, stream, 0); }
    @Override public int eventSynchronize(CUevent event) { return event("cuEventSynchronize", event, null, 0); }
    @Override public int eventDestroy(CUevent event) { return event("cuEventDestroy", event, null, 0); }
}
