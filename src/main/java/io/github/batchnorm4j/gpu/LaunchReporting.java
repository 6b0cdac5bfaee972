package io.github.batchnorm4j.gpu;

import java.util.List;

/** Implemented by backends that can say which kernels their last operation launched, with their occupancy. */
public interface LaunchReporting {

    /** The launches of the last completed operation, in order (empty before the first, or if it launched nothing). */
    List<KernelLaunch> lastOperationLaunches();
}
