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
}
