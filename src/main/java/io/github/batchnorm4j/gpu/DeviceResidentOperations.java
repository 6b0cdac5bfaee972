package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.DType;
import io.github.batchnorm4j.Shape;

/**
 * The training-step operations on device buffers that {@code bench} times through
 * {@link DeviceTiming#prepareTiming}: our kernels ({@link DeviceResidentBatchNorm}) and cuDNN
 * ({@code cudnn.CudnnBatchNormOps}) implement them. Conventions and math are those of
 * {@link io.github.batchnorm4j.BatchNormOps}; pointers lie on the implementation's device, work is queued on
 * {@code stream} (null: the device's default stream) and read back after a synchronizing copy. The {@link DType}
 * forms take x, dy, y and dx in the storage type (per-channel tensors stay float32); by default only float32 runs.
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

    /** {@link #forwardTraining} with x and y of {@code dtype}. */
    default void forwardTraining(Shape shape, DType dtype, DevicePointer x, DevicePointer gamma, DevicePointer beta,
                                 double eps, DevicePointer runningMean, DevicePointer runningVar, double momentum,
                                 DevicePointer y, DevicePointer saveMean, DevicePointer saveInvstd,
                                 DeviceStream stream) {
        floatOnly(dtype);
        forwardTraining(shape, x, gamma, beta, eps, runningMean, runningVar, momentum, y, saveMean, saveInvstd,
                stream);
    }

    /** {@link #forwardInference} with x and y of {@code dtype}. */
    default void forwardInference(Shape shape, DType dtype, DevicePointer x, DevicePointer gamma, DevicePointer beta,
                                  DevicePointer runningMean, DevicePointer runningVar, double eps, DevicePointer y,
                                  DeviceStream stream) {
        floatOnly(dtype);
        forwardInference(shape, x, gamma, beta, runningMean, runningVar, eps, y, stream);
    }

    /** {@link #backwardTraining} with x, dy and dx of {@code dtype}. */
    default void backwardTraining(Shape shape, DType dtype, DevicePointer x, DevicePointer dy, DevicePointer gamma,
                                  DevicePointer saveMean, DevicePointer saveInvstd, DevicePointer dx,
                                  DevicePointer dgamma, DevicePointer dbeta, DeviceStream stream) {
        floatOnly(dtype);
        backwardTraining(shape, x, dy, gamma, saveMean, saveInvstd, dx, dgamma, dbeta, stream);
    }

    private static void floatOnly(DType dtype) {
        if (dtype != DType.FLOAT32) {
            throw new UnsupportedOperationException("these device-resident operations run float32 only, not " + dtype);
        }
    }
}
