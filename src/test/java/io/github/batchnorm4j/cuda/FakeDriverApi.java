package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.Dim3;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUresult;
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
 * A driver without a GPU: device memory is host byte arrays (so copies round-trip), every call is recorded by name,
 * and any call can be made to fail with a chosen CUresult. JCuda handle objects are compared by identity (their
 * native pointers are all 0 here).
 */
final class FakeDriverApi implements DriverApi {
    final List<String> calls = new ArrayList<>();
    final Map<String, Integer> failures = new HashMap<>();
    final Map<Integer, Integer> attributes = new HashMap<>();
    final Map<CUdeviceptr, byte[]> memory = new IdentityHashMap<>();
    /** The .entry names of each loaded module's PTX. */
    private final Map<CUmodule, java.util.Set<String>> entries = new IdentityHashMap<>();
    final List<CUdeviceptr> freed = new ArrayList<>();
    final Map<CUfunction, String> functions = new IdentityHashMap<>();
    final List<Launch> launches = new ArrayList<>();
    final List<int[]> funcAttributes = new ArrayList<>();
    final List<CUstream> streamsCreated = new ArrayList<>();
    final List<CUstream> streamsDestroyed = new ArrayList<>();
    String deviceName = "Fake GPU";
    int deviceCount = 1;
    int driverVersion = 12040;
    int retained;
    int released;

    record Launch(String kernel, Dim3 grid, Dim3 block, int sharedBytes, CUstream stream, List<LaunchParam> params) {
    }

    FakeDriverApi() {
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 132);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, 1024);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, 48 * 1024);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, 227 * 1024);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_WARP_SIZE, 32);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 9);
        attributes.put(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0);
    }

    /** Records the call and returns the failure planted for it, or CUDA_SUCCESS. */
    private int call(String name) {
        calls.add(name);
        Integer f = failures.get(name);
        return f == null ? CUresult.CUDA_SUCCESS : f;
    }

    long count(String name) {
        return calls.stream().filter(name::equals).count();
    }

    private ByteBuffer mem(CUdeviceptr p, long offset, long bytes) {
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

    @Override public int deviceGet(CUdevice device, int ordinal) { return call("cuDeviceGet"); }

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

    @Override public int devicePrimaryCtxRetain(CUcontext context, CUdevice device) {
        int r = call("cuDevicePrimaryCtxRetain");
        if (r == 0) retained++;
        return r;
    }

    @Override public int devicePrimaryCtxRelease(CUdevice device) {
        released++;
        return call("cuDevicePrimaryCtxRelease");
    }

    @Override public int ctxSetCurrent(CUcontext context) { return call("cuCtxSetCurrent"); }
    @Override public int ctxSynchronize() { return call("cuCtxSynchronize"); }

    @Override public int memAlloc(CUdeviceptr ptr, long bytes) {
        int r = call("cuMemAlloc");
        if (r == 0) memory.put(ptr, new byte[(int) bytes]);
        return r;
    }

    @Override public int memFree(CUdeviceptr ptr) {
        int r = call("cuMemFree");
        if (memory.remove(ptr) == null) throw new AssertionError("double free or unknown address");
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

    @Override public int moduleLoadData(CUmodule module, String ptx) {
        int r = call("cuModuleLoadData");
        if (r == 0) entries.put(module, PtxSignatures.parse(ptx).keySet());
        return r;
    }
    @Override public int moduleUnload(CUmodule module) { return call("cuModuleUnload"); }

    @Override public int moduleGetFunction(CUfunction function, CUmodule module, String name) {
        int r = call("cuModuleGetFunction");
        // As the driver does: a name that is no entry of the module is CUDA_ERROR_NOT_FOUND.
        if (r == 0 && !entries.getOrDefault(module, java.util.Set.of()).contains(name)) r = CUresult.CUDA_ERROR_NOT_FOUND;
        if (r == 0) functions.put(function, name);
        return r;
    }

    @Override public int funcSetAttribute(CUfunction function, int attribute, int value) {
        funcAttributes.add(new int[] {attribute, value});
        return call("cuFuncSetAttribute");
    }

    @Override public int launchKernel(CUfunction function, Dim3 grid, Dim3 block, int dynamicSharedBytes, CUstream stream,
                                      List<LaunchParam> params) {
        int r = call("cuLaunchKernel");
        launches.add(new Launch(functions.get(function), grid, block, dynamicSharedBytes, stream, List.copyOf(params)));
        return r;
    }

    @Override public int streamCreate(CUstream stream, int flags) {
        streamsCreated.add(stream);
        return call("cuStreamCreate");
    }

    @Override public int streamSynchronize(CUstream stream) { return call("cuStreamSynchronize"); }

    @Override public int streamDestroy(CUstream stream) {
        streamsDestroyed.add(stream);
        return call("cuStreamDestroy");
    }
}
