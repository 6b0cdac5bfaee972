package io.github.batchnorm4j.gpu;

/**
 * An ordered queue of device work (CUDA's stream): operations queued on one stream run in order; operations on two
 * streams created by {@link Device#createStream()} are not ordered at all unless an event
 * ({@link #waitFor(DeviceEvent)}) or a host synchronization orders them. The {@link Device#defaultStream() default
 * stream} is CUDA's legacy NULL stream: each of its operations waits for all earlier work on every stream, and later
 * work on every stream waits for it. Streams made by {@link Device#createStream()} are owned by the caller and closed
 * by it (work already queued still runs); the default stream is owned by the device.
 */
public interface DeviceStream extends AutoCloseable {

    /** Waits until all work queued on this stream is complete. */
    void synchronize();

    /**
     * Makes all work queued on this stream from now on wait until the work {@code event} captured (at its last
     * {@link DeviceEvent#record}) is complete (cuStreamWaitEvent); returns at once. An event never recorded is
     * complete.
     */
    void waitFor(DeviceEvent event);

    /** True once {@link #close()} ran (never for the default stream). */
    boolean isClosed();

    @Override
    void close();
}
