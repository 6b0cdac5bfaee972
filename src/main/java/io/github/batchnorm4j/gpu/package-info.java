/**
 * Kernel orchestration written against the {@link io.github.batchnorm4j.gpu.Device} seam: buffers, launch geometry,
 * workspace reuse, the host and device-resident APIs. Knows nothing of JCuda: the same code runs on a real GPU
 * ({@code io.github.batchnorm4j.cuda}) and on the PTX emulator ({@code io.github.batchnorm4j.ptx}).
 */
package io.github.batchnorm4j.gpu;
