package io.github.batchnorm4j.gpu;

/**
 * What kernels did, as measured by a {@link MeasuringDevice} (the PTX emulator): summed over one or more launches.
 *
 * @param launches           number of kernel launches
 * @param threadInstructions instructions executed, counted per thread
 * @param globalBytesLoaded  bytes read from global memory by kernels (not host copies)
 * @param globalBytesStored  bytes written to global memory by kernels (atomics count as read + write)
 * @param bytesRequested     bytes requested by warp-level global memory instructions (active lanes × access size)
 * @param sectorBytes        32 × the number of distinct 32-byte sectors those instructions touched
 * @param atomics            atomic operations (per thread)
 */
public record TrafficMetrics(long launches, long threadInstructions, long globalBytesLoaded, long globalBytesStored,
                             long bytesRequested, long sectorBytes, long atomics) {

    /** Nothing measured. */
    public static final TrafficMetrics ZERO = new TrafficMetrics(0, 0, 0, 0, 0, 0, 0);

    /** Global bytes moved by kernels: loaded + stored. */
    public long bytesMoved() {
        return globalBytesLoaded + globalBytesStored;
    }

    /** Coalescing efficiency: bytes requested / bytes in the sectors touched (1.0 when perfectly coalesced). */
    public double sectorEfficiency() {
        return sectorBytes == 0 ? 1.0 : (double) bytesRequested / sectorBytes;
    }

    /** The sum of two measurements. */
    public TrafficMetrics plus(TrafficMetrics o) {
        return new TrafficMetrics(launches + o.launches, threadInstructions + o.threadInstructions,
                globalBytesLoaded + o.globalBytesLoaded, globalBytesStored + o.globalBytesStored,
                bytesRequested + o.bytesRequested, sectorBytes + o.sectorBytes, atomics + o.atomics);
    }
}
