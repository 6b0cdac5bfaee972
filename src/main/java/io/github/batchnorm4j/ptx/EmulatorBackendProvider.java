package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.gpu.DeviceBackendProvider;
import io.github.batchnorm4j.gpu.HostArrayBatchNormOps;
import io.github.batchnorm4j.gpu.PtxModules;

/**
 * The {@code emulator} backend: our kernels ({@link HostArrayBatchNormOps}, the shipped PTX) on the PTX emulator.
 * Always available, never chosen by {@code auto} (it is slow). Every check (memory, init, race, sync) is on unless the
 * environment variable {@value #CHECKS_ENV} is {@code off}, which speeds up traffic measurements of large shapes.
 */
public final class EmulatorBackendProvider implements DeviceBackendProvider {
    /** Set to {@code off} to run the emulator without its memory/init/race/sync checks. */
    public static final String CHECKS_ENV = "BATCHNORM4J_EMULATOR_CHECKS";

    @Override
    public String name() {
        return "emulator";
    }

    @Override
    public BackendInfo probe() {
        return new BackendInfo("emulator", true, "PTX emulator, " + options().multiprocessorCount() + " SMs, checks "
                + (checksOn() ? "on" : "off") + ", PTX from " + PtxModules.source());
    }

    @Override
    public BatchNormOps open() {
        return new HostArrayBatchNormOps("emulator", openDevice(), true);
    }

    /** A new emulated device with the checks this provider's environment asks for. */
    @Override
    public EmulatedDevice openDevice() {
        return new EmulatedDevice(options());
    }

    /** A new emulated device: there are as many as asked for. */
    @Override
    public EmulatedDevice openDevice(int ordinal) {
        if (ordinal < 0) throw new IllegalArgumentException("ordinal: expected >= 0, got " + ordinal);
        return openDevice();
    }

    private static boolean checksOn() {
        return !"off".equalsIgnoreCase(System.getenv(CHECKS_ENV));
    }

    private static EmulatorOptions options() {
        EmulatorOptions o = EmulatorOptions.defaults();
        return checksOn() ? o : o.withoutChecks();
    }
}
