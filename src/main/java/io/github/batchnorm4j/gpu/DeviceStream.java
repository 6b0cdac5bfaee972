package io.github.batchnorm4j.gpu;

/**
 * An ordered queue of device work (CUDA's stream). Streams made by {@link Device#createStream()} are owned by the
 * caller and closed by it; the {@link Device#defaultStream() default stream} is owned by the device.
 */
public interface DeviceStream extends AutoCloseable {

    /** Waits until all work queued on this stream is complete. */
    void synchronize();

    @Override
    void close();
}
