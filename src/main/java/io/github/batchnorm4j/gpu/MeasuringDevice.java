package io.github.batchnorm4j.gpu;

/** A device that measures kernel traffic (the PTX emulator). */
public interface MeasuringDevice extends Device {

    /** Everything measured since the last {@link #resetMetrics()} (or since the device was made). */
    TrafficMetrics metrics();

    /** Starts a new measurement. */
    void resetMetrics();
}
