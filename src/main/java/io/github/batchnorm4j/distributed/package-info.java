/**
 * Data-parallel batch norm: {@link io.github.batchnorm4j.distributed.Collective} (an all-gather among ranks), its
 * in-process implementation, and synchronized batch norm on host arrays
 * ({@link io.github.batchnorm4j.distributed.SyncBatchNormOps}, {@link io.github.batchnorm4j.distributed.SyncBatchNorm}).
 * docs/distributed.md says how to run on several GPUs and machines.
 */
package io.github.batchnorm4j.distributed;
