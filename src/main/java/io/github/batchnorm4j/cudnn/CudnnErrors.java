package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.gpu.DeviceException;

/** Maps cuDNN statuses to {@link DeviceException}s naming cuDNN's error string and the call. */
final class CudnnErrors {
    private CudnnErrors() {
    }

    static void check(CudnnApi api, int status, String call) {
        if (status != 0) {
            throw new DeviceException(call + " failed: " + api.getErrorString(status) + " (cudnnStatus_t " + status + ")");
        }
    }
}
