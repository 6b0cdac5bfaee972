package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.BackendProvider;

/**
 * A backend whose operations run our kernels on a {@link Device} ({@code cuda}, {@code emulator}), and that can hand
 * out such a device to code that launches kernels of its own on it (the training example). Found in
 * {@link io.github.batchnorm4j.Backends} like any provider.
 */
public interface DeviceBackendProvider extends BackendProvider {

    /**
     * Opens this backend's device; the caller owns it and closes it.
     *
     * @throws io.github.batchnorm4j.BackendUnavailableException with the reason when it cannot be used here
     */
    Device openDevice();

    /**
     * Opens device {@code ordinal} of this backend (data-parallel training opens 0 … K−1); the caller owns it.
     * By default only device 0 exists.
     *
     * @throws io.github.batchnorm4j.BackendUnavailableException when there is no such device here, with the reason
     */
    default Device openDevice(int ordinal) {
        if (ordinal == 0) return openDevice();
        throw new io.github.batchnorm4j.BackendUnavailableException(name(), "it has one device, not " + (ordinal + 1));
    }
}
