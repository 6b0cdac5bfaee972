package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.BackendProvider;
import io.github.batchnorm4j.BatchNormOps;

/**
 * A "cudnn" backend for command-line tests on machines without a GPU: {@link CudnnBatchNormOps} over the fake cuDNN
 * ({@link FakeCudnnApi}: cuDNN's documented computation on host memory), so the whole cudnn path above the JNI calls
 * runs and gives real results.
 */
public final class FakeCudnnBackend implements BackendProvider {
    @Override
    public String name() {
        return "cudnn";
    }

    @Override
    public BackendInfo probe() {
        return new BackendInfo("cudnn", true, "fake cuDNN 9.0.0 on host memory (tests)");
    }

    @Override
    public BatchNormOps open() {
        HostDevice device = new HostDevice();
        return new CudnnBatchNormOps(new FakeCudnnApi(device), device, true, 0.0);
    }
}
