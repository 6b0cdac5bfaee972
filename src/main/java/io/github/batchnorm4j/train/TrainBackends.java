package io.github.batchnorm4j.train;

import io.github.batchnorm4j.BackendUnavailableException;

import java.util.Locale;

/**
 * Opens a {@link TrainBackend} by name: {@code cpu}, or {@code auto}. The GPU training backend ({@code cuda}: cuBLAS
 * GEMMs, the library's device-resident batch norm and the kernels of {@code cuda/train_kernels.cu}) is not part of
 * this build yet, so {@code auto} resolves to {@code cpu} and {@code cuda} is reported unavailable.
 */
public final class TrainBackends {
    private TrainBackends() {
    }

    /** The backend {@code auto} resolves to, with the reason. */
    public static String describeAuto() {
        return "auto -> cpu (no GPU training backend in this build)";
    }

    /**
     * @throws IllegalArgumentException    for an unknown name
     * @throws BackendUnavailableException for {@code cuda}, with the reason
     */
    public static TrainBackend open(String name) {
        if (name == null) throw new IllegalArgumentException("backend must not be null");
        switch (name.toLowerCase(Locale.ROOT)) {
            case "auto":
            case "cpu":
                return new CpuTrainBackend();
            case "cuda":
                throw new BackendUnavailableException("cuda", "the GPU training backend is not built yet;"
                        + " use --backend cpu (or auto)");
            default:
                throw new IllegalArgumentException("backend: expected auto, cpu or cuda, got '" + name + "'");
        }
    }
}
