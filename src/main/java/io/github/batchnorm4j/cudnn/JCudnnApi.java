package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.cuda.CudaDevice;
import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceStream;
import jcuda.Pointer;
import jcuda.jcudnn.JCudnn;
import jcuda.jcudnn.cudnnHandle;
import jcuda.jcudnn.cudnnTensorDescriptor;
import jcuda.runtime.cudaStream_t;

import java.util.List;

/**
 * The real {@link CudnnApi}: one JCudnn call per method. Only a machine with a GPU and cuDNN 9 runs it; review it line
 * by line.
 *
 * <p>Pairing (docs/design.md §7): these are the org.jcuda:jcudnn 11.7.0 classes (the newest on Maven Central) running
 * against jcudnn-natives 12.6.0: {@code JCudnn.initialize()} loads {@code "JCudnn-" + JCudaVersion.get()}, and
 * JCudaVersion comes from the jcuda 12.6.0 jar, so the native library is {@code libJCudnn-12.6.0-linux-x86_64.so},
 * which links {@code libcudnn.so.9}. JNI binds each {@code private static native ...Native} method by name when first
 * called, so every function listed in {@link #FUNCTIONS} is checked against that library's exports by {@code
 * JCudnnPairingTest}.
 *
 * <p>Status codes are returned, never thrown: exceptions are disabled, and errors are named with cudnnGetErrorString
 * (the 11.7.0 classes' {@code cudnnStatus.stringFor} knows cuDNN 8's numbering, which cuDNN 9 changed).
 */
final class JCudnnApi implements CudnnApi {

    /** Every cuDNN function this class calls: the JNI-pairing test checks each against the natives. */
    static final List<String> FUNCTIONS = List.of(
            "cudnnGetVersion", "cudnnGetErrorString", "cudnnCreate", "cudnnDestroy", "cudnnSetStream",
            "cudnnCreateTensorDescriptor", "cudnnDestroyTensorDescriptor", "cudnnSetTensor4dDescriptorEx",
            "cudnnDeriveBNTensorDescriptor", "cudnnBatchNormalizationForwardTraining",
            "cudnnBatchNormalizationForwardInference", "cudnnBatchNormalizationBackward");

    /** Loads the JCudnn native library (UnsatisfiedLinkError when libcudnn.so.9 or the driver is missing). */
    JCudnnApi() {
        JCudnn.setExceptionsEnabled(false);
    }

    private static Pointer dev(DevicePointer p) {
        return CudaDevice.address(p);
    }

    private static Pointer host(float v) {
        return Pointer.to(new float[] {v});
    }

    @Override public long getVersion() { return JCudnn.cudnnGetVersion(); }
    @Override public String getErrorString(int status) { return JCudnn.cudnnGetErrorString(status); }
    @Override public int create(cudnnHandle handle) { return JCudnn.cudnnCreate(handle); }
    @Override public int destroy(cudnnHandle handle) { return JCudnn.cudnnDestroy(handle); }
    @Override public int setStream(cudnnHandle handle, DeviceStream stream) { return JCudnn.cudnnSetStream(handle, new cudaStream_t(CudaDevice.streamHandle(stream))); }
    @Override public int createTensorDescriptor(cudnnTensorDescriptor desc) { return JCudnn.cudnnCreateTensorDescriptor(desc); }
    @Override public int destroyTensorDescriptor(cudnnTensorDescriptor desc) { return JCudnn.cudnnDestroyTensorDescriptor(desc); }

    @Override
    public int setTensor4dDescriptorEx(cudnnTensorDescriptor desc, int dataType, int n, int c, int h, int w,
                                       int nStride, int cStride, int hStride, int wStride) {
        return JCudnn.cudnnSetTensor4dDescriptorEx(desc, dataType, n, c, h, w, nStride, cStride, hStride, wStride);
    }

    @Override
    public int deriveBNTensorDescriptor(cudnnTensorDescriptor derived, cudnnTensorDescriptor xDesc, int mode) {
        return JCudnn.cudnnDeriveBNTensorDescriptor(derived, xDesc, mode);
    }

    @Override
    public int batchNormalizationForwardTraining(cudnnHandle handle, int mode, float alpha, float beta,
                                                 cudnnTensorDescriptor xDesc, DevicePointer x,
                                                 cudnnTensorDescriptor yDesc, DevicePointer y,
                                                 cudnnTensorDescriptor bnDesc, DevicePointer scale, DevicePointer bias,
                                                 double exponentialAverageFactor,
                                                 DevicePointer resultRunningMean, DevicePointer resultRunningVariance,
                                                 double epsilon,
                                                 DevicePointer resultSaveMean, DevicePointer resultSaveInvVariance) {
        return JCudnn.cudnnBatchNormalizationForwardTraining(handle, mode, host(alpha), host(beta), xDesc, dev(x),
                yDesc, dev(y), bnDesc, dev(scale), dev(bias), exponentialAverageFactor, dev(resultRunningMean),
                dev(resultRunningVariance), epsilon, dev(resultSaveMean), dev(resultSaveInvVariance));
    }

    @Override
    public int batchNormalizationForwardInference(cudnnHandle handle, int mode, float alpha, float beta,
                                                  cudnnTensorDescriptor xDesc, DevicePointer x,
                                                  cudnnTensorDescriptor yDesc, DevicePointer y,
                                                  cudnnTensorDescriptor bnDesc, DevicePointer scale, DevicePointer bias,
                                                  DevicePointer estimatedMean, DevicePointer estimatedVariance,
                                                  double epsilon) {
        return JCudnn.cudnnBatchNormalizationForwardInference(handle, mode, host(alpha), host(beta), xDesc, dev(x),
                yDesc, dev(y), bnDesc, dev(scale), dev(bias), dev(estimatedMean), dev(estimatedVariance), epsilon);
    }

    @Override
    public int batchNormalizationBackward(cudnnHandle handle, int mode, float alphaDataDiff, float betaDataDiff,
                                          float alphaParamDiff, float betaParamDiff,
                                          cudnnTensorDescriptor xDesc, DevicePointer x,
                                          cudnnTensorDescriptor dyDesc, DevicePointer dy,
                                          cudnnTensorDescriptor dxDesc, DevicePointer dx,
                                          cudnnTensorDescriptor bnDesc, DevicePointer scale,
                                          DevicePointer dScale, DevicePointer dBias, double epsilon,
                                          DevicePointer savedMean, DevicePointer savedInvVariance) {
        return JCudnn.cudnnBatchNormalizationBackward(handle, mode, host(alphaDataDiff), host(betaDataDiff),
                host(alphaParamDiff), host(betaParamDiff), xDesc, dev(x), dyDesc, dev(dy), dxDesc, dev(dx), bnDesc,
                dev(scale), dev(dScale), dev(dBias), epsilon, dev(savedMean), dev(savedInvVariance));
    }
}
