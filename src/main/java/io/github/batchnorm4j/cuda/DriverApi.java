package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.Dim3;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;

import java.util.List;

/**
 * The CUDA driver-API calls {@link CudaDevice} and {@link CudaProbe} make, one method per call, each returning the raw
 * {@code CUresult}. It exists so that everything above the driver (argument marshalling, ownership, error mapping,
 * property reading, the dynamic-shared-memory rule) is unit-tested against a fake; the real implementation,
 * {@link JCudaDriverApi}, is one line per call and is what only a real GPU exercises.
 *
 * <p>Device addresses are passed as (allocation base, byte offset) so that a fake can see which allocation and which
 * offset a call targets; the real adapter applies the offset with {@code CUdeviceptr.withByteOffset}. Host arrays are
 * passed with an element offset and an element count for the same reason.
 */
interface DriverApi {

    int init();

    int driverGetVersion(int[] version);

    int deviceGetCount(int[] count);

    int deviceGet(CUdevice device, int ordinal);

    int deviceGetName(byte[] name, CUdevice device);

    int deviceGetAttribute(int[] value, int attribute, CUdevice device);

    int devicePrimaryCtxRetain(CUcontext context, CUdevice device);

    int devicePrimaryCtxRelease(CUdevice device);

    int ctxSetCurrent(CUcontext context);

    /** cuCtxGetCurrent: fills {@code context} with the calling thread's current context (a null handle if none). */
    int ctxGetCurrent(CUcontext context);

    int ctxSynchronize();

    int memAlloc(CUdeviceptr ptr, long bytes);

    int memFree(CUdeviceptr ptr);

    int memcpyHtoDAsync(CUdeviceptr dst, long dstOffset, float[] src, int srcIndex, int count, CUstream stream);

    int memcpyHtoDAsync(CUdeviceptr dst, long dstOffset, int[] src, int srcIndex, int count, CUstream stream);

    int memcpyDtoHAsync(float[] dst, int dstIndex, CUdeviceptr src, long srcOffset, int count, CUstream stream);

    int memcpyDtoHAsync(int[] dst, int dstIndex, CUdeviceptr src, long srcOffset, int count, CUstream stream);

    int memcpyDtoDAsync(CUdeviceptr dst, long dstOffset, CUdeviceptr src, long srcOffset, long bytes, CUstream stream);

    int memsetD8Async(CUdeviceptr dst, long dstOffset, byte value, long bytes, CUstream stream);

    int moduleLoadData(CUmodule module, String ptx);

    int moduleUnload(CUmodule module);

    int moduleGetFunction(CUfunction function, CUmodule module, String name);

    int funcSetAttribute(CUfunction function, int attribute, int value);

    int funcGetAttribute(int[] value, int attribute, CUfunction function);

    /** cuOccupancyMaxActiveBlocksPerMultiprocessor. */
    int occupancyMaxActiveBlocksPerMultiprocessor(int[] blocks, CUfunction function, int blockSize, long dynamicSharedBytes);

    /** cuLaunchKernel; {@code params} are already marshalled, in declaration order (see {@link LaunchParam}). */
    int launchKernel(CUfunction function, Dim3 grid, Dim3 block, int dynamicSharedBytes, CUstream stream,
                     List<LaunchParam> params);

    /**
     * cuLaunchCooperativeKernel (every block resident at once; CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE beyond what
     * can be co-resident); {@code params} as for {@link #launchKernel}.
     */
    int launchCooperativeKernel(CUfunction function, Dim3 grid, Dim3 block, int dynamicSharedBytes, CUstream stream,
                                List<LaunchParam> params);

    int streamCreate(CUstream stream, int flags);

    int streamSynchronize(CUstream stream);

    int streamDestroy(CUstream stream);

    int streamWaitEvent(CUstream stream, CUevent event, int flags);

    int eventCreate(CUevent event, int flags);

    int eventRecord(CUevent event, CUstream stream);

    int eventSynchronize(CUevent event);

    int eventDestroy(CUevent event);
}
