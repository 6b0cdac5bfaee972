package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.gpu.DeviceException;

/** Maps cuDNN statuses to {@link DeviceException}s naming cuDNN's error string and the call. */
final class CudnnErrors {
    private CudnnErrors() {
    }

    static void check(CudnnApi api, int status, String call) {
        if (status != 0) {
            throw new StatusException(call + " failed: " + api.getErrorString(status) + " (cudnnStatus_t " + status
                    + ")", status);
        }
    }

    /** A failed cuDNN call and its status. */
    static final class StatusException extends DeviceException {
        final int status;

        StatusException(String message, int status) {
            super(message);
            this.status = status;
        }

        /**
         * Whether cuDNN refused the request as such (bad parameter or not supported: cuDNN 9's 2000 and 3000 families,
         * older versions' 3 and 9) rather than failing to run it.
         */
        boolean refused() {
            return status / 1000 == 2 || status / 1000 == 3 || status == 3 || status == 9;
        }
    }
}
