package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.Shape;

/**
 * The training-step operations on device buffers that {@code bench} times through
 * {@link DeviceTiming#prepareTiming}: our kernels ({@link DeviceResidentBatchNorm}) and cuDNN
 * ({@code cudnn.CudnnBatchNormOps}) implement them. Conventions and math are those of
 * {@link io.github.batchnorm4j.BatchNormOps}; pointers lie on the implementation's device, work is queued on
 * {@code stream} (null: the device's default stream) and read back after a synchronizing copy.
 */
public interface DeviceResidentOperations {

    /** Training-mode forward; runningMean/runningVar in/out or both null; y, saveMean, saveInvstd outputs. */
    void forwardTraining(Shape shape, DevicePointer x, DevicePointer gamma, DevicePointer beta, double eps,
                         DevicePointer runningMean, DevicePointer runningVar, double momentum, DevicePointer y,
                         DevicePointer saveMean, DevicePointer saveInvstd, DeviceStream stream);

    /** Eval-mode forward with the running statistics. */
    void forwardInference(Shape shape, DevicePointer x, DevicePointer gamma, DevicePointer beta,
                          DevicePointer runningMean, DevicePointer runningVar, double eps, DevicePointer y,
                          DeviceStream stream);

    /** Training-mode backward with the saved statistics; dgamma and dbeta may be null. */
    void backwardTraining(Shape shape, DevicePointer x, DevicePointer dy, DevicePointer gamma, DevicePointer saveMean,
                          DevicePointer saveInvstd, DevicePointer dx, DevicePointer dgamma, DevicePointer dbeta,
                          DeviceStream stream);
}
