/**
 * batchnorm4j: batch normalization for Java on NVIDIA GPUs, with PyTorch's semantics.
 *
 * <p>Entry points:
 * <ul>
 *   <li>{@link io.github.batchnorm4j.BatchNorm}: the stateful layer (parameters, running statistics, train/eval).</li>
 *   <li>{@link io.github.batchnorm4j.BatchNormOps}: the functional operations every backend implements, on host
 *       arrays; {@link io.github.batchnorm4j.Backends#open(String)} opens one by name ({@code auto}, {@code cpu},
 *       {@code cuda}, {@code cudnn}, {@code emulator}).</li>
 *   <li>{@link io.github.batchnorm4j.Shape} and {@link io.github.batchnorm4j.Layout}: channels-first
 *       {@code [N, C, S...]} or channels-last {@code [N, S..., C]} inputs.</li>
 *   <li>{@link io.github.batchnorm4j.ChannelStatistics}: mergeable (count, mean, M2) partial statistics.</li>
 * </ul>
 */
package io.github.batchnorm4j;
