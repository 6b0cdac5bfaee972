package io.github.batchnorm4j;

/**
 * What a backend probe found, without opening the backend.
 *
 * @param name      "cpu", "cuda", "cudnn" or "emulator"
 * @param available whether {@link Backends#open} would succeed
 * @param detail    when available: versions and the device; when not: the precise reason
 */
public record BackendInfo(String name, boolean available, String detail) {
}
