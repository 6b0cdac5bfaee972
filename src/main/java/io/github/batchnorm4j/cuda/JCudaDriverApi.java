package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.Dim3;
import jcuda.Pointer;
import jcuda.Sizeof;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;

import java.util.List;

/**
 * The real {@link DriverApi}: one JCuda driver call per method, nothing else. Only a machine with an NVIDIA driver
 * runs this; review it line by line.
 *
 * <p>Constructing it loads JCuda's JNI library, which links {@code libcuda.so.1}: without an NVIDIA driver that throws
 * {@link UnsatisfiedLinkError} (the first time) or {@link NoClassDefFoundError} (later), which {@link CudaProbe}
 * turns into a reason. Exceptions are disabled so that every call returns its CUresult, which the callers check.
 *
 * <p>Host copies use {@code Pointer.to(array)}: JCuda pins or copies the Java array for the duration of the call.
 * That is pageable memory to CUDA, for which an async host-to-device copy returns once the source has been staged and
 * an async device-to-host copy returns once it is complete, so the array may be reused when the call returns.
 */
final class JCudaDriverApi implements DriverApi {

    JCudaDriverApi() {
        JCudaDriver.setExceptionsEnabled(false);
    }

    @Override public int init() { return JCudaDriver.cuInit(0); }
    @Override public int driverGetVersion(int[] version) { return JCudaDriver.cuDriverGetVersion(version); }
    @Override public int deviceGetCount(int[] count) { return JCudaDriver.cuDeviceGetCount(count); }
    @Override public int deviceGet(CUdevice device, int ordinal) { return JCudaDriver.cuDeviceGet(device, ordinal); }
    @Override public int deviceGetName(byte[] name, CUdevice device) { return JCudaDriver.cuDeviceGetName(name, name.length, device); }
    @Override public int deviceGetAttribute(int[] value, int attribute, CUdevice device) { return JCudaDriver.cuDeviceGetAttribute(value, attribute, device); }
    @Override public int devicePrimaryCtxRetain(CUcontext context, CUdevice device) { return JCudaDriver.cuDevicePrimaryCtxRetain(context, device); }
    @Override public int devicePrimaryCtxRelease(CUdevice device) { return JCudaDriver.cuDevicePrimaryCtxRelease(device); }
    @Override public int ctxSetCurrent(CUcontext context) { return JCudaDriver.cuCtxSetCurrent(context); }
    @Override public int ctxGetCurrent(CUcontext context) { return JCudaDriver.cuCtxGetCurrent(context); }
    @Override public int ctxSynchronize() { return JCudaDriver.cuCtxSynchronize(); }
    @Override public int memAlloc(CUdeviceptr ptr, long bytes) { return JCudaDriver.cuMemAlloc(ptr, bytes); }
    @Override public int memFree(CUdeviceptr ptr) { return JCudaDriver.cuMemFree(ptr); }

    @Override
    public int memcpyHtoDAsync(CUdeviceptr dst, long dstOffset, float[] src, int srcIndex, int count, CUstream stream) {
        return JCudaDriver.cuMemcpyHtoDAsync(dst.withByteOffset(dstOffset),
                Pointer.to(src).withByteOffset((long) srcIndex * Sizeof.FLOAT), (long) count * Sizeof.FLOAT, stream);
    }

    @Override
    public int memcpyHtoDAsync(CUdeviceptr dst, long dstOffset, int[] src, int srcIndex, int count, CUstream stream) {
        return JCudaDriver.cuMemcpyHtoDAsync(dst.withByteOffset(dstOffset),
                Pointer.to(src).withByteOffset((long) srcIndex * Sizeof.INT), (long) count * Sizeof.INT, stream);
    }

    @Override
    public int memcpyDtoHAsync(float[] dst, int dstIndex, CUdeviceptr src, long srcOffset, int count, CUstream stream) {
        return JCudaDriver.cuMemcpyDtoHAsync(Pointer.to(dst).withByteOffset((long) dstIndex * Sizeof.FLOAT),
                src.withByteOffset(srcOffset), (long) count * Sizeof.FLOAT, stream);
    }

