/**
 * NCCL behind the {@link io.github.batchnorm4j.distributed.Collective} seam, for data-parallel batch norm across
 * processes and machines: {@link io.github.batchnorm4j.nccl.NcclCollective} (ncclAllGather on a CudaDevice's streams,
 * through JavaCPP's bindings, an optional dependency) and {@link io.github.batchnorm4j.nccl.NcclRendezvous} (rank 0's
 * unique id through a file, ranks from torchrun's environment variables). docs/distributed.md has the walk-through.
 */
package io.github.batchnorm4j.nccl;
