package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.Architecture;
import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceException;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.Kernel;
import io.github.batchnorm4j.gpu.KernelArgs;
import io.github.batchnorm4j.gpu.KernelResources;
import io.github.batchnorm4j.gpu.Occupancy;
import io.github.batchnorm4j.gpu.PtxModules;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The emulator's occupancy is the GPU's: registers from ptxas for its architecture, NVIDIA's occupancy arithmetic, and
 * launches refused where a GPU would refuse them.
 */
class EmulatorOccupancyTest {
    /** 96 floats loaded before any is stored (the stores may alias the loads): about 100 live registers per thread. */
    static String wideKernel() {
        StringBuilder b = new StringBuilder(".version 8.0\n.target sm_75\n.address_size 64\n\n"
                + ".visible .entry wide(\n\t.param .u64 wide_in,\n\t.param .u64 wide_out\n)\n{\n"
                + "\t.reg .b32 %r<2>;\n\t.reg .b64 %rd<6>;\n\t.reg .f32 %f<96>;\n"
                + "\tld.param.u64 %rd0, [wide_in];\n\tld.param.u64 %rd1, [wide_out];\n"
                + "\tcvta.to.global.u64 %rd0, %rd0;\n\tcvta.to.global.u64 %rd1, %rd1;\n"
                + "\tmov.u32 %r0, %tid.x;\n\tmul.wide.u32 %rd2, %r0, 384;\n"
                + "\tadd.s64 %rd3, %rd0, %rd2;\n\tadd.s64 %rd4, %rd1, %rd2;\n");
        for (int i = 0; i < 96; i++) b.append("\tld.global.f32 %f").append(i).append(", [%rd3+").append(4 * i).append("];\n");
        for (int i = 0; i < 96; i++) b.append("\tst.global.f32 [%rd4+").append(4 * i).append("], %f").append(95 - i).append(";\n");
        return b.append("\tret;\n}\n").toString();
    }

    @Test
    void aBlockWhoseRegistersDoNotFitIsRefused() {
        try (EmulatedDevice dev = new EmulatedDevice(); DeviceBuffer in = dev.allocate(384 * 1024);
             DeviceBuffer out = dev.allocate(384 * 1024)) {
            DeviceModule m = dev.loadModule("wide.ptx", wideKernel());
            Kernel k = m.kernel("wide");
            KernelResources r = k.resources();
            assertTrue(r.registersPerThread() >= 96 && r.registersPerThread() <= 128, r.toString());
            assertTrue(r.source().contains("ptxas") && r.source().contains("sm_90"), r.source());
            assertEquals(0, dev.maxActiveBlocksPerMultiprocessor(k, 1024, 0));
            // Co-resident on the whole device (what a cooperative grid may span): blocks per SM x 132 SMs.
            int perSm = Occupancy.of(dev.properties(), r, 256, 0).blocksPerSm();
            assertTrue(perSm >= 1 && perSm <= 2, r + ": " + perSm);
            assertEquals(132L * perSm, Occupancy.coResidentBlocks(dev, k, 256, 0));
            assertEquals(0, Occupancy.coResidentBlocks(dev, k, 1024, 0));
            DeviceException e = assertThrows(DeviceException.class, () -> dev.launch(k, Dim3.of(1), Dim3.of(1024), 0,
                    dev.defaultStream(), new KernelArgs().ptr(in).ptr(out)));
            for (String s : new String[]{"launch of wide", "block (1024,1,1)", "on sm_90",
                    r.registersPerThread() + " registers x 1024 threads", "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"}) {
                assertTrue(e.getMessage().contains(s), "'" + s + "' missing from: " + e.getMessage());
            }
            // 256 threads fit: the kernel runs and reverses each thread's 96 floats.
            float[] host = new float[96 * 256];
            for (int i = 0; i < host.length; i++) host[i] = i * 0.5f;
            dev.copyToDevice(host, 0, in.pointer(), host.length, dev.defaultStream());
            dev.launch(k, Dim3.of(1), Dim3.of(256), 0, dev.defaultStream(), new KernelArgs().ptr(in).ptr(out));
            float[] got = new float[host.length];
            dev.copyToHost(out.pointer(), got, 0, got.length, dev.defaultStream());
            assertEquals(host[95], got[0]);
            assertEquals(host[96 * 255], got[96 * 256 - 1]);
            m.close();
        }
    }

    @Test
    void shippedKernelsHaveTheOccupancyOfTheirArchitecture() {
        String ptx = PtxModules.read(PtxModules.FORWARD);
        for (Architecture arch : new Architecture[]{Architecture.SM_90, Architecture.SM_75}) {
            try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults().withArchitecture(arch))) {
                DeviceModule m = dev.loadModule(PtxModules.FORWARD, ptx);
                Kernel k = m.kernel("bn_apply_cf");
                KernelResources r = k.resources();
                assertTrue(r.registersPerThread() >= 16 && r.registersPerThread() <= 128, arch + ": " + r);
                assertEquals(256, r.maxThreadsPerBlock(), ".maxntid 256 (__launch_bounds__(256))");
                int blocks = dev.maxActiveBlocksPerMultiprocessor(k, 256, 0);
                assertEquals(Occupancy.of(dev.properties(), r, 256, 0).blocksPerSm(), blocks, arch + ": " + r);
                assertTrue(blocks >= 1 && blocks <= arch.maxWarpsPerSm() / 8, arch + ": " + blocks);
                // More threads than __launch_bounds__ allows: refused before anything runs.
                DeviceException e = assertThrows(DeviceException.class, () -> dev.launch(k, Dim3.of(1), Dim3.of(512), 0,
                        dev.defaultStream(), new KernelArgs()));
                assertTrue(e.getMessage().contains("512 threads per block exceed the kernel's limit of 256"), e.getMessage());
                m.close();
            }
        }
    }
}
