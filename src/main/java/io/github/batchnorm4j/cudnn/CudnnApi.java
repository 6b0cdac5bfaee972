package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceStream;
import jcuda.jcudnn.cudnnHandle;
import jcuda.jcudnn.cudnnTensorDescriptor;

/**
 * The cuDNN calls {@link CudnnBatchNormOps} makes, one method per call, each returning the raw {@code cudnnStatus_t}
 * (0 = success). The seam lets a fake record every argument (descriptor dims and strides, factors, epsilon, scaling
 * factors, which buffer goes where) so the mapping is unit-tested without a GPU; {@link JCudnnApi} is the thin real
 * implementation.
 *
 * <p>Device memory is passed as {@link DevicePointer}s (the real adapter turns them into raw addresses of the
 * {@link io.github.batchnorm4j.cuda.CudaDevice} that allocated them); scaling factors (alpha/beta) as the float values
 * cuDNN reads from host memory for float tensors.
 */
interface CudnnApi {

    /** cudnnGetVersion: e.g. 90100 for cuDNN 9.1.0 (8401 for 8.4.1). */
    long getVersion();

    /** cudnnGetErrorString: cuDNN's own name for a status (its numbering changed in cuDNN 9). */
    String getErrorString(int status);

    int create(cudnnHandle handle);

    int destroy(cudnnHandle handle);

    int setStream(cudnnHandle handle, DeviceStream stream);

    int createTensorDescriptor(cudnnTensorDescriptor desc);

    int destroyTensorDescriptor(cudnnTensorDescriptor desc);

    int setTensor4dDescriptorEx(cudnnTensorDescriptor desc, int dataType, int n, int c, int h, int w,
                                int nStride, int cStride, int hStride, int wStride);

    int deriveBNTensorDescriptor(cudnnTensorDescriptor derived, cudnnTensorDescriptor xDesc, int mode);

    int batchNormalizationForwardTraining(cudnnHandle handle, int mode, float alpha, float beta,
                                          cudnnTensorDescriptor xDesc, DevicePointer x,
                                          cudnnTensorDescriptor yDesc, DevicePointer y,
                                          cudnnTensorDescriptor bnDesc, DevicePointer scale, DevicePointer bias,
                                          double exponentialAverageFactor,
                                          DevicePointer resultRunningMean, DevicePointer resultRunningVariance,
                                          double epsilon,
                                          DevicePointer resultSaveMean, DevicePointer resultSaveInvVariance);

    int batchNormalizationForwardInference(cudnnHandle handle, int mode, float alpha, float beta,
                                           cudnnTensorDescriptor xDesc, DevicePointer x,
                                           cudnnTensorDescriptor yDesc, DevicePointer y,
                                           cudnnTensorDescriptor bnDesc, DevicePointer scale, DevicePointer bias,
                                           DevicePointer estimatedMean, DevicePointer estimatedVariance,
                                           double epsilon);

    int batchNormalizationBackward(cudnnHandle handle, int mode, float alphaDataDiff, float betaDataDiff,
                                   float alphaParamDiff, float betaParamDiff,
                                   cudnnTensorDescriptor xDesc, DevicePointer x,
                                   cudnnTensorDescriptor dyDesc, DevicePointer dy,
                                   cudnnTensorDescriptor dxDesc, DevicePointer dx,
                                   cudnnTensorDescriptor bnDesc, DevicePointer scale,
                                   DevicePointer dScale, DevicePointer dBias, double epsilon,
                                   DevicePointer savedMean, DevicePointer savedInvVariance);
}
