package io.github.batchnorm4j.gpu;

/**
 * A marker in a stream's work (CUDA's event, created without timing): {@link #record} captures everything queued on
 * a stream so far, {@link DeviceStream#waitFor} makes another stream's later work wait for that, and
 * {@link #synchronize} makes the host wait for it. This is how work on two streams is ordered without synchronizing
 * the host. An event is owned by its creator ({@link Device#createEvent()}) and closed by it; use after close is an
 * IllegalStateException.
 */
public interface DeviceEvent extends AutoCloseable {

    /**
     * Captures the work queued on {@code stream} up to now (cuEventRecord): waits on this event from then on wait for
     * exactly that work. Recording again replaces what the event captures for later waits; waits already queued keep
     * waiting for what was captured when they were queued.
     */
    void record(DeviceStream stream);

    /** Blocks until the captured work is complete (cuEventSynchronize); returns at once if the event was never recorded. */
    void synchronize();

    @Override
    void close();
}