    @Override
    public int memcpyDtoHAsync(int[] dst, int dstIndex, CUdeviceptr src, long srcOffset, int count, CUstream stream) {
        return JCudaDriver.cuMemcpyDtoHAsync(Pointer.to(dst).withByteOffset((long) dstIndex * Sizeof.INT),
                src.withByteOffset(srcOffset), (long) count * Sizeof.INT, stream);
    }

    @Override
    public int memcpyDtoDAsync(CUdeviceptr dst, long dstOffset, CUdeviceptr src, long srcOffset, long bytes, CUstream stream) {
        return JCudaDriver.cuMemcpyDtoDAsync(dst.withByteOffset(dstOffset), src.withByteOffset(srcOffset), bytes, stream);
    }

    @Override
    public int memsetD8Async(CUdeviceptr dst, long dstOffset, byte value, long bytes, CUstream stream) {
        return JCudaDriver.cuMemsetD8Async(dst.withByteOffset(dstOffset), value, bytes, stream);
    }

    @Override public int moduleLoadData(CUmodule module, String ptx) { return JCudaDriver.cuModuleLoadData(module, ptx); }
    @Override public int moduleUnload(CUmodule module) { return JCudaDriver.cuModuleUnload(module); }
    @Override public int moduleGetFunction(CUfunction function, CUmodule module, String name) { return JCudaDriver.cuModuleGetFunction(function, module, name); }
    @Override public int funcSetAttribute(CUfunction function, int attribute, int value) { return JCudaDriver.cuFuncSetAttribute(function, attribute, value); }
    @Override public int funcGetAttribute(int[] value, int attribute, CUfunction function) { return JCudaDriver.cuFuncGetAttribute(value, attribute, function); }

    @Override
    public int occupancyMaxActiveBlocksPerMultiprocessor(int[] blocks, CUfunction function, int blockSize,
                                                         long dynamicSharedBytes) {
        return JCudaDriver.cuOccupancyMaxActiveBlocksPerMultiprocessor(blocks, function, blockSize, dynamicSharedBytes);
    }

    @Override
    public int launchKernel(CUfunction function, Dim3 grid, Dim3 block, int dynamicSharedBytes, CUstream stream,
                            List<LaunchParam> params) {
        return JCudaDriver.cuLaunchKernel(function, grid.x(), grid.y(), grid.z(), block.x(), block.y(), block.z(),
                dynamicSharedBytes, stream, LaunchParam.toKernelParams(params), null);
    }

    @Override
    public int launchCooperativeKernel(CUfunction function, Dim3 grid, Dim3 block, int dynamicSharedBytes,
                                       CUstream stream, List<LaunchParam> params) {
        return JCudaDriver.cuLaunchCooperativeKernel(function, grid.x(), grid.y(), grid.z(), block.x(), block.y(),
                block.z(), dynamicSharedBytes, stream, LaunchParam.toKernelParams(params));
    }

    @Override public int streamCreate(CUstream stream, int flags) { return JCudaDriver.cuStreamCreate(stream, flags); }
    @Override public int streamSynchronize(CUstream stream) { return JCudaDriver.cuStreamSynchronize(stream); }
    @Override public int streamDestroy(CUstream stream) { return JCudaDriver.cuStreamDestroy(stream); }
    @Override public int streamWaitEvent(CUstream stream, CUevent event, int flags) { return JCudaDriver.cuStreamWaitEvent(stream, event, flags); }
    @Override public int eventCreate(CUevent event, int flags) { return JCudaDriver.cuEventCreate(event, flags); }
    @Override public int eventRecord(CUevent event, CUstream stream) { return JCudaDriver.cuEventRecord(event, stream); }
    @Override public int eventSynchronize(CUevent event) { return JCudaDriver.cuEventSynchronize(event); }
    @Override public int eventDestroy(CUevent event) { return JCudaDriver.cuEventDestroy(event); }
}
