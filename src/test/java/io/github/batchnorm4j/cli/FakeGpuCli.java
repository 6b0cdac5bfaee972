package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.BackendProvider;
import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.cudnn.FakeCudnnBackend;
import io.github.batchnorm4j.gpu.HostArrayBatchNormOps;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;

/**
 * The command line on a pretend GPU machine, for testing scripts that need one (scripts/gpu-validate.sh): "cuda" is
 * our kernels on the PTX emulator (a 4-SM sm_90, checks off for speed) and "cudnn" is {@link FakeCudnnBackend}; both
 * probe as available. Everything else is {@link Main}.
 */
public final class FakeGpuCli {
    private FakeGpuCli() {
    }

    /** "cuda": our kernels, through the same host-array ops as the real cuda backend, on an emulated sm_90. */
    static final class EmulatedCuda implements BackendProvider {
        @Override
        public String name() {
            return "cuda";
        }

        @Override
        public BackendInfo probe() {
            return new BackendInfo("cuda", true, "fake GPU: PTX emulator as sm_90 with 4 SMs (tests)");
        }

        @Override
        public BatchNormOps open() {
            return new HostArrayBatchNormOps("cuda", new EmulatedDevice(EmulatorOptions.defaults().withoutChecks()
                    .withMultiprocessorCount(4)), true);
        }
    }

    public static void main(String[] args) {
        Backends.register(new EmulatedCuda());
        Backends.register(new FakeCudnnBackend());
        System.exit(Main.run(args));
    }
}
