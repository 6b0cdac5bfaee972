package io.github.batchnorm4j.train;

import io.github.batchnorm4j.BackendInfo;
import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.gpu.Device;
import io.github.batchnorm4j.gpu.DeviceBackendProvider;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code train} opens its backends through the library's one registry: a device backend registered there (here a
 * planted one over the emulator) trains on a device of its own, which closing the training backend closes; the
 * registry's names are the only ones, and a backend that computes batch norm only cannot train.
 */
class TrainBackendsTest {

    /** A device backend on a fresh emulator, remembering the device it handed out. */
    private static final class Planted implements DeviceBackendProvider {
        EmulatedDevice opened;

        @Override
        public String name() {
            return "device-for-train-test";
        }

        @Override
        public BackendInfo probe() {
            return new BackendInfo(name(), true, "planted by TrainBackendsTest");
        }

        @Override
        public BatchNormOps open() {
            throw new UnsupportedOperationException("not used here");
        }

        @Override
        public Device openDevice() {
            opened = new EmulatedDevice();
            return opened;
        }
    }

    @Test
    void aRegisteredDeviceBackendTrainsOnADeviceOfItsOwnAndClosesIt() {
        Planted p = new Planted();
        try (Backends.Registration r = Backends.register(p)) {
            TrainBackend backend = TrainBackends.open("Device-For-Train-Test");
            assertInstanceOf(DeviceTrainBackend.class, backend);
            assertEquals("device-for-train-test", backend.name());
            float[] back = new float[6];
            try (Tensor t = backend.allocate(2, 3)) {
                backend.upload(new float[]{1, 2, 3, 4, 5, 6}, t);
                backend.download(t, back);
            }
            assertEquals(5f, back[4]);
            backend.close();
            assertThrows(IllegalStateException.class, () -> p.opened.allocate(4), "the device was closed with it");
        }
    }

    @Test
    void namesComeFromTheRegistryAndCudnnCannotTrain() {
        try (TrainBackend cpu = TrainBackends.open("cpu")) {
            assertInstanceOf(CpuTrainBackend.class, cpu);
        }
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
                () -> TrainBackends.open("tpu"));
        assertTrue(unknown.getMessage().startsWith("backend: expected one of auto, cpu, cuda, cudnn, emulator"),
                unknown.getMessage());
        IllegalArgumentException cudnn = assertThrows(IllegalArgumentException.class,
                () -> TrainBackends.open("cudnn"));
        assertEquals("backend: expected auto, cpu or a device backend (cuda, emulator) for training, got 'cudnn'",
                cudnn.getMessage());
    }
}
