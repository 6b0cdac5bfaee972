package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.BatchNormOps;
import io.github.batchnorm4j.MeasuredOps;
import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.testing.Reference64;

import java.util.Random;

final class EmulatorSmokeMain {
    public static void main(String[] a) {
        try (BatchNormOps ops = Backends.open("emulator")) {
            for (Shape s : new Shape[]{Shape.channelsFirst(2, 3, 5, 7), Shape.channelsLast(3, 5, 7, 4), Shape.channelsFirst(8, 5, 33, 31)}) {
                Random r = new Random(1);
                int n = s.elementCountAsInt(), c = s.channels();
                float[] x = new float[n];
                for (int i = 0; i < n; i++) x[i] = (float) (r.nextGaussian() * 2 + 1);
                float[] y = new float[n], m = new float[c], is = new float[c];
                long t = System.nanoTime();
                ops.forwardTraining(s, x, null, null, 1e-5, null, null, 0.1, y, m, is);
                Reference64.Forward e = Reference64.forwardTraining(s, x, null, null, 1e-5, null, null, 0.1);
                double err = 0;
                for (int i = 0; i < n; i++) err = Math.max(err, Math.abs(e.y()[i] - y[i]));
                System.out.println(s + " max |dy| = " + err + " in " + (System.nanoTime() - t) / 1e6 + " ms " + ((MeasuredOps) ops).lastOperationMetrics());
            }
        }
    }
}
