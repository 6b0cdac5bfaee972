package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.TrafficMetrics;

/**
 * What one kernel launch on the emulator did.
 *
 * @param kernel  the entry name
 * @param grid    grid dimensions
 * @param block   block dimensions
 * @param metrics its traffic and instruction counts ({@code launches} = 1)
 * @param stream  the stream it ran on ("the default stream", "stream #1", ...)
 */
public record LaunchRecord(String kernel, Dim3 grid, Dim3 block, TrafficMetrics metrics, String stream) {
}
