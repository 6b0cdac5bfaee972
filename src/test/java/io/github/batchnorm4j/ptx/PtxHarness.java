package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.DeviceBuffer;
import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.Dim3;
import io.github.batchnorm4j.gpu.KernelArgs;

/**
 * Runs a hand-written PTX snippet once per thread: thread t reads four 64-bit raw values into {@code %in0..%in3} from
 * the input buffer, runs the body, and stores {@code %out0..%out3}. Scratch registers: {@code %f0-7} (.f32),
 * {@code %fd0-7} (.f64), {@code %r0-7} (.b32), {@code %rd0-7} (.b64), {@code %p0-7} (.pred), {@code %h0-7} (.b16).
 * Outputs start poisoned (0xDEADBEEF...).
 */
final class PtxHarness {
    private PtxHarness() {
    }

    static String kernel(String body, String extraDecls) {
        return ".version 8.0\n.target sm_75\n.address_size 64\n" + extraDecls + "\n"
                + ".visible .entry t(\n\t.param .u64 t_in,\n\t.param .u64 t_out\n)\n{\n"
                + "\t.reg .b64 %in<4>;\n\t.reg .b64 %out<4>;\n\t.reg .b64 %a<3>;\n\t.reg .b32 %me;\n"
                + "\t.reg .f32 %f<8>;\n\t.reg .f64 %fd<8>;\n\t.reg .b32 %r<8>;\n\t.reg .b64 %rd<8>;\n"
                + "\t.reg .pred %p<8>;\n\t.reg .b16 %h<8>;\n"
                + "\tld.param.u64 %a0, [t_in];\n\tld.param.u64 %a1, [t_out];\n"
                + "\tcvta.to.global.u64 %a0, %a0;\n\tcvta.to.global.u64 %a1, %a1;\n"
                + "\tmov.u32 %me, %tid.x;\n\tmul.wide.u32 %a2, %me, 32;\n"
                + "\tadd.s64 %a0, %a0, %a2;\n\tadd.s64 %a1, %a1, %a2;\n"
                + "\tld.global.v2.b64 {%in0, %in1}, [%a0];\n\tld.global.v2.b64 {%in2, %in3}, [%a0+16];\n"
                + "\tmov.b64 %out0, 0xDEADBEEFDEADBEEF;\n\tmov.b64 %out1, %out0;\n\tmov.b64 %out2, %out0;\n"
                + "\tmov.b64 %out3, %out0;\n"
                + body + "\n"
                + "\tst.global.v2.b64 [%a1], {%out0, %out1};\n\tst.global.v2.b64 [%a1+16], {%out2, %out3};\n"
                + "\tret;\n}\n";
    }

    /** Runs {@code body} for {@code in.length} threads (one block); returns out[thread][0..3]. */
    static long[][] run(String body, long[][] in) {
        return run(body, "", in, EmulatorOptions.defaults());
    }

    static long[][] run(String body, String extraDecls, long[][] in, EmulatorOptions opt) {
        int n = in.length;
        int[] raw = new int[n * 8];
        for (int t = 0; t < n; t++) {
            for (int k = 0; k < 4; k++) {
                long v = k < in[t].length ? in[t][k] : 0;
                raw[t * 8 + 2 * k] = (int) v;
                raw[t * 8 + 2 * k + 1] = (int) (v >>> 32);
            }
        }
        try (EmulatedDevice dev = new EmulatedDevice(opt); DeviceBuffer bi = dev.allocate(32L * n);
             DeviceBuffer bo = dev.allocate(32L * n)) {
            DeviceModule m = dev.loadModule("harness.ptx", kernel(body, extraDecls));
            dev.copyToDevice(raw, 0, bi.pointer(), raw.length, dev.defaultStream());
            dev.launch(m.kernel("t"), Dim3.of(1), Dim3.of(n), 0, dev.defaultStream(),
                    new KernelArgs().ptr(bi).ptr(bo));
            int[] o = new int[n * 8];
            dev.copyToHost(bo.pointer(), o, 0, o.length, dev.defaultStream());
            long[][] out = new long[n][4];
            for (int t = 0; t < n; t++) {
                for (int k = 0; k < 4; k++) {
                    out[t][k] = (o[t * 8 + 2 * k] & 0xFFFFFFFFL) | ((long) o[t * 8 + 2 * k + 1] << 32);
                }
            }
            return out;
        }
    }

    static long f(float v) {
        return Float.floatToRawIntBits(v) & 0xFFFFFFFFL;
    }

    static long d(double v) {
        return Double.doubleToRawLongBits(v);
    }

    static float asF(long bits) {
        return Float.intBitsToFloat((int) bits);
    }

    static double asD(long bits) {
        return Double.longBitsToDouble(bits);
    }
}
