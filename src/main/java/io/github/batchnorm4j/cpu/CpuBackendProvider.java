package io.github.batchnorm4j.cpu;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.BackendProvider;
import io.github.batchnorm4j.BatchNormOps;

/** The {@code cpu} backend ({@link CpuBatchNormOps}): always available, and what {@code auto} falls back to. */
public final class CpuBackendProvider implements BackendProvider {

    /** The name {@code auto} resolves to when no GPU backend is usable. */
    public static final String NAME = "cpu";

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public BackendInfo probe() {
        return new BackendInfo(NAME, true, Runtime.getRuntime().availableProcessors() + " threads, Java "
                + Runtime.version());
    }

    @Override
    public BatchNormOps open() {
        return new CpuBatchNormOps();
    }
}
