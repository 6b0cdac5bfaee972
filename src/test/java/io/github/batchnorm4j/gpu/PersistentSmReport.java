package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Prints how many elements of a float32 training forward's y differ in their bits between a 1-SM and a 132-SM
 * emulated device, under {@link DeviceResidentBatchNorm.TrainingPath#AUTO} (1 SM: two-pass; 132 SMs: persistent) and
 * {@link DeviceResidentBatchNorm.TrainingPath#PERSISTENT} (1 SM: the persistent kernels in two launches), with the
 * kernels that ran. x ~ N(3, 2²), seed 42, no affine, emulator checks off. Not a test: run it by hand (docs/design.md
 * §3.1 quotes it).
 *
 * <pre>
 * java -cp target/classes:target/test-classes:... io.github.batchnorm4j.gpu.PersistentSmReport [N,C,H,W]
 * </pre>
 */
public final class PersistentSmReport {
    private PersistentSmReport() {
    }

    public static void main(String[] args) {
        Shape s = Shape.parse(io.github.batchnorm4j.Layout.CHANNELS_FIRST, args.length > 0 ? args[0] : "48,3,64,64");
        SplittableRandom r = new SplittableRandom(42);
        float[] x = new float[s.elementCountAsInt()];
        for (int i = 0; i < x.length; i++) x[i] = (float) (r.nextGaussian() * 2 + 3);
        for (DeviceResidentBatchNorm.TrainingPath p : new DeviceResidentBatchNorm.TrainingPath[]{
                DeviceResidentBatchNorm.TrainingPath.AUTO, DeviceResidentBatchNorm.TrainingPath.PERSISTENT}) {
            List<String> k1 = new ArrayList<>(), k2 = new ArrayList<>();
            float[] y1 = forward(1, p, s, x, k1), y2 = forward(132, p, s, x, k2);
            int d = 0;
            for (int i = 0; i < x.length; i++) {
                if (Float.floatToRawIntBits(y1[i]) != Float.floatToRawIntBits(y2[i])) d++;
            }
            System.out.println(p + ": 1 SM " + k1 + " vs 132 SMs " + k2 + ": " + d + " of " + x.length
                    + " y elements differ in their bits");
        }
    }

    private static float[] forward(int sms, DeviceResidentBatchNorm.TrainingPath p, Shape s, float[] x,
                                   List<String> kernels) {
        try (HostArrayBatchNormOps ops = new HostArrayBatchNormOps("emulator", new EmulatedDevice(
                EmulatorOptions.defaults().withoutChecks().withMultiprocessorCount(sms)), true)) {
            ops.deviceApi().setTrainingPath(p);
            int c = s.channels();
            float[] y = new float[x.length];
            ops.forwardTraining(s, x, null, null, 1e-5, null, null, 0.1, y, new float[c], new float[c]);
            for (KernelLaunch l : ops.lastOperationLaunches()) kernels.add(l.kernel());
            return y;
        }
    }
}
